"""Small composable validators for JSON input (settings, job payloads).

A check takes C{(value, field)} and returns the normalised value, or raises
L{ValidationError} naming the field.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from attrs import frozen

Check = Callable[[Any, str], Any]


class ValidationError(ValueError):
    """Input is invalid; C{field} names the offending key path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _type_name(value: object) -> str:
    return {type(None): "null", bool: "boolean", int: "integer", float: "number",
            str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def integer(low: int, high: int) -> Check:
    def check(value: Any, field: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(field, f"expected an integer, got {_type_name(value)}")
        if not low <= value <= high:
            raise ValidationError(field, f"must be between {low} and {high}")
        return value
    return check


def text(pattern: str | None = None, max_length: int = 4096,
         hint: str = "") -> Callable[[Any, str], str]:
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any, field: str) -> str:
        if not isinstance(value, str):
            raise ValidationError(field, f"expected a string, got {_type_name(value)}")
        if len(value) > max_length:
            raise ValidationError(field, f"longer than {max_length} characters")
        if compiled is not None and not compiled.fullmatch(value):
            raise ValidationError(field, f"invalid value {value!r}{': ' + hint if hint else ''}")
        return value
    return check


def optional(inner: Check) -> Check:
    def check(value: Any, field: str) -> Any:
        return None if value is None else inner(value, field)
    return check


def array(inner: Check, max_items: int = 1000) -> Check:
    def check(value: Any, field: str) -> list[Any]:
        if not isinstance(value, list):
            raise ValidationError(field, f"expected an array, got {_type_name(value)}")
        if len(value) > max_items:
            raise ValidationError(field, f"more than {max_items} items")
        items = [inner(item, f"{field}[{i}]") for i, item in enumerate(value)]
        return list(dict.fromkeys(items))
    return check


def absolute_path(value: Any, field: str) -> str:
    path = text(max_length=4096)(value, field)
    if "\x00" in path:  # no file system call accepts one
        raise ValidationError(field, "must not contain a NUL character")
    try:
        expanded = Path(path).expanduser()
    except RuntimeError:  # "~someone/..." of no such user
        raise ValidationError(field, f"cannot expand {path.split('/')[0]!r}") from None
    if not expanded.is_absolute():
        raise ValidationError(field, "must be an absolute path")
    return str(expanded)


def _split(url: str, field: str) -> SplitResult:
    try:
        return urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        raise ValidationError(field, "not a valid URL") from None


def http_url(value: Any, field: str) -> str:
    url = text(max_length=2048)(value, field)
    parts = _split(url, field)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(field, "must be an http:// or https:// URL")
    return url.rstrip("/")


def origin(value: Any, field: str) -> str:
    url = text(max_length=512)(value, field)
    if url in ("null", "file://"):
        return url
    parts = _split(url, field)
    if parts.scheme not in ("http", "https", "app") or not parts.netloc or parts.path:
        raise ValidationError(field, "must be an origin like http://localhost:5173")
    return url


def timezone(value: Any, field: str) -> str:
    name = text(max_length=64)(value, field)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name that is a folder of the tz database ("America" with the
        # tzdata package installed) or unreadable.
        raise ValidationError(field, f"unknown time zone {name!r}") from None
    return name


def boolean(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(field, f"expected a boolean, got {_type_name(value)}")
    return value


def timestamp(value: Any, field: str) -> str:
    """An ISO-8601 date-time (naive means UTC), normalised to C{...Z}."""
    raw = text(max_length=64)(value, field)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        # OverflowError: e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC.
        return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError):
        raise ValidationError(field, "expected an ISO-8601 date-time") from None


@frozen
class Field:
    """One setting: its check, its default and whether it is a secret."""

    check: Check
    default: Any
    doc: str
    secret: bool = False


Schema = Mapping[str, "Field | Schema"]


def defaults(schema: Schema) -> dict[str, Any]:
    """Return a fresh settings dict holding every default."""
    return {
        key: copy.deepcopy(spec.default) if isinstance(spec, Field) else defaults(spec)
        for key, spec in schema.items()
    }


def merge(current: Mapping[str, Any], update: Any, schema: Schema,
          prefix: str = "") -> dict[str, Any]:
    """
    Validate a partial update and return C{current} with it applied.

    @raise ValidationError: naming the first unknown key or invalid value.
    """
    if not isinstance(update, Mapping):
        raise ValidationError(prefix.rstrip(".") or "settings",
                            f"expected an object, got {_type_name(update)}")
    result = copy.deepcopy(dict(current))
    for key, value in update.items():
        field = prefix + str(key)
        spec = schema.get(key) if isinstance(key, str) else None
        if spec is None:
            raise ValidationError(field, "unknown setting")
        if isinstance(spec, Field):
            result[key] = spec.check(value, field)
        else:
            result[key] = merge(result.get(key) or defaults(spec), value, spec, field + ".")
    return result


def load(stored: Any, schema: Schema) -> dict[str, Any]:
    """
    Read stored settings leniently: unknown or invalid keys fall back to defaults.

    Settings written by a newer or older version never stop the daemon.
    """
    result = defaults(schema)
    if not isinstance(stored, Mapping):
        return result
    for key, spec in schema.items():
        if key not in stored:
            continue
        if isinstance(spec, Field):
            with contextlib.suppress(ValidationError):
                result[key] = spec.check(stored[key], key)
        else:
            result[key] = load(stored[key], spec)
    return result


def public_view(settings: Mapping[str, Any], schema: Schema) -> dict[str, Any]:
    """Return settings as shown to clients: each secret becomes C{<name>_set: bool}."""
    view: dict[str, Any] = {}
    for key, spec in schema.items():
        value = settings.get(key)
        if isinstance(spec, Field):
            if spec.secret:
                view[f"{key}_set"] = bool(value)
            else:
                view[key] = copy.deepcopy(value)
        else:
            view[key] = public_view(value or {}, spec)
    return view


def secrets_of(settings: Mapping[str, Any], schema: Schema) -> list[str]:
    """Return the values of every secret that is set (for log redaction)."""
    found: list[str] = []
    for key, spec in schema.items():
        value = settings.get(key)
        if isinstance(spec, Field):
            if spec.secret and isinstance(value, str) and value:
                found.append(value)
        elif isinstance(value, Mapping):
            found.extend(secrets_of(value, spec))
    return found
