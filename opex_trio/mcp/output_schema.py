"""Checking a tool's ``structuredContent`` against its ``outputSchema``.

The 2025-06-18 specification lets a tool declare an ``outputSchema``; a server
must then send ``structuredContent`` that conforms, and a client should check
it. The check uses ``jsonschema`` (the ``schema`` extra: ``pip install
'opex-trio[schema]'``); its compiled validators are kept per schema object, so
a tool's schema is compiled once.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any, Literal, TypeAlias

from ..errors import ConfigError
from ..protocol.types import CallToolResult, TextContent, Tool

__all__ = [
    "MISMATCH_META",
    "OutputValidation",
    "check_structured_content",
    "output_validation_available",
    "rejected_result",
    "require_output_validation",
]

logger = logging.getLogger("opex_trio.mcp")

OutputValidation: TypeAlias = Literal["error", "warn", "off"]
"""What a mismatch does: a tool error the model reads, a logged warning, or nothing checked."""

_EXTRA_HINT = "install the 'schema' extra: pip install 'opex-trio[schema]'"
_CACHE_LIMIT = 1024
_validators: dict[int, tuple[Any, Any]] = {}


def output_validation_available() -> bool:
    """Whether ``jsonschema`` is installed, so results can be checked."""
    return importlib.util.find_spec("jsonschema") is not None


def require_output_validation(what: str) -> None:
    """Raise :class:`ConfigError` naming the extra when ``jsonschema`` is missing."""
    if not output_validation_available():
        raise ConfigError(f"{what} checks structuredContent with jsonschema; {_EXTRA_HINT}")


def check_structured_content(tool: Tool, result: CallToolResult) -> str | None:
    """Why ``result`` does not conform to ``tool.output_schema``, or ``None`` when it does.

    A result with ``is_error`` set, or of a tool without an output schema, is
    not checked. A schema that is itself invalid is logged once per schema
    object and not held against the result.
    """
    schema = tool.output_schema
    if schema is None or result.is_error:
        return None
    if result.structured_content is None:
        return f"the tool {tool.name!r} declares an outputSchema but sent no structuredContent"
    validator = _validator(tool.name, schema)
    if validator is None:
        return None
    error = _best_error(validator, result.structured_content)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return (
        f"the structuredContent of tool {tool.name!r} does not match its outputSchema "
        f"at {where}: {error.message}"
    )


MISMATCH_META = "io.opex-trio/outputSchemaMismatch"
"""The ``_meta`` key of a result this client rejected, holding the reason."""


def rejected_result(result: CallToolResult, reason: str) -> CallToolResult:
    """``result`` turned into a tool error that tells the model ``reason``.

    The reason is also under :data:`MISMATCH_META` in the result's ``_meta``,
    so the chat loop reports it in telemetry.
    """
    return CallToolResult(
        content=(TextContent(f"Error: {reason}"), *result.content),
        is_error=True,
        meta={**(result.meta or {}), MISMATCH_META: reason},
    )


def _validator(name: str, schema: Any) -> Any:
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    try:
        import jsonschema  # optional: imported on first use
    except ImportError as exc:
        raise ConfigError(
            f"checking the output of tool {name!r} needs jsonschema; {_EXTRA_HINT}"
        ) from exc
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        logger.warning(
            "the outputSchema of tool %r is not a valid JSON Schema, not checked: %s",
            name,
            exc.message,
        )
        validator = None
    else:
        validator = cls(schema)
    if len(_validators) >= _CACHE_LIMIT:
        _validators.clear()
    # The schema is kept in the entry, so its id cannot be reused while cached.
    _validators[id(schema)] = (schema, validator)
    return validator


def _best_error(validator: Any, instance: Any) -> Any:
    import jsonschema  # present once a validator exists

    return jsonschema.exceptions.best_match(validator.iter_errors(instance))
