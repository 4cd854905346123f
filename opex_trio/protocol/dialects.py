"""The JSON Schema dialects a tool's schema may declare, and which of them this client reads.

Since 2025-11-25 a schema without ``$schema`` is JSON Schema 2020-12, and a
schema may name another dialect in ``$schema``. Implementations must read
2020-12 and handle a dialect they do not support gracefully, with an error
saying so, rather than read it as something else.

This client reads 2020-12, 2019-09, draft-07, draft-06 and draft-04
(:data:`SUPPORTED_DIALECTS`); :mod:`opex_trio.agent.schema` rewrites the older
ones in 2020-12 terms. Any other ``$schema`` (a vendor dialect, draft-03, the
undated ``http://json-schema.org/schema#``, a value that is not a string) is
unsupported: :func:`unsupported_dialect` names it, and the tool is not offered
to a model (see :meth:`opex_trio.mcp.manager.SessionManager.tools`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

__all__ = ["DEFAULT_DIALECT", "SUPPORTED_DIALECTS", "dialect_of", "unsupported_dialect"]

DEFAULT_DIALECT: Final = "2020-12"
"""The dialect of a schema that declares none."""

SUPPORTED_DIALECTS: Final = ("2020-12", "2019-09", "draft-07", "draft-06", "draft-04")
"""The dialects this client reads, newest first."""

_PATHS: Final = {
    "/draft/2020-12/schema": "2020-12",
    "/draft/2019-09/schema": "2019-09",
    "/draft-07/schema": "draft-07",
    "/draft-06/schema": "draft-06",
    "/draft-04/schema": "draft-04",
}


def dialect_of(schema: Mapping[str, Any]) -> str | None:
    """The dialect ``schema`` is written in (one of :data:`SUPPORTED_DIALECTS`), else ``None``.

    No ``$schema`` means :data:`DEFAULT_DIALECT`. A declared one is recognised
    by the meta-schema URI of json-schema.org (``http`` or ``https``, with or
    without the empty fragment); anything else is ``None``: unsupported.
    """
    declared = schema.get("$schema")
    if declared is None:
        return DEFAULT_DIALECT
    if not isinstance(declared, str):
        return None
    try:
        parts = urlsplit(declared.strip())
    except ValueError:
        return None
    if (
        parts.scheme not in ("http", "https")
        or parts.hostname != "json-schema.org"
        or parts.query
        or parts.fragment
    ):
        return None
    return _PATHS.get(parts.path)


def unsupported_dialect(schema: Any) -> str | None:
    """Why ``schema`` cannot be read here: a sentence naming its ``$schema``; ``None`` if it can."""
    if not isinstance(schema, Mapping) or dialect_of(schema) is not None:
        return None
    return (
        f"its input schema declares the JSON Schema dialect {schema.get('$schema')!r}, which "
        f"this client does not support (it reads {', '.join(SUPPORTED_DIALECTS)})"
    )
