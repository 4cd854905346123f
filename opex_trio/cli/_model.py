"""Which model the command talks to: an API with a key, a server given by URL, or the embedded one.

The rules, in order (the first that applies wins):

1. ``--local``: the embedded model (llama-cpp-python's server with SmolLM2-135M).
2. ``--base-url URL``: that OpenAI-compatible server, with ``OPENROUTER_API_KEY``
   when the URL is OpenRouter's, else ``OPENAI_API_KEY`` when set, else no key
   (local servers need none). ``--model`` defaults to the default of rules 3
   and 4 for OpenRouter's and OpenAI's URLs, else to the first model the
   server lists at ``URL/models``.
3. ``OPENROUTER_API_KEY``: OpenRouter, model ``openai/gpt-4o-mini`` by default.
4. ``OPENAI_API_KEY``: OpenAI's API, model ``gpt-4o-mini`` by default.
5. Nothing: the embedded model, when the ``local`` extra is installed.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Literal

import attrs
import httpx2

from ..llm.client import DEFAULT_BASE_URL, Client
from ..llm.local import INSTALL_HINT, LocalModelServer, missing_local_model, open_local_model
from ._errors import EXIT_FAILURE, EXIT_NO_MODEL, EXIT_USAGE, CliError

OPENROUTER_KEY = "OPENROUTER_API_KEY"
OPENAI_KEY = "OPENAI_API_KEY"
OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENROUTER_MODEL = "openai/gpt-4o-mini"
OPENAI_MODEL = "gpt-4o-mini"
# Every answer has a bound, so a model that never stops (a small one behind a
# local server can write until its context is full) ends in reasonable time.
MAX_TOKENS = 2048
# The embedded model is tiny and slow on a CPU: a shorter bound.
LOCAL_MAX_TOKENS = 512
APP_TITLE = "opex-trio"

Source = Literal["local", "base_url", "openrouter", "openai"]


@attrs.frozen
class ModelChoice:
    """Where the model is and how to reach it; ``model`` is ``None`` until known."""

    source: Source
    base_url: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    model: str | None = None
    key_name: str | None = None


def _key(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def choose_model(
    *,
    local: bool,
    base_url: str | None,
    model: str | None,
    environ: Mapping[str, str] | None = None,
) -> ModelChoice:
    """Apply the rules of the module docstring; raise :class:`CliError` when no model is there."""
    env = os.environ if environ is None else environ
    if local:
        if base_url:
            raise CliError("--local and --base-url exclude each other", EXIT_USAGE)
        return ModelChoice("local", model=model)
    if base_url:
        host = httpx2.URL(base_url).host if "://" in base_url else ""
        openrouter = host.endswith("openrouter.ai")
        name = OPENROUTER_KEY if openrouter else OPENAI_KEY
        key = _key(env, name)
        if model is None and openrouter:
            model = OPENROUTER_MODEL
        elif model is None and host == "api.openai.com":
            model = OPENAI_MODEL
        return ModelChoice(
            "base_url", base_url, key, model, key_name=name if key is not None else None
        )
    key = _key(env, OPENROUTER_KEY)
    if key is not None:
        return ModelChoice(
            "openrouter", DEFAULT_BASE_URL, key, model or OPENROUTER_MODEL, OPENROUTER_KEY
        )
    key = _key(env, OPENAI_KEY)
    if key is not None:
        return ModelChoice("openai", OPENAI_BASE_URL, key, model or OPENAI_MODEL, OPENAI_KEY)
    return ModelChoice("local", model=model)


def no_model_message(problem: str) -> str:
    """The line said when no key, no URL and no embedded model are there."""
    return (
        f"no model to talk to: set {OPENROUTER_KEY} or {OPENAI_KEY}, pass --base-url URL of "
        f"an OpenAI-compatible server, or install the embedded model: {INSTALL_HINT} "
        f"({problem})"
    )


@attrs.frozen
class OpenModel:
    """An open client and the model name to ask, with the embedded server when there is one."""

    client: Client
    model: str
    choice: ModelChoice
    local: LocalModelServer | None = None

    def describe(self) -> str:
        """The one line that says which model is used, and where."""
        url = self.client.base_url
        if self.local is not None:
            return (
                f"using the embedded SmolLM2-135M on {url}: a tiny model that answers in "
                "plain text and calls no tools (set an API key or --base-url for one that does)"
            )
        how = f" (key from {self.choice.key_name})" if self.choice.key_name else ""
        return f"using {self.model} on {url}{how}"


def token_limit(choice: ModelChoice, requested: int | None) -> dict[str, int]:
    """The request field that bounds an answer: ``requested`` tokens, else the default.

    ``requested`` 0 sends no bound (the model's own limit applies). OpenAI's
    own API gets ``max_completion_tokens``, the field its reasoning models
    require (they refuse ``max_tokens``); every other server gets ``max_tokens``.
    """
    if requested is None:
        requested = LOCAL_MAX_TOKENS if choice.source == "local" else MAX_TOKENS
    if requested == 0:
        return {}
    url = choice.base_url or ""
    host = httpx2.URL(url).host if "://" in url else ""
    field = "max_completion_tokens" if host == "api.openai.com" else "max_tokens"
    return {field: requested}


async def _first_listed_model(base_url: str, api_key: str | None) -> str:
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    problem = "it lists none"
    try:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(10.0)) as http:
            response = await http.get(url, headers=headers)
        if response.status_code == 200:
            data = response.json().get("data") or []
            ids = [m.get("id") for m in data if isinstance(m, dict)]
            for model_id in ids:
                if isinstance(model_id, str) and model_id:
                    return model_id
        else:
            problem = f"it answered HTTP {response.status_code}"
    except httpx2.TransportError as exc:
        # Nothing answered: naming a model would not help.
        raise CliError(
            f"the model endpoint {base_url} is unreachable: {type(exc).__name__}: {exc}",
            EXIT_FAILURE,
        ) from exc
    except (httpx2.HTTPError, ValueError, AttributeError) as exc:
        problem = f"asking it failed: {type(exc).__name__}: {exc}"
    raise CliError(f"pass --model: {url} names no model to use ({problem})", EXIT_USAGE)


@asynccontextmanager
async def open_model(choice: ModelChoice, *, start_timeout: float) -> AsyncIterator[OpenModel]:
    """Open the client (starting the embedded model first when chosen); close both on exit."""
    if choice.source == "local":
        problem = missing_local_model()
        if problem is not None:
            raise CliError(no_model_message(problem), EXIT_NO_MODEL)
        async with (
            open_local_model(start_timeout=start_timeout) as local,
            Client(None, base_url=local.base_url, app_title=APP_TITLE) as client,
        ):
            yield OpenModel(client, choice.model or local.model, choice, local)
        return
    assert choice.base_url is not None
    async with Client(choice.api_key, base_url=choice.base_url, app_title=APP_TITLE) as client:
        model = choice.model or await _first_listed_model(choice.base_url, choice.api_key)
        yield OpenModel(client, model, choice)
