"""Typed readers for environment variables that fail loudly, naming the variable.

Settings call these once at import; a bad value raises ``ImproperlyConfigured`` with the variable's name and
what was expected, which stops the web server, the worker and every management command at start-up.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def _fail(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"Invalid value for {name}: {value!r} (expected {expected}).")


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_optional_str(name: str) -> str | None:
    return _raw(name)


def env_required_str(name: str, reason: str) -> str:
    value = _raw(name)
    if value is None:
        raise ImproperlyConfigured(f"{name} must be set: {reason}.")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _fail(name, value, "true or false")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _fail(name, value, "an integer") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _fail(name, value, f"an integer between {minimum} and {maximum}")
    return number


def env_decimal(name: str, default: str, *, minimum: str, maximum: str) -> Decimal:
    value = _raw(name) or default
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _fail(name, value, "a number") from None
    if not number.is_finite() or not Decimal(minimum) <= number <= Decimal(maximum):
        raise _fail(name, value, f"a number between {minimum} and {maximum}")
    return number


def env_choice(name: str, default: str, choices: Sequence[str], *, case_insensitive: bool = True) -> str:
    value = _raw(name)
    if value is None:
        return default
    normalised = value.lower() if case_insensitive else value
    allowed = [c.lower() for c in choices] if case_insensitive else list(choices)
    if normalised not in allowed:
        raise _fail(name, value, "one of " + ", ".join(choices))
    return choices[allowed.index(normalised)]


def env_list(name: str, default: str = "") -> list[str]:
    value = _raw(name)
    raw = default if value is None else value
    return [item.strip() for item in raw.split(",") if item.strip()]


def check_http_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise _fail(name, url, "an http:// or https:// URL")
    return url.rstrip("/")


def env_url(name: str, default: str) -> str:
    return check_http_url(name, env_str(name, default))


def env_url_list(name: str) -> list[str]:
    urls = [check_http_url(name, url) for url in env_list(name)]
    return list(dict.fromkeys(urls))


def env_json_object(name: str) -> dict[str, dict[str, object]]:
    """A JSON object of objects (``{"anthropic": {"top_k": 40}}``); empty when unset."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise ImproperlyConfigured(f"{name} must map provider names to objects of parameters")
    return value
