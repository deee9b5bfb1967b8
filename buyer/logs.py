"""How the product logs: one line per record, JSON in production (``LOG_FORMAT=json``) and words in development
(``text``), each carrying what it happened in — the request id, the job, the seller, the agent role — and never a
secret.

- ``log_context(job_id=…, seller=…)`` sets fields for everything logged inside it (contextvars: per thread and
  per task). The request id comes from ``RequestIdMiddleware`` (the caller's ``X-Request-ID`` when it is sane,
  else a new one, answered in the same header); job steps, seller calls and agents set theirs.
- ``ContextFilter`` puts those fields on every record (the handlers' filter).
- The formatters redact, from the whole formatted line (message, arguments, traceback): every configured secret
  value (API keys, ``SECRET_KEY``, the credentials key, model keys, the database password) and anything shaped like
  one of our API keys or a bearer token.

No Django import at module level: the settings module names these classes in ``LOGGING``."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from pythonjsonlogger.json import JsonFormatter

P = ParamSpec("P")
R = TypeVar("R")
FIELDS = ("request_id", "job_id", "stage", "seller", "agent_role")
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("buyer_log_context", default={})  # noqa: B039 - never mutated

REDACTED = "[redacted]"
# Our API keys (mba_<prefix>_<secret>), bearer tokens, and provider keys that start with sk-.
_SHAPES = re.compile(r"\bmba_[0-9a-f]+_[A-Za-z0-9_\-]+|(?i:bearer)\s+[A-Za-z0-9._~+/=\-]{8,}|\bsk-[A-Za-z0-9_\-]{12,}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")


@contextmanager
def log_context(**fields: object) -> Iterator[None]:
    """Within, every log record carries these fields (None leaves a field as it was)."""
    token = _context.set({**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get())


def carrying_log_context(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` running in another thread (a pool's) with the log context of the thread that wraps it: a seller
    call made in parallel still logs the job it belongs to."""
    fields = current_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with log_context(**fields):
            return fn(*args, **kwargs)

    return run


class ContextFilter(logging.Filter):
    """Every record gets each context field (empty when not set), so a JSON line always has the same keys."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _context.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, context.get(name, ""))
        return True


def _secrets() -> list[str]:
    """The secret values configured now, longest first (a short one inside a long one is replaced after it)."""
    try:
        from django.conf import settings

        names = (
            "API_KEY",
            "SECRET_KEY",
            "SELLER_CREDENTIALS_KEY",
            "ANTHROPIC_API_KEY",
            "OPENDIRECT_API_KEY",
            "OPENDIRECT_TOKEN",
        )
        values = [str(getattr(settings, name, "") or "") for name in names]
        values.append(str(settings.DATABASES["default"].get("PASSWORD") or ""))
        values += [str(value or "") for value in getattr(settings, "LLM_PROVIDER_PARAMS", {}).values()]
    except Exception:  # noqa: BLE001 - logging before settings are configured: shapes only
        return []
    return sorted({value for value in values if len(value) >= 6}, key=len, reverse=True)


def redact(text: str, secrets: list[str] | None = None) -> str:
    for secret in _secrets() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return _SHAPES.sub(REDACTED, text)


class TextFormatter(logging.Formatter):
    """``time level logger message [request_id=… job_id=…]``, redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{name}={getattr(record, name)}" for name in FIELDS if getattr(record, name, ""))
        return redact(f"{line} [{context}]" if context else line)


class JsonLineFormatter(JsonFormatter):
    """One JSON object a line: time, level, logger, message, the context fields, the traceback; redacted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def request_id_for(given: str) -> str:
    """The id of a request: the caller's ``X-Request-ID`` when it is sane (64 characters at most, letters, digits,
    ``.``, ``_``, ``-``), else a new one."""
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


class RequestIdMiddleware:
    """The request's id in the log context and in the answer's ``X-Request-ID`` (the caller's when sane).

    The id stays set until Django's ``request_finished``, so the line Django itself logs for an error answer
    (after the middleware has returned) carries it too."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from django.core.signals import request_finished

        self.get_response = get_response
        request_finished.connect(_forget_request, dispatch_uid="buyer.logs.forget_request")

    def __call__(self, request: Any) -> Any:
        request_id = request_id_for(request.headers.get("X-Request-ID", ""))
        _context.set({**_context.get(), "request_id": request_id})
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


def _forget_request(**kwargs: object) -> None:
    context = _context.get()
    if "request_id" in context:
        _context.set({k: v for k, v in context.items() if k != "request_id"})
