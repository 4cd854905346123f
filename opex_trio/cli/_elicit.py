"""A server's elicitation, answered by the person at the terminal.

A form asks for each field in turn: its title and description, the kind of
value and the choices, and its default (Enter takes it; Enter leaves out an
optional field without one). Each value is checked against the field's schema
with :func:`~opex_trio.mcp.elicitation.check_answer`, and asked again with
the reason when it does not fit. A URL elicitation shows the page to open and
asks for consent. First the person chooses to answer, decline or cancel; the
end of the input cancels. Off a terminal every elicitation is declined.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..mcp.client import RequestingServer
from ..mcp.elicitation import check_answer, defaults_of
from ..protocol.types import ElicitParams
from ._person import Person, server_label

__all__ = ["elicit", "parse_value"]

_FORM_ACTIONS = {"answer": "accept", "decline": "decline", "cancel": "cancel"}
_URL_ACTIONS = {"yes": "accept", "no": "decline", "cancel": "cancel"}
_TRUE = ("y", "yes", "true", "1")
_FALSE = ("n", "no", "false", "0")


def _options(spec: Mapping[str, Any]) -> list[tuple[Any, str | None]]:
    """The choices of an enum field, as (value, title) pairs."""
    if "enum" in spec:
        names = spec.get("enumNames") or []
        return [(v, names[i] if i < len(names) else None) for i, v in enumerate(spec["enum"])]
    for key in ("oneOf", "anyOf"):
        if isinstance(spec.get(key), list):
            return [(o.get("const"), o.get("title")) for o in spec[key] if isinstance(o, Mapping)]
    return []


def _choices_of(spec: Mapping[str, Any]) -> list[tuple[Any, str | None]]:
    if spec.get("type") == "array" and isinstance(spec.get("items"), Mapping):
        return _options(spec["items"])
    return _options(spec)


def _pick(text: str, choices: list[tuple[Any, str | None]]) -> Any:
    for value, title in choices:
        if text == str(value) or (title is not None and text.lower() == title.lower()):
            return value
    return text


def parse_value(spec: Mapping[str, Any], text: str) -> Any:
    """The value typed as ``text`` for a field of ``spec``; :class:`ValueError` if it is none."""
    kind = spec.get("type")
    if kind == "boolean":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("answer y or n")
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError("must be a number") from None
        return int(number) if number.is_integer() and "." not in text else number
    choices = _choices_of(spec)
    if kind == "array":
        return [_pick(part.strip(), choices) for part in text.split(",") if part.strip()]
    return _pick(text, choices)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _hint(spec: Mapping[str, Any], required: bool) -> str:
    kind = spec.get("type")
    parts = []
    choices = _choices_of(spec)
    if choices:
        listed = ", ".join(f"{v} ({t})" if t else str(v) for v, t in choices)
        parts.append(("some of " if kind == "array" else "one of ") + listed)
        if kind == "array":
            parts.append("comma-separated")
    elif kind == "boolean":
        parts.append("y/n")
    elif kind in ("integer", "number"):
        low, high = spec.get("minimum"), spec.get("maximum")
        span = f" {low}..{high}" if low is not None and high is not None else ""
        parts.append(("a whole number" if kind == "integer" else "a number") + span)
    elif spec.get("format"):
        parts.append(str(spec["format"]))
    if required:
        parts.append("required")
    return f" ({'; '.join(parts)})" if parts else ""


async def _field(
    person: Person, name: str, spec: Mapping[str, Any], required: bool, default: Any
) -> tuple[bool, Any] | None:
    """Ask one field: (whether it was given, its value); ``None`` when the input ended."""
    label = str(spec.get("title") or name)
    if spec.get("description"):
        person.show(f"  {label}: {spec['description']}")
    question = f"  {label}{_hint(spec, required)}"
    if default is not None:
        question += f" [{_shown(default)}]"
    question += ": "
    alone = {"type": "object", "properties": {name: spec}}
    while True:
        line = await person.ask(question)
        if line is None:
            return None
        text = line.strip()
        if not text:
            if default is not None:
                return True, default
            if not required:
                return False, None
            person.show("    this field is required")
            continue
        try:
            value = parse_value(spec, text)
        except ValueError as exc:
            person.show(f"    {exc}; try again")
            continue
        problem = check_answer(alone, {name: value})
        if problem is None:
            return True, value
        person.show(f"    {problem.removeprefix(f'the field {name!r} ')}; try again")


async def _form(person: Person, schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
    properties = (schema or {}).get("properties") or {}
    required = set((schema or {}).get("required") or ())
    defaults = defaults_of(schema)
    content: dict[str, Any] = {}
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        asked = await _field(person, name, spec, name in required, defaults.get(name))
        if asked is None:
            return None
        given, value = asked
        if given:
            content[name] = value
    return content


async def elicit(person: Person, params: ElicitParams, server: RequestingServer) -> dict[str, Any]:
    """The person's answer to a server's elicitation (declined off a terminal)."""
    who = server_label(server)
    url_mode = params.mode == "url"
    if not person.interactive:
        person.ui.notice(
            f"declined a request for input of MCP server {who}: stdin is not a terminal"
        )
        return {"action": "decline"}
    async with person.lock:
        if url_mode:
            person.show(f"[input] MCP server {who} asks you to open a page: {params.message}")
            person.show(f"  {params.url}")
            action = await person.choose(
                "  open it (in your browser)? (y)es / (n)o / (c)ancel [n] ", _URL_ACTIONS, "no"
            )
            if action == "accept":
                person.show("[input] accepted: open the page above to go on")
            return {"action": action or "cancel"}
        person.show(f"[input] MCP server {who} asks: {params.message}")
        action = await person.choose(
            "  (a)nswer / (d)ecline / (c)ancel [a] ", _FORM_ACTIONS, "answer"
        )
        if action != "accept":
            return {"action": action or "cancel"}
        content = await _form(person, params.requested_schema)
        if content is None:
            return {"action": "cancel"}
        problem = check_answer(params.requested_schema, content)
        if problem is not None:
            # Each field was checked; what is left is the form as a whole.
            person.show(f"[input] not sent: {problem}")
            return {"action": "cancel"}
        person.show("[input] sent")
        return {"action": "accept", "content": content}
