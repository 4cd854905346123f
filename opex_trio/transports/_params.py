"""Checks shared by the parameter classes of the remote transports.

Headers, tokens and ids end up in HTTP headers, where a line break would let a
value smuggle in a header of its own; every value is checked once, when the
parameters are built, with an error naming the field (never a secret's value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError

__all__ = [
    "check_execution_id",
    "check_header_name",
    "check_token",
    "normalize_headers",
    "redacted_headers",
]

_BREAKS = "\r\n\0"


def normalize_headers(value: Any, reserved: frozenset[str] = frozenset()) -> dict[str, str]:
    """Check extra headers (names and values) and return them as a dict.

    ``reserved`` are lower-case names the transport sets itself.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"headers must be an object of name: value, got {type(value).__name__}")
    out: dict[str, str] = {}
    for name, val in value.items():
        if not isinstance(name, str) or not name or any(c in name for c in ":\r\n\0 "):
            raise ConfigError(f"headers: invalid header name {name!r}")
        if not isinstance(val, str) or any(c in val for c in _BREAKS):
            raise ConfigError(f"headers[{name!r}] must be a string without line breaks")
        if name.lower() in reserved:
            raise ConfigError(f"headers[{name!r}] is set by the transport and cannot be given")
        out[name] = val
    return out


def redacted_headers(headers: Mapping[str, str]) -> str:
    """A repr of headers that shows the names only: values often hold credentials."""
    return "{" + ", ".join(f"{name!r}: '***'" for name in headers) + "}"


def check_token(instance: Any, attribute: Any, value: Any) -> None:
    """An attrs validator for ``auth_token``; the value is never shown, it is a secret."""
    if value is not None and (
        not isinstance(value, str) or not value or any(c in value for c in _BREAKS)
    ):
        raise ConfigError("auth_token must be a non-empty string without line breaks")


def check_execution_id(instance: Any, attribute: Any, value: Any) -> None:
    """An attrs validator for ``execution_id``."""
    if value is not None and (not isinstance(value, str) or any(c in value for c in _BREAKS)):
        raise ConfigError(f"execution_id must be a string without line breaks, got {value!r}")


def check_header_name(instance: Any, attribute: Any, value: Any) -> None:
    """An attrs validator for a field that names a header."""
    if not isinstance(value, str) or not value or any(c in value for c in ":\r\n\0 "):
        raise ConfigError(f"{attribute.name} must be a header name, got {value!r}")
