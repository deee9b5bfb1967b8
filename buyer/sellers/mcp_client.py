"""Synchronous MCP client for one seller agent: the same methods and domain types as ``SellerRestClient``.

Wire, as the reference IAB Tech Lab seller agent (v2.4.2) serves it: Streamable HTTP at ``{base_url}/mcp/``
or legacy SSE at ``{base_url}/mcp-sse/sse``; tool results are JSON *text*. ``list_products`` and
``get_pricing`` answer in the legacy float shape (``"base_cpm": 15.0``, ``null`` for price on request);
``request_quote`` and ``get_deal_performance`` proxy the seller's REST endpoints and hand back their body
verbatim (``{"quote": {...}}`` with Money, or the REST error envelope as a *successful* tool result).

What goes over MCP and what does not — decided from the reference seller's source
(``src/ad_seller/interfaces/mcp_server.py``, read at commits ce8cd06 and 01c259a, which bracket v2.4.2):

- Its MCP server has no booking tool. Deals are booked over REST only (``POST /api/v1/deals``);
  ``create_deal_from_template`` books without a quote and ``bulk_deal_operations`` is a batch admin tool, so
  neither is a quote → deal booking. It has no tool to read a quote or a deal either.
- Its ``request_quote(product_id, deal_type, impressions)`` posts ``{product_id, deal_type[, impressions]}``
  to its own REST endpoint, without the caller's API key, flight dates or an idempotency key (which that
  endpoint requires), and returns the response text as is.

So each call goes over MCP only when the seller's tool declares every argument the call needs, and otherwise
to the seller's REST endpoint on the same base URL (the reference serves REST and MCP on one base URL), with
the same credential, through an internal :class:`SellerRestClient`:

- ``book_deal`` uses a ``book_deal(quote_id, idempotency_key[, buyer_identity, notes])`` tool when the server
  lists one taking what this booking carries (the sandbox seller has it), else REST ``/api/v1/deals``;
- ``request_quote`` uses the ``request_quote`` tool when it takes ``idempotency_key`` and the flight dates
  (plus ``target_cpm``/``buyer_identity``/``media_type`` when the request sets them), else REST
  ``/api/v1/quotes``. Against the reference seller that means REST: a quote without the requested flight,
  or a retry that is not idempotent, would be wrong;
- ``get_quote`` and ``get_deal`` are REST (no MCP tool exists); ``list_products``, ``deal_performance`` and
  ``health`` are MCP. The reference's ``list_products`` speaks the legacy vocabulary (deal types
  ``programmaticguaranteed``/``preferreddeal``/``privateauction``, float dollar prices) and omits what planning
  needs (formats, publisher, delivery type, impression limits): deal types are mapped to ``PG``/``PD``/``PA``,
  prices to exact Decimals, and such sparse entries are completed from the REST catalog on the same base URL,
  so an MCP seller yields the same products, and the same recommendations, as over REST.

The keys are the buyer's: a retry (ours, or a redelivered Celery task) replays the same quote or deal.

Sessions and threads: the SDK is async; every public method opens one MCP session (initialize, calls, close)
inside ``anyio.run`` on the calling thread, so nothing is shared between threads or left open between calls
(a ``ThreadPoolExecutor`` may call one client from several threads). Called from a thread that already runs
an event loop, the session runs on a short-lived helper thread instead.

Failures are :class:`SellerError`, like REST: ``timeout`` and ``connection_error`` (retryable, retried here
with bounded jittered backoff), ``http_<status>`` for an HTTP error on the MCP endpoint (retryable for
502/503/504), ``tool_error`` — or the seller's own code (``quote_already_booked``...) when its error text
carries one — for a tool that failed, ``invalid_response`` for a result that is not the JSON promised, and
``protocol_error`` for a JSON-RPC error. Only transport faults are retried, never a tool's answer.

The credential goes as ``X-Api-Key`` (or ``Authorization: Bearer``) to this seller only: the SDK follows
redirects only within the endpoint's origin. It is never logged, and it is scrubbed from every error message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    CallToolResult,
    Implementation,
    PaginatedRequestParams,
    TextContent,
    Tool,
)
from pydantic import ValidationError

from buyer.sellers.tls import tls_context
from buyer.words import count

from .client import SellerRestClient, negotiation_message
from .errors import SellerError
from .money import decimal_to_micros, micros_to_decimal, money, parse_legacy_float
from .parse import (
    InvalidResponse,
    deal_types,
    parse_deal,
    parse_deal_performance,
    parse_negotiation_round,
    parse_product,
    parse_quote,
)
from .rest import CREDENTIAL_SCHEMES, MAX_BACKOFF_S, RETRY_STATUSES, Secret, excerpt
from .types import BuyerIdentity, Deal, DealPerformance, NegotiationRound, Product, Quote, QuoteRequest

__all__ = ["MCP_PATHS", "TRANSPORTS", "SellerMcpClient"]

logger = logging.getLogger("buyer.sellers")

T = TypeVar("T")

TRANSPORTS = ("streamable_http", "sse")
MCP_PATHS: Mapping[str, str] = {"streamable_http": "/mcp/", "sse": "/mcp-sse/sse"}
CLIENT_INFO = Implementation(name="media-buyer-agent", version="0.1.0")
USER_AGENT = "media-buyer-agent/0.1.0 (AI media buyer; seller MCP client)"
# One MCP session (connect, initialize, the calls, close) may take at most this many ``timeout``s; each HTTP
# operation and each MCP request is bounded by ``timeout`` itself.
SESSION_DEADLINE_FACTOR = 3
_CODE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, ArithmeticError, RecursionError)


#: What ``_call_tool_if_fit`` answers when the server has no tool fit for the call: use REST instead.
_FALLBACK: Any = object()


class SellerMcpClient:
    """One seller's MCP surface (REST where MCP cannot serve a call). Not shared across sellers."""

    def __init__(
        self,
        base_url: str,
        *,
        credential: str | None = None,
        credential_scheme: str = "api_key",
        timeout: float = 10.0,
        max_retries: int = 2,
        transport: str = "streamable_http",
        backoff_base: float = 0.2,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if credential_scheme not in CREDENTIAL_SCHEMES:
            raise ValueError(f"credential_scheme must be one of {CREDENTIAL_SCHEMES}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.endpoint = self.base_url + MCP_PATHS[transport]
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.credential_scheme = credential_scheme
        self._credential = Secret(credential) if credential else None
        self._sleep = sleep if sleep is not None else time.sleep
        # REST for what the seller's MCP server cannot do. httpx's sync client is not documented as thread
        # safe, and these calls are few, so they take turns.
        self._rest = SellerRestClient(
            base_url,
            credential=credential,
            credential_scheme=credential_scheme,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            sleep=sleep,
        )
        self._rest_lock = threading.Lock()

    def __repr__(self) -> str:
        credential = "'***'" if self._credential is not None else "None"
        return (
            f"SellerMcpClient(base_url={self.base_url!r}, transport={self.transport!r}, "
            f"credential_scheme={self.credential_scheme!r}, credential={credential})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the REST fallback's connections. MCP sessions never outlive the call that opened them."""
        with self._rest_lock:
            self._rest.close()

    # -- discovery ---------------------------------------------------------------------------------

    def health(self) -> bool:
        """True when an MCP session opens and lists tools. Never raises; a single attempt."""

        async def probe(session: ClientSession) -> int:
            return len(await _list_tools(session))

        try:
            self._session("tools/list", probe, max_retries=0)
        except SellerError:
            return False
        return True

    def list_tools(self) -> list[str]:
        """The names of the tools the seller's MCP server lists."""

        async def names(session: ClientSession) -> list[str]:
            return [tool.name for tool in await _list_tools(session)]

        return self._session("tools/list", names)

    # -- catalog -----------------------------------------------------------------------------------

    def list_products(self, *, page_size: int = 100, max_products: int = 2000) -> list[Product]:
        """The catalog, up to ``max_products`` entries, in one ``list_products(limit=max_products)`` call.

        The tool has no offset, so there is nothing to page: ``page_size`` is checked and otherwise unused.
        Malformed entries are skipped (and counted in a warning), as REST does.
        """
        if page_size < 1 or max_products < 1:
            raise ValueError("page_size and max_products must be positive")
        payload = self._call_tool("list_products", {"limit": max_products})
        items = self._parse("list_products", _product_items, payload)
        products: dict[str, Product] = {}
        skipped = 0
        sparse = False
        for item in items:
            try:
                product = _product_from_mcp(item)
            except _PARSE_ERRORS:
                skipped += 1
                continue
            if len(products) < max_products:
                products.setdefault(product.product_id, product)
                sparse = sparse or _sparse(item)
        if skipped:
            logger.warning("seller %s: skipped %d malformed catalog entries", self, skipped)
        if sparse:
            products = self._completed_from_rest(products, max_products)
        return list(products.values())

    def _completed_from_rest(self, products: dict[str, Product], max_products: int) -> dict[str, Product]:
        """The reference seller's ``list_products`` names each product, its type, prices and deal types, but not
        its formats, publisher, delivery type or impression limits, which planning needs (a minimum volume or
        a cap decides how many impressions to ask for). Its REST catalog on the same base URL has them: the MCP
        list says *what* is for sale, REST completes each entry. Without REST the sparse entries stay as they
        are (the quote will still tell a minimum or a shortage)."""
        try:
            detailed = self._via_rest(lambda rest: rest.list_products(max_products=max_products))
        except SellerError as exc:
            logger.warning("seller %s: MCP catalog not completed over REST: %s", self, exc)
            return products
        by_id = {p.product_id: p for p in detailed}
        return {pid: by_id.get(pid, product) for pid, product in products.items()}

    # -- quote, book -------------------------------------------------------------------------------

    def request_quote(self, req: QuoteRequest) -> Quote:
        if req.target_cpm is not None:
            # No seller's quote tool takes a target price; REST carries it exactly, as Money.
            return self._via_rest(lambda rest: rest.request_quote(req))
        args: dict[str, Any] = {
            "idempotency_key": _idempotency_key(req.idempotency_key),
            "product_id": req.product_id,
            "deal_type": req.deal_type,
            "impressions": req.impressions,
            "flight_start": _wire_date(req.flight_start),
            "flight_end": _wire_date(req.flight_end),
        }
        # Sent only when set, so a tool without them still serves the common request.
        if req.buyer_identity is not None and req.buyer_identity.as_wire():
            args["buyer_identity"] = req.buyer_identity.as_wire()
        if req.media_type != "digital":
            args["media_type"] = req.media_type
        payload = self._call_tool_if_fit("request_quote", args)
        if payload is _FALLBACK:
            logger.debug("seller %s: request_quote over REST (the MCP tool cannot carry this request)", self)
            return self._via_rest(lambda rest: rest.request_quote(req))
        return self._parse("request_quote", _quote_from_mcp, payload)

    def get_quote(self, quote_id: str) -> Quote:
        """REST: MCP sellers have no quote-reading tool."""
        return self._via_rest(lambda rest: rest.get_quote(quote_id))

    def book_deal(
        self,
        *,
        idempotency_key: str,
        quote_id: str,
        buyer_identity: BuyerIdentity | None = None,
        notes: str | None = None,
    ) -> Deal:
        """The ``book_deal`` tool when the seller lists one fit for this booking, else REST ``/api/v1/deals``."""
        args: dict[str, Any] = {"idempotency_key": _idempotency_key(idempotency_key), "quote_id": quote_id}
        identity = buyer_identity.as_wire() if buyer_identity is not None else None
        if identity is not None:
            args["buyer_identity"] = identity
        if notes is not None:
            args["notes"] = notes
        payload = self._call_tool_if_fit("book_deal", args)
        if payload is _FALLBACK:
            logger.debug("seller %s: book_deal over REST (no MCP booking tool for this call)", self)
            return self._via_rest(
                lambda rest: rest.book_deal(
                    idempotency_key=idempotency_key, quote_id=quote_id, buyer_identity=buyer_identity, notes=notes
                )
            )
        return self._parse("book_deal", _deal_from_mcp, payload)

    def negotiate(
        self,
        *,
        idempotency_key: str,
        action: str,
        quote_id: str,
        buyer_price: Decimal | None = None,
        round_number: int | None = None,
        rationale: str | None = None,
    ) -> NegotiationRound:
        """The ``negotiate`` tool when the seller lists one fit for this message, else REST
        ``/api/v1/negotiations/messages`` (the reference seller's MCP tools cannot negotiate; its REST can)."""
        args = negotiation_message(
            idempotency_key=idempotency_key,
            action=action,
            quote_id=quote_id,
            buyer_price=buyer_price,
            round_number=round_number,
            rationale=rationale,
        )
        payload = self._call_tool_if_fit("negotiate", args)
        if payload is _FALLBACK:
            logger.debug("seller %s: negotiate over REST (no MCP negotiation tool for this message)", self)
            return self._via_rest(
                lambda rest: rest.negotiate(
                    idempotency_key=idempotency_key,
                    action=action,
                    quote_id=quote_id,
                    buyer_price=buyer_price,
                    round_number=round_number,
                    rationale=rationale,
                )
            )
        return self._parse("negotiate", parse_negotiation_round, payload)

    def get_deal(self, deal_id: str) -> Deal:
        """REST: MCP sellers have no deal-reading tool."""
        return self._via_rest(lambda rest: rest.get_deal(deal_id))

    def deal_performance(self, deal_id: str, *, as_of: datetime | None = None) -> DealPerformance:
        """Delivery to date. The MCP tool has no ``as_of``: it answers now, and the reading's time says so."""
        payload = self._call_tool("get_deal_performance", {"deal_id": deal_id})
        return self._parse("get_deal_performance", lambda p: parse_deal_performance(_checked(p), deal_id), payload)

    # -- internals: calls --------------------------------------------------------------------------

    def _call_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call one tool in its own session; its JSON result, or ``SellerError``."""

        async def call(session: ClientSession) -> CallToolResult:
            return await session.call_tool(name, arguments)

        return self._result(name, self._session(f"tools/call {name}", call))

    def _call_tool_if_fit(self, name: str, arguments: dict[str, Any]) -> Any:
        """Like ``_call_tool`` when the server lists ``name`` taking all ``arguments``; else ``_FALLBACK``."""

        async def call(session: ClientSession) -> CallToolResult:
            tools = {tool.name: tool for tool in await _list_tools(session)}
            tool = tools.get(name)
            if tool is None or not _accepts(tool, arguments):
                return _FALLBACK
            return await session.call_tool(name, arguments)

        result = self._session(f"tools/call {name}", call)
        return _FALLBACK if result is _FALLBACK else self._result(name, result)

    def _via_rest(self, call: Callable[[SellerRestClient], T]) -> T:
        with self._rest_lock:
            return call(self._rest)

    def _result(self, name: str, result: CallToolResult) -> Any:
        """A tool result → its decoded JSON; an error result → ``SellerError``."""
        text = "".join(block.text for block in result.content if isinstance(block, TextContent))
        if result.is_error:
            raise self._tool_error(name, text)
        if not text.strip():
            # FastMCP servers wrap a tool's text in ``structured_content = {"result": "<the same JSON text>"}``;
            # a server that sends only the structured part is read from it.
            structured = result.structured_content
            inner = structured.get("result") if isinstance(structured, dict) else None
            if isinstance(inner, str):
                text = inner
            elif isinstance(structured, dict):
                return structured
        try:
            payload = json.loads(text)
        except (ValueError, RecursionError):
            head = self._scrub(text[:400], 60)
            raise SellerError(f"{name}: result is not JSON ({head!r})", code="invalid_response") from None
        return payload

    def _tool_error(self, name: str, text: str) -> SellerError:
        """An ``isError`` result. Its text is JSON ``{"error", "message", "status"}`` on the sandbox seller,
        free text elsewhere; the seller's code is kept when it looks like one, like REST keeps it."""
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            body = None
        if isinstance(body, dict):
            code, message, status = _error_fields(body)
            return SellerError(f"{name}: {self._scrub(message)}", status=status, code=code or "tool_error")
        return SellerError(f"{name}: {self._scrub(text) or 'tool failed'}", code="tool_error")

    def _parse(self, name: str, parser: Callable[[Any], T], payload: Any) -> T:
        try:
            return parser(payload)
        except SellerError as exc:
            # An error envelope inside a successful result (the reference proxies REST errors that way).
            exc.message = f"{name}: {self._scrub(exc.message)}"
            raise
        except _PARSE_ERRORS as exc:
            raise SellerError(self._scrub(f"{name}: {exc}"), code="invalid_response") from None

    # -- internals: sessions -----------------------------------------------------------------------

    def _session(
        self,
        what: str,
        work: Callable[[ClientSession], Awaitable[T]],
        *,
        max_retries: int | None = None,
    ) -> T:
        """Run ``work`` in a fresh MCP session, retrying transport faults with bounded, jittered backoff."""
        attempts = (self.max_retries if max_retries is None else max_retries) + 1
        for attempt in range(attempts):
            started = time.monotonic()
            try:
                value = _run_sync(self._attempt, work)
            except SellerError as exc:
                logger.debug("seller MCP %s %s -> %s in %.1f ms", self.transport, what, exc.code, _ms_since(started))
                if not exc.retryable:
                    raise
                if attempt == attempts - 1:
                    exc.message = f"{exc.message} (gave up after {count(attempts, 'attempt')})"
                    raise
                delay = self._backoff(attempt)
                logger.debug("seller MCP %s: %s, retrying in %.2f s", what, exc.code, delay)
                self._sleep(delay)
                continue
            logger.debug("seller MCP %s %s -> ok in %.1f ms", self.transport, what, _ms_since(started))
            return value
        raise AssertionError("unreachable")  # pragma: no cover - the loop always returns or raises

    async def _attempt(self, work: Callable[[ClientSession], Awaitable[T]]) -> T:
        """One session. Whatever the SDK raises (often wrapped in exception groups) becomes a SellerError."""
        statuses: list[int] = []
        abort = anyio.CancelScope()
        try:
            with anyio.fail_after(self.timeout * SESSION_DEADLINE_FACTOR), abort:
                async with (
                    self._streams(statuses, abort) as (read_stream, write_stream),
                    ClientSession(
                        read_stream, write_stream, read_timeout_seconds=self.timeout, client_info=CLIENT_INFO
                    ) as session,
                ):
                    await session.initialize()
                    return await work(session)
        except Exception as exc:  # noqa: BLE001 - the SDK raises anything; every failure is classified
            raise self._classify(exc, statuses) from None
        # Only reached when ``abort`` was cancelled: an SSE message POST failed (see ``_streams``).
        raise self._classify(None, statuses)

    def _streams(self, statuses: list[int], abort: anyio.CancelScope) -> AbstractAsyncContextManager[Any]:
        async def record(response: httpx2.Response) -> None:
            # Message POSTs only: the optional GET stream and the closing DELETE may fail harmlessly, and a
            # failed SSE connect raises its own HTTPStatusError.
            if response.request.method == "POST" and response.status_code >= 400:
                statuses.append(response.status_code)
                if self.transport == "sse":
                    # The SSE transport only logs a failed message POST and the request then waits for an
                    # answer that cannot come; end the session now rather than at the read timeout.
                    abort.cancel()

        headers = {"User-Agent": USER_AGENT, **self._auth_headers()}
        hooks = {"response": [record]}
        if self.transport == "sse":

            def factory(
                headers: dict[str, str] | None = None,
                timeout: httpx2.Timeout | None = None,
                auth: httpx2.Auth | None = None,
            ) -> httpx2.AsyncClient:
                return httpx2.AsyncClient(
                    headers=headers, timeout=timeout, auth=auth, event_hooks=hooks, verify=tls_context()
                )

            return sse_client(
                self.endpoint,
                headers=headers,
                timeout=self.timeout,
                sse_read_timeout=self.timeout * SESSION_DEADLINE_FACTOR,
                httpx_client_factory=factory,
            )
        http_client = httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(self.timeout), event_hooks=hooks, verify=tls_context()
        )
        return _owning(http_client, streamable_http_client(self.endpoint, http_client=http_client))

    def _auth_headers(self) -> dict[str, str]:
        if self._credential is None:
            return {}
        if self.credential_scheme == "bearer":
            return {"Authorization": f"Bearer {self._credential.reveal()}"}
        return {"X-Api-Key": self._credential.reveal()}

    def _classify(self, exc: BaseException | None, statuses: list[int]) -> SellerError:
        """Map what a failed session raised to a SellerError; transport faults are retryable."""
        leaves = list(_leaves(exc)) if exc is not None else []
        status = next((s for s in reversed(statuses) if s in RETRY_STATUSES), statuses[-1] if statuses else None)
        for leaf in leaves:
            if isinstance(leaf, httpx2.HTTPStatusError):
                status = leaf.response.status_code
        if status is not None:
            # An HTTP error on the MCP endpoint explains whatever the SDK made of it (a JSON-RPC error, a
            # read that never got an answer...).
            return SellerError(
                f"MCP endpoint answered HTTP {status}",
                status=status,
                code=f"http_{status}",
                retryable=status in RETRY_STATUSES,
            )
        for leaf in leaves:
            if isinstance(leaf, TimeoutError | httpx2.TimeoutException) or (
                isinstance(leaf, MCPError) and leaf.code == REQUEST_TIMEOUT
            ):
                return SellerError(f"no answer within {self.timeout:g}s", code="timeout", retryable=True)
        for leaf in leaves:
            if isinstance(
                leaf,
                httpx2.NetworkError
                | httpx2.RemoteProtocolError
                | anyio.ClosedResourceError
                | anyio.BrokenResourceError
                | anyio.EndOfStream,
            ) or (isinstance(leaf, MCPError) and leaf.code == CONNECTION_CLOSED):
                return SellerError(self._describe(leaf), code="connection_error", retryable=True)
        for leaf in leaves:
            if isinstance(leaf, MCPError):
                return SellerError(self._scrub(f"JSON-RPC error {leaf.code}: {leaf.message}"), code="protocol_error")
            if isinstance(leaf, ValidationError):
                return SellerError("MCP answer does not match the protocol", code="invalid_response")
        first = leaves[0] if leaves else exc
        if first is None:  # pragma: no cover - an aborted session always recorded a status
            return SellerError("MCP session aborted", code="connection_error", retryable=True)
        if isinstance(first, httpx2.HTTPError):
            # A bad URL, an unsupported scheme: a retry cannot fix configuration.
            return SellerError(self._describe(first), code="transport_error")
        return SellerError(self._describe(first), code="mcp_error")

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}")

    def _scrub(self, text: str, limit: int = 200) -> str:
        """Seller text made short, printable and free of our credential (sellers echo keys back)."""
        if self._credential is not None:
            secret = self._credential.reveal()
            text = text[: limit + len(secret) + 1].replace(secret, "***")
        return excerpt(text, limit)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_base * 2**attempt, MAX_BACKOFF_S)
        return random.uniform(ceiling / 2, ceiling)


# -- session plumbing ------------------------------------------------------------------------------


async def _list_tools(session: ClientSession) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a paginator that never ends cannot hang a call
        page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _accepts(tool: Tool, arguments: Mapping[str, Any]) -> bool:
    """Whether ``tool``'s input schema declares every argument we would send."""
    schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return False
    required = schema.get("required") or []
    return set(arguments) <= set(properties) and set(required) <= set(arguments)


class _owning:
    """Enter a transport context, then close the httpx2 client we created for it."""

    def __init__(self, client: httpx2.AsyncClient, inner: AbstractAsyncContextManager[Any]) -> None:
        self._client = client
        self._inner = inner

    async def __aenter__(self) -> Any:
        await self._client.__aenter__()
        try:
            return await self._inner.__aenter__()
        except BaseException:
            await self._client.aclose()
            raise

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        try:
            return await self._inner.__aexit__(*exc_info)
        finally:
            await self._client.aclose()


def _run_sync(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run a coroutine function to completion from synchronous code, on a fresh event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_async_code = False
    else:
        in_async_code = True
    if not in_async_code:
        return anyio.run(fn, *args)
    # Called from async code (an async view, a notebook): anyio.run would refuse, so use a helper thread.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="seller-mcp") as pool:
        return pool.submit(anyio.run, fn, *args).result()


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """The exceptions inside (nested) exception groups, each followed by its causes."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BaseExceptionGroup):
            stack.extend(reversed(current.exceptions))
            continue
        yield current
        if current.__cause__ is not None:
            stack.append(current.__cause__)


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


# -- results → domain types ------------------------------------------------------------------------


def _error_fields(body: Mapping[str, Any]) -> tuple[str | None, str, int | None]:
    """``(code, message, status)`` from any error envelope: ``{"error", "message"}``, ``{"detail": ...}``."""
    detail = body.get("detail")
    if isinstance(detail, list):
        parts = []
        for item in detail[:10]:
            if isinstance(item, dict):
                loc = item.get("loc")
                where = ".".join(str(p) for p in loc) if isinstance(loc, list) else "?"
                parts.append(f"{where}: {item.get('msg') or 'invalid'}")
        return "validation_error", "; ".join(parts) or "request failed validation", None
    if isinstance(detail, str):
        return None, detail, None
    envelope = detail if isinstance(detail, dict) else body
    raw_code = envelope.get("error")
    raw_message = envelope.get("message")
    code = raw_code if isinstance(raw_code, str) and _CODE_RE.match(raw_code) else None
    if isinstance(raw_message, str) and raw_message:
        message = raw_message
    elif isinstance(raw_code, str) and raw_code:
        # The reference's ``{"error": "Product 'x' not found"}``: the "code" is the message.
        message = raw_code
    else:
        message = "tool failed"
    status = body.get("status")
    return code, message, status if isinstance(status, int) and not isinstance(status, bool) else None


def _checked(payload: Any, expected: str | None = None) -> Any:
    """Raise the seller's error when a *successful* tool result is an error envelope."""
    if (
        isinstance(payload, dict)
        and (expected is None or expected not in payload)
        and ("detail" in payload or isinstance(payload.get("error"), str))
    ):
        code, message, status = _error_fields(payload)
        raise SellerError(message, status=status, code=code or "tool_error")
    return payload


def _product_items(payload: Any) -> list[Any]:
    body = _checked(payload, "products")
    items = body.get("products") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise InvalidResponse("result.products is not a list")
    return items


def _product_from_mcp(item: Any) -> Product:
    """A ``list_products`` item → Product. The REST Product shape (Money ``base_price``) is accepted too."""
    if not isinstance(item, dict):
        raise InvalidResponse("product is not an object")
    if "base_price" in item or isinstance(item.get("ext"), dict):
        return parse_product(item)
    product_id = item.get("product_id")
    if not isinstance(product_id, str) or not product_id:
        raise InvalidResponse("product.product_id is missing")
    return Product(
        product_id=product_id,
        name=_text(item, "name"),
        description=_text(item, "description"),
        seller_organization_id=_text(item, "seller_organization_id"),
        inventory_type=_text(item, "inventory_type"),
        ad_formats=_texts(item.get("ad_formats")),
        delivery_type=_text(item, "delivery_type"),
        pricing_model=_text(item, "pricing_model") or "cpm",
        # null or absent: price on request. Never priced by us.
        base_cpm=_legacy_money(item.get("base_cpm")),
        floor_cpm=parse_legacy_float(item.get("floor_cpm")),
        available_impressions=_count(item, "available_impressions"),
        minimum_impressions=_count(item, "minimum_impressions") or 0,
        deal_types=deal_types(item.get("deal_types")),
        raw=item,
    )


# What a ``list_products`` item needs to be planned with as well as a REST Product; the reference seller's
# items carry none of them.
_PLANNING_FIELDS = ("ad_formats", "delivery_type", "available_impressions", "minimum_impressions")


def _sparse(item: Mapping[str, Any]) -> bool:
    """A legacy ``list_products`` item that lacks the planning fields (not a REST-shaped Product)."""
    if "base_price" in item or isinstance(item.get("ext"), dict):
        return False
    return not any(name in item for name in _PLANNING_FIELDS)


def _legacy_money(value: Any) -> Decimal | None:
    """A legacy float price → Decimal exactly as REST's Money would give it (whole micros, same digits)."""
    amount = parse_legacy_float(value)
    return None if amount is None else micros_to_decimal(decimal_to_micros(amount))


def _quote_from_mcp(payload: Any) -> Quote:
    return parse_quote(_with_money(_checked(payload, "quote"), "quote", ("pricing", ("base_cpm", "final_cpm"))))


def _deal_from_mcp(payload: Any) -> Deal:
    body = _with_money(_checked(payload, "deal"), "deal", ("pricing", ("base_cpm", "final_cpm")))
    return parse_deal(_with_money(body, "deal", ("openrtb_params", ("bidfloor",))))


def _with_money(payload: Any, key: str, where: tuple[str, tuple[str, ...]]) -> Any:
    """A quote or deal whose prices came as legacy floats → the same object with Money prices."""
    if not isinstance(payload, dict):
        return payload
    inner = payload.get(key)
    if not isinstance(inner, dict):
        inner = payload
    section_name, fields = where
    section = inner.get(section_name) if isinstance(inner, dict) else None
    if not isinstance(section, dict) or not any(_is_number(section.get(f)) for f in fields):
        return payload
    section = {**section}
    for field_name in fields:
        if _is_number(section.get(field_name)):
            amount = parse_legacy_float(section[field_name])
            section[field_name] = money(amount) if amount is not None else None
    fixed = {**inner, section_name: section}
    return {**payload, key: fixed} if inner is not payload else fixed


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _count(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidResponse(f"product.{key} is not an integer")
    return value


def _idempotency_key(key: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise ValueError("idempotency_key must be a non-empty string")
    return key


def _wire_date(value: date) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()
