"""The ``opex-trio`` command."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``opex-trio`` command and return its exit status."""
    from ._main import run

    return run(sys.argv[1:] if argv is None else argv)
