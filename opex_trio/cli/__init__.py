"""The ``opex-trio`` command."""

from __future__ import annotations

import signal
import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``opex-trio`` command and return its exit status (the program's entry point)."""
    from ._main import run

    try:
        return run(sys.argv[1:] if argv is None else argv)
    finally:
        # The command is over: a Ctrl-C pressed while the process exits must
        # not turn its exit status into a KeyboardInterrupt.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
