"""Fast reads: the API's busiest GETs answered in the web process's event loop, without Django's request cycle.

``GET /bookings`` and ``GET /bookings/{id}`` are what dashboards and agents poll. Through Django each costs
the middleware chain, ninja's routing and response validation and, above all, the ORM compiling the same SQL
on every request. Here the same querysets are compiled to SQL once (``buyer.prepared.PreparedQuery``), run on an
asynchronous PostgreSQL pool of the web process, turned into the same rows and model instances as the ORM's,
and given to the same presenters and the same JSON renderer, so the answer is Django's byte for byte (the tests
compare the two).

Only the ordinary request is served here: a GET on PostgreSQL with a valid ``X-API-Key`` that has the read
scope and is within its rate limit, well-formed parameters, an allowed host and no CORS origin. Anything else
(no key, a bad parameter, an unknown job, a key whose ``last_used_at`` is due to be written, a database error)
goes on to Django, which answers it as it always has: every error answer stays Django's.

Off with ``WEB_FAST_READS=false``; on SQLite there is nothing to do (everything goes to Django)."""

from __future__ import annotations

import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import connections
from django.http.request import split_domain_port, validate_host
from psycopg_pool import PoolTimeout
from starlette.types import ASGIApp, Receive, Scope, Send

from buyer.apikeys.models import Scope as KeyScope
from buyer.apikeys.services import Principal, api_key_match, api_key_prefix, api_key_use_is_recorded
from buyer.logs import request_id_for
from buyer.prepared import PreparedQuery, Rows

logger = logging.getLogger(__name__)

_PREFIX = "\0prefix"  # stands for the key's prefix while its query is compiled


CHECKOUT_TIMEOUT = 0.25
"""Seconds a fast read waits for a connection of its pool before leaving the request to Django."""


class Database:
    """An asynchronous pool on Django's default PostgreSQL database: the same connection settings and the same
    type loaders (JSON as text for the fields to parse, timestamps in Django's time zone), autocommit."""

    def __init__(self, size: int) -> None:
        import psycopg
        from psycopg.types.datetime import TimestamptzLoader
        from psycopg_pool import AsyncConnectionPool

        django_connection = connections["default"]
        params = django_connection.get_connection_params()
        params.pop("cursor_factory", None)
        # Django's loaders (its map is shared: copied), but psycopg's own timestamptz loader, which is compiled
        # (Django's subclass of it parses in Python); the session is in Django's time zone, so both agree.
        context = psycopg.adapt.AdaptersMap(params["context"])
        context.register_loader("timestamptz", TimestamptzLoader)
        params["context"] = context
        time_zone = django_connection.timezone_name

        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            if time_zone and conn.info.parameter_status("TimeZone") != time_zone:
                await conn.execute("SELECT set_config('TimeZone', %s, false)", [time_zone])

        self.pool = AsyncConnectionPool(
            kwargs={**params, "autocommit": True},
            min_size=1,
            max_size=size,
            configure=configure,
            open=False,
            timeout=CHECKOUT_TIMEOUT,
            name="fast-reads",
        )

    async def fetch(self, *queries: tuple[str, Sequence[object]], snapshot: bool = False) -> list[Rows]:
        """Run each (sql, params) on one connection, sent together (one round trip), as prepared statements
        (the same few, planned once per connection): the rows of each. ``snapshot``: all of them in one
        read-only REPEATABLE READ transaction, so they see the same committed writes."""
        async with self.pool.connection() as conn:
            if len(queries) == 1 and not snapshot:
                sql, params = queries[0]
                return [await (await conn.execute(sql, params, prepare=True)).fetchall()]
            async with conn.pipeline():
                if snapshot:
                    await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    cursors = [await conn.cursor().execute(sql, params, prepare=True) for sql, params in queries]
                finally:
                    if snapshot:
                        await conn.execute("COMMIT")
            return [await cursor.fetchall() for cursor in cursors]


class RateLimiter:
    """``buyer.ratelimit``'s counters, counted without blocking the event loop: the same cache keys in the same
    Redis as Django's cache, or the process's own memory (no I/O) without Redis."""

    def __init__(self) -> None:
        from django.core.cache import caches

        self.cache = caches["ratelimit"]
        self.redis: Any = None
        if settings.REDIS_URL and "redis" in type(self.cache).__module__:
            import redis.asyncio

            self.redis = redis.asyncio.Redis.from_url(settings.REDIS_URL)

    async def allow(self, bucket: str) -> bool:
        from buyer.ratelimit import COUNTER_TIMEOUT, rate_limit_check, rate_limit_window

        limit = settings.API_RATE_LIMIT_PER_MINUTE
        if limit <= 0:
            return True
        if self.redis is None:
            return rate_limit_check(bucket)[0]
        key = self.cache.make_and_validate_key(rate_limit_window(bucket)[0])
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(key, 0, ex=COUNTER_TIMEOUT, nx=True)
            pipe.incr(key)
            _, count = await pipe.execute()
        return int(count) <= limit

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def ninja_response(view: Callable[..., Any]) -> Callable[[Any], Any]:
    """What the ninja route ``view`` does to its result before rendering it: validated against the route's
    response schema and dumped with the route's options (field order, coercions), as ``Operation`` does."""
    from ninja.operation import ResponseObject

    operation = view._ninja_operation  # type: ignore[attr-defined]
    model = operation.response_models[200]
    options = {
        "by_alias": operation.by_alias,
        "exclude_unset": operation.exclude_unset,
        "exclude_defaults": operation.exclude_defaults,
        "exclude_none": operation.exclude_none,
    }
    context = {"request": None, "response_status": 200}

    def shape(result: Any) -> Any:
        validated = model.model_validate(ResponseObject(result), context=context)
        return validated.model_dump(context=context, **options)["response"]

    return shape


class Answers:
    """Rendered answers, each kept with the version of the data it was rendered from (a sum that triggers move
    on with every write, read in the same snapshot as the data): an answer is given again only to a reader who
    finds the same version, so it is never stale. At most ``budget`` bytes of them, the least recently given
    dropped first."""

    def __init__(self, budget: int = 32 * 2**20) -> None:
        self.budget = budget
        self.entries: OrderedDict[Hashable, tuple[Hashable, bytes]] = OrderedDict()
        self.size = 0
        self.hits = self.misses = 0

    def version_of(self, key: Hashable) -> Hashable | None:
        entry = self.entries.get(key)
        return None if entry is None else entry[0]

    def get(self, key: Hashable, version: Hashable) -> bytes | None:
        entry = self.entries.get(key)
        if entry is not None and entry[0] == version:
            self.hits += 1
            self.entries.move_to_end(key)
            return entry[1]
        self.misses += 1
        return None

    def put(self, key: Hashable, version: Hashable, body: bytes) -> bytes:
        """Keep ``body`` (the least recently given go first beyond the budget); returns it."""
        old = self.entries.pop(key, None)
        if old is not None:
            self.size -= len(old[1])
        if len(body) <= self.budget // 8:  # one huge answer must not push out all the others
            self.entries[key] = (version, body)
            self.size += len(body)
        while self.size > self.budget:
            _, (_, dropped) = self.entries.popitem(last=False)
            self.size -= len(dropped)
        return body


@dataclass
class Request:
    """What a fast route reads: the path's match, the query (each name once) and the caller; where to read,
    how to render, and the answers already rendered."""

    match: re.Match[str]
    query: dict[str, str]
    principal: Principal
    db: Database
    render: Callable[[Any], bytes]
    answers: Answers


Handler = Callable[[Request], Awaitable[bytes | None]]
"""A fast route: the body of its 200 answer, or None to let Django answer."""


@dataclass
class Route:
    pattern: re.Pattern[str]
    handler: Handler
    params: frozenset[str] = field(default_factory=frozenset)
    """The query parameters it understands; a request with any other goes to Django."""


UUID_PATTERN = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


def _secure(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    """``HttpRequest.is_secure()`` for this request."""
    proxy = settings.SECURE_PROXY_SSL_HEADER
    if proxy:
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        value = headers.get(name)
        if value is not None:
            return value.decode("latin-1").split(",", 1)[0].strip() == proxy[1]
    return scope.get("scheme") == "https"


_running: FastReads | None = None


def running() -> FastReads | None:
    """This process's fast reads while its server runs with them (PostgreSQL), else None."""
    return _running


class FastReads:
    """An ASGI app: the routes it can answer here, everything else to ``fallback`` (Django). Its routes also
    answer the MCP tools that read the same thing (``read``)."""

    def __init__(self, fallback: ASGIApp, routes: Iterable[Route], *, connections: int = 4) -> None:
        self.fallback = fallback
        self.routes = list(routes)
        self.connections = connections
        self.db: Database | None = None
        self.limiter: RateLimiter | None = None
        self.key_query: PreparedQuery | None = None
        self.render: Callable[[Any], bytes] | None = None
        self.answers = Answers()
        self.warned_at = -math.inf

    @staticmethod
    def enabled() -> bool:
        return bool(settings.WEB_FAST_READS) and connections["default"].vendor == "postgresql"

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """Open the pool (without waiting for the database: until it answers, Django answers) for the
        server's lifetime."""
        if not self.enabled():
            yield
            return
        from buyer.api import api
        from buyer.apikeys.models import ApiKey

        renderer = api.renderer
        self.render = lambda data: renderer.render(None, data, response_status=200).encode()  # type: ignore[arg-type]
        keys = ApiKey.objects.filter(prefix=_PREFIX, revoked_at__isnull=True)[:1]
        self.key_query = PreparedQuery(keys, _PREFIX)
        self.limiter = RateLimiter()
        db = Database(self.connections)
        await db.pool.open(wait=False)
        self.db = db
        global _running
        _running = self
        try:
            yield
        finally:
            if _running is self:
                _running = None
            self.db = None
            await db.pool.close()
            await self.limiter.close()

    async def read(self, path: str, query: dict[str, str], principal: Principal) -> bytes | None:
        """The body a fast route answers ``path`` with, for a caller already authenticated and counted (an MCP
        tool); None when no route takes it or the route leaves it to the caller's own way."""
        if self.db is None or self.render is None:
            return None
        for route in self.routes:
            match = route.pattern.fullmatch(path)
            if match is not None:
                try:
                    return await route.handler(Request(match, query, principal, self.db, self.render, self.answers))
                except Exception:  # noqa: BLE001 (whatever failed, the caller answers its own way)
                    self._warn(f"fast read of {path} left to the caller", exc_info=True)
                    return None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.db is not None and scope["type"] == "http" and scope["method"] == "GET":
            for route in self.routes:
                match = route.pattern.fullmatch(scope["path"])
                if match is not None:
                    body = await self._answer(route, match, scope)
                    if body is not None:
                        await send({"type": "http.response.start", "status": 200, "headers": body[1]})
                        await send({"type": "http.response.body", "body": body[0]})
                        return
                    break
        await self.fallback(scope, receive, send)

    async def _answer(self, route: Route, match: re.Match[str], scope: Scope) -> tuple[bytes, list[Any]] | None:
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in headers or b"_" in name:
                return None  # repeated, or a name WSGI would merge with another: Django decides what it means
            headers[name] = value
        if b"origin" in headers or b"x-forwarded-host" in headers:
            return None  # CORS answers and forwarded hosts are Django's
        if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
            return None  # a body: Django's bound on it (413) applies
        host = headers.get(b"host", b"").decode("latin-1")
        domain, _port = split_domain_port(host)
        if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
            return None
        secure = _secure(scope, headers)
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None
        query = _query(scope.get("query_string", b""), route.params)
        presented = headers.get(b"x-api-key", b"").decode("latin-1")  # as Django reads it: not stripped
        if query is None or not presented:
            return None
        try:
            principal = await self._principal(presented)
            if principal is None or not principal.has_scope(KeyScope.READ):
                return None
            assert self.limiter is not None and self.db is not None and self.render is not None
            request = Request(
                match=match, query=query, principal=principal, db=self.db, render=self.render, answers=self.answers
            )
            body = await route.handler(request)
            # Counted only when answered here: a request left to Django is counted there, once.
            if body is None or not await self.limiter.allow(f"rest:{principal.api_key_id or principal.name}"):
                return None  # over the limit: Django counts it too, and answers 429
        except PoolTimeout:  # every connection busy, or the database unreachable: Django answers, at once
            self._warn(f"fast read of {scope['path']} left to Django: no database connection within the timeout")
            return None
        except Exception:  # noqa: BLE001 (whatever failed, Django answers the request, as it would have)
            self._warn(f"fast read of {scope['path']} left to Django", exc_info=True)
            return None
        request_id = request_id_for(headers.get(b"x-request-id", b"").decode("latin-1"))
        return body, [*response_headers(len(body), secure=secure), (b"x-request-id", request_id.encode())]

    def _warn(self, message: str, *, exc_info: bool = False) -> None:
        """At most one warning a minute: a database outage must not flood the log with a line per request."""
        now = time.monotonic()
        if now - self.warned_at >= 60:
            self.warned_at = now
            logger.warning(message, exc_info=exc_info)

    async def _principal(self, presented: str) -> Principal | None:
        """Who the key belongs to, as ``api_key_authenticate`` decides; None also when its use is due to be
        recorded (Django writes ``last_used_at``)."""
        prefix = api_key_prefix(presented)
        key = None
        if prefix is not None:
            assert self.db is not None and self.key_query is not None
            (rows,) = await self.db.fetch((self.key_query.sql, self.key_query.bind(prefix)))
            found = self.key_query.models(rows)
            key = found[0] if found else None
        principal = api_key_match(presented, key)
        recorded = key is None or principal is None or principal.api_key_id != key.pk or api_key_use_is_recorded(key)
        return principal if recorded else None


def _query(raw: bytes, allowed: frozenset[str]) -> dict[str, str] | None:
    """Each parameter once, none unknown, none empty; else None (Django's to judge)."""
    try:
        pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, strict_parsing=bool(raw))
    except ValueError:
        return None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed or name in query or not value:
            return None
        query[name] = value
    return query


def response_headers(length: int, *, secure: bool) -> list[tuple[bytes, bytes]]:
    """What the API's middleware stack puts on a JSON answer (``buyer.web.API_MIDDLEWARE``)."""
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(length).encode()),
        (b"vary", b"origin"),  # corsheaders, on every answer
    ]
    if settings.X_FRAME_OPTIONS:
        headers.append((b"x-frame-options", settings.X_FRAME_OPTIONS.upper().encode()))
    if secure and settings.SECURE_HSTS_SECONDS:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        policy = policy if isinstance(policy, str) else ",".join(policy)
        headers.append((b"referrer-policy", policy.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    return headers
