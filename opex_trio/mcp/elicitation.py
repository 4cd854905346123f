"""Helpers for answering elicitations: defaults, checking answers, URL mode.

A form elicitation's ``requestedSchema`` is a flat object of primitive
properties (strings with length, pattern and a few formats, numbers and
integers with bounds, booleans, single- and multi-select enums), so
:func:`check_answer` checks an answer against it without a JSON Schema
library; the client runs it on every accepted answer before it is sent.

A server that needs the person to visit a page before it can answer a
request fails the request with -32042, raised as
:class:`~opex_trio.errors.UrlElicitationRequiredError`;
:func:`complete_url_elicitations` opens the pages and waits for the server to
say they are done, and :func:`retry_after_url_elicitation` does that and sends
the request again.
"""

from __future__ import annotations

import datetime
import math
import re
import webbrowser
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from .._exceptions import unwrap_single
from ..errors import RequestTimeoutError, UrlElicitationRequiredError
from ..protocol.session import NotificationReceived

if TYPE_CHECKING:
    from .client import McpClient

__all__ = [
    "check_answer",
    "complete_url_elicitations",
    "defaults_of",
    "retry_after_url_elicitation",
]

T = TypeVar("T")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def defaults_of(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``default`` of every property of an elicitation's requested schema."""
    properties = (schema or {}).get("properties") or {}
    return {
        name: spec["default"]
        for name, spec in properties.items()
        if isinstance(spec, Mapping) and "default" in spec
    }


def check_answer(schema: Mapping[str, Any] | None, content: Any) -> str | None:
    """Why ``content`` does not answer ``schema``, or ``None`` when it does."""
    if schema is None:
        return None
    if not isinstance(content, Mapping):
        return f"the answer must be an object, got {type(content).__name__}"
    properties = schema.get("properties") or {}
    for name in schema.get("required") or ():
        if name not in content:
            return f"the required field {name!r} is missing"
    for name, value in content.items():
        spec = properties.get(name)
        if not isinstance(spec, Mapping):
            return f"the field {name!r} was not asked for"
        problem = _check_field(spec, value)
        if problem is not None:
            return f"the field {name!r} {problem}"
    return None


def _choices(spec: Mapping[str, Any], key: str) -> list[Any] | None:
    if "enum" in spec:
        return list(spec["enum"])
    options = spec.get(key)
    if isinstance(options, list):
        return [o.get("const") for o in options if isinstance(o, Mapping)]
    return None


def _check_field(spec: Mapping[str, Any], value: Any) -> str | None:
    kind = spec.get("type")
    if kind == "array":
        if not isinstance(value, list):
            return "must be a list"
        if len(value) < spec.get("minItems", 0) or len(value) > spec.get("maxItems", math.inf):
            return f"must have between {spec.get('minItems', 0)} and {spec.get('maxItems')} items"
        items = spec.get("items") or {}
        allowed = _choices(items, "anyOf") if isinstance(items, Mapping) else None
        bad = [v for v in value if allowed is not None and v not in allowed]
        return f"has choices not offered: {bad!r}" if bad else None
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a {kind}"
        if kind == "integer" and not float(value).is_integer():
            return "must be an integer"
        if value < spec.get("minimum", -math.inf) or value > spec.get("maximum", math.inf):
            return f"must be between {spec.get('minimum')} and {spec.get('maximum')}"
        return None
    if kind == "string":
        if not isinstance(value, str):
            return "must be a string"
        allowed = _choices(spec, "oneOf")
        if allowed is not None and value not in allowed:
            return f"must be one of {allowed!r}"
        if len(value) < spec.get("minLength", 0) or len(value) > spec.get("maxLength", math.inf):
            return "has the wrong length"
        pattern = spec.get("pattern")
        if isinstance(pattern, str) and re.search(pattern, value) is None:
            return f"does not match {pattern!r}"
        return _check_format(spec.get("format"), value)
    return None


def _check_format(fmt: Any, value: str) -> str | None:
    try:
        if fmt == "email" and not _EMAIL.match(value):
            raise ValueError
        if fmt == "uri" and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", value):
            raise ValueError
        if fmt == "date":
            datetime.date.fromisoformat(value)
        if fmt == "date-time":
            datetime.datetime.fromisoformat(value)
    except ValueError:
        return f"is not a valid {fmt}"
    return None


async def complete_url_elicitations(
    client: McpClient,
    error: UrlElicitationRequiredError,
    *,
    open_url: Callable[[str], object] | None = None,
    confirm: Callable[[], Awaitable[object]] | None = None,
    timeout: float | None = 300.0,
) -> None:
    """Open the pages ``error`` asks for and wait until the server says each is done.

    ``open_url`` shows a page to the person (default: the system's web
    browser, in a worker thread); it may be async. Completion is the server's
    ``notifications/elicitation/complete`` for every elicitation, or
    ``confirm`` returning (the person saying they are done), whichever comes
    first; without either within ``timeout``, :class:`RequestTimeoutError`.
    """
    waiting = {e.get("elicitationId") for e in error.elicitations} - {None}
    async with client.subscribe() as notices:
        for url in error.urls:
            if open_url is None:
                await trio.to_thread.run_sync(webbrowser.open, url)
            else:
                shown = open_url(url)
                if isinstance(shown, Awaitable):
                    await shown
        if not waiting and confirm is None:
            return
        with trio.move_on_after(math.inf if timeout is None else timeout) as scope:
            with unwrap_single():
                async with trio.open_nursery() as nursery:
                    if confirm is not None:
                        nursery.start_soon(_confirmed, confirm, nursery.cancel_scope)
                    while waiting:
                        notice = await notices.receive()
                        if isinstance(notice, NotificationReceived):
                            message = notice.notification
                            if message.method == "notifications/elicitation/complete":
                                # Unknown or repeated ids are ignored, as the spec asks.
                                waiting.discard((message.params or {}).get("elicitationId"))
                    nursery.cancel_scope.cancel()
        if not scope.cancelled_caught:
            return
    raise RequestTimeoutError(
        f"MCP server {client.name!r} did not say the elicitation(s) "
        f"{', '.join(sorted(map(str, waiting)))} were complete within {timeout} s",
        method="notifications/elicitation/complete",
        timeout=timeout,
    )


async def _confirmed(confirm: Callable[[], Awaitable[object]], scope: trio.CancelScope) -> None:
    await confirm()
    scope.cancel()


async def retry_after_url_elicitation(
    client: McpClient,
    call: Callable[[], Awaitable[T]],
    *,
    open_url: Callable[[str], object] | None = None,
    confirm: Callable[[], Awaitable[object]] | None = None,
    timeout: float | None = 300.0,
) -> T:
    """Run ``call``; if the server needs a URL elicitation first, complete it and run it again.

    The options are those of :func:`complete_url_elicitations`. Only one
    round: a second :class:`UrlElicitationRequiredError` is raised.
    """
    try:
        return await call()
    except UrlElicitationRequiredError as exc:
        await complete_url_elicitations(
            client, exc, open_url=open_url, confirm=confirm, timeout=timeout
        )
    return await call()
