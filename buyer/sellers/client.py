"""Synchronous REST client for one seller agent (IAB Tech Lab seller agent protocol, v2.4.x).

The wire is the reference seller's (captured responses in ``tests/fixtures/seller-samples``). Transport
concerns (credentials, retries, error envelopes, size caps) are in ``rest.py``; JSON → domain types in
``parse.py``. Every failure surfaces as ``SellerError``; a wrong argument from our own code is a
``ValueError``/``TypeError`` raised before anything is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import httpx

from .errors import SellerError
from .money import money
from .parse import (
    parse_deal,
    parse_deal_performance,
    parse_negotiation_round,
    parse_product,
    parse_product_page,
    parse_quote,
)
from .rest import SellerHttp, path_segment
from .types import BuyerIdentity, Deal, DealPerformance, NegotiationRound, Product, Quote, QuoteRequest

__all__ = ["SellerRestClient", "fetch_catalogs"]

logger = logging.getLogger("buyer.sellers")

T = TypeVar("T")

# The seller answers 422 above this ``limit``.
MAX_PAGE_SIZE = 500
NEGOTIATION_ACTIONS = frozenset({"counter", "accept", "reject", "final_offer"})
_PRICED_ACTIONS = frozenset({"counter", "final_offer"})
# Hostile JSON can break a parser in more ways than ValueError; all of them mean "invalid response".
_PARSE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, ArithmeticError)


def negotiation_message(
    *,
    idempotency_key: str,
    action: str,
    quote_id: str,
    buyer_price: Decimal | None = None,
    round_number: int | None = None,
    rationale: str | None = None,
) -> dict[str, Any]:
    """The wire body of one negotiation message (REST ``/api/v1/negotiations/messages`` and an MCP
    ``negotiate`` tool take the same), checked before it is sent: the seller's answer (a 422 or a 400) would
    cost a round trip and, for a counter without a price, tell us nothing we do not already know."""
    if action not in NEGOTIATION_ACTIONS:
        raise ValueError(f"action must be one of {sorted(NEGOTIATION_ACTIONS)}")
    if action in _PRICED_ACTIONS and buyer_price is None:
        raise ValueError(f"action {action!r} requires buyer_price")
    if action == "reject" and buyer_price is not None:
        raise ValueError("action 'reject' must not carry buyer_price")
    # The reference seller answers 404 "Proposal not found" to any message carrying a negotiation_id (alone
    # or beside the quote_id): a negotiation is continued by its quote_id only.
    body: dict[str, Any] = {"idempotency_key": _idempotency_key(idempotency_key), "action": action}
    body["quote_id"] = quote_id
    if buyer_price is not None:
        body["buyer_price"] = _wire_money(buyer_price, "buyer_price")
    if round_number is not None:
        body["round_number"] = round_number
    if rationale is not None:
        body["rationale"] = rationale
    return body


class SellerRestClient:
    """One seller's REST surface. Not shared across sellers: the credential belongs to this seller only."""

    def __init__(
        self,
        base_url: str,
        *,
        credential: str | None = None,
        credential_scheme: str = "api_key",
        timeout: float = 10.0,
        max_retries: int = 2,
        backoff_base: float = 0.2,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.base_url = base_url
        self._http = SellerHttp(
            base_url,
            credential=credential,
            credential_scheme=credential_scheme,
            timeout=timeout,
            max_retries=max_retries,
            backoff_base=backoff_base,
            transport=transport,
            sleep_fn=sleep,
        )

    def __repr__(self) -> str:
        credential = "'***'" if self._http.has_credential else "None"
        return (
            f"SellerRestClient(base_url={self.base_url!r}, "
            f"credential_scheme={self._http.credential_scheme!r}, credential={credential})"
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
        self._http.close()

    # -- discovery ---------------------------------------------------------------------------------

    def health(self) -> bool:
        """True when the seller says it is healthy. Never raises: a probe answers, it does not fail."""
        try:
            # A single attempt: retrying a dead seller only delays the answer the probe exists to give.
            _, payload = self._http.request("GET", "/health", max_retries=0)
        except SellerError:
            return False
        return isinstance(payload, dict) and str(payload.get("status", "")).lower() in {"healthy", "ok"}

    def agent_card(self) -> dict[str, Any]:
        return self._call("GET", "/.well-known/agent.json", _json_object)

    # -- catalog -----------------------------------------------------------------------------------

    def list_products(self, *, page_size: int = 100, max_products: int = 2000) -> list[Product]:
        """The whole catalog, page by page, up to ``max_products`` catalog entries.

        Malformed products are skipped (and counted in a warning) rather than failing the catalog:
        one bad entry out of hundreds should not hide every other product from the planner.
        """
        if page_size < 1 or max_products < 1:
            raise ValueError("page_size and max_products must be positive")
        page_size = min(page_size, MAX_PAGE_SIZE)
        products: dict[str, Product] = {}
        seen_ids: set[str] = set()
        offset = skipped = 0
        # ``offset`` counts catalog entries walked, valid or not, so the loop is bounded even when a
        # seller returns nothing but garbage.
        while offset < max_products and len(products) < max_products:
            params = {"limit": min(page_size, max_products - offset), "offset": offset}
            status, payload = self._http.request("GET", "/products", params=params)
            items, total = self._parse("GET", "/products", status, parse_product_page, payload)
            if not items:
                break
            page_ids = {
                item["product_id"]
                for item in items
                if isinstance(item, dict) and isinstance(item.get("product_id"), str)
            }
            if page_ids and page_ids <= seen_ids:
                # A seller that ignores ``offset`` serves page one forever; stop instead of looping.
                logger.warning("seller %s repeated a catalog page; stopping at %d products", self, offset)
                break
            seen_ids |= page_ids
            for item in items:
                try:
                    product = parse_product(item)
                except _PARSE_ERRORS:
                    skipped += 1
                    continue
                if len(products) < max_products:
                    products.setdefault(product.product_id, product)
            offset += len(items)
            if total is not None and offset >= total:
                break
        if skipped:
            logger.warning("seller %s: skipped %d malformed catalog entries", self, skipped)
        return list(products.values())

    def get_product(self, product_id: str) -> Product:
        return self._call("GET", f"/products/{path_segment(product_id)}", parse_product)

    # -- quote, book -------------------------------------------------------------------------------

    def request_quote(self, req: QuoteRequest) -> Quote:
        body: dict[str, Any] = {
            "idempotency_key": _idempotency_key(req.idempotency_key),
            "product_id": req.product_id,
            "deal_type": req.deal_type,
            "impressions": req.impressions,
            "flight_start": _wire_date(req.flight_start),
            "flight_end": _wire_date(req.flight_end),
            "media_type": req.media_type,
        }
        if req.target_cpm is not None:
            body["target_cpm"] = _wire_money(req.target_cpm, "target_cpm")
        identity = _wire_identity(req.buyer_identity)
        if identity is not None:
            body["buyer_identity"] = identity
        return self._call("POST", "/api/v1/quotes", parse_quote, body=body)

    def get_quote(self, quote_id: str) -> Quote:
        return self._call("GET", f"/api/v1/quotes/{path_segment(quote_id)}", parse_quote)

    def book_deal(
        self,
        *,
        idempotency_key: str,
        quote_id: str,
        buyer_identity: BuyerIdentity | None = None,
        notes: str | None = None,
    ) -> Deal:
        body: dict[str, Any] = {"idempotency_key": _idempotency_key(idempotency_key), "quote_id": quote_id}
        identity = _wire_identity(buyer_identity)
        if identity is not None:
            body["buyer_identity"] = identity
        if notes is not None:
            body["notes"] = notes
        return self._call("POST", "/api/v1/deals", parse_deal, body=body)

    def get_deal(self, deal_id: str) -> Deal:
        return self._call("GET", f"/api/v1/deals/{path_segment(deal_id)}", parse_deal)

    def deal_performance(self, deal_id: str, *, as_of: datetime | None = None) -> DealPerformance:
        """Delivery to date. ``as_of`` asks for an earlier moment (``?as_of=``): the sandbox seller answers it,
        to replay a demo's history; a seller without it answers now, and its reading's own time says so."""
        path = f"/api/v1/deals/{path_segment(deal_id)}/performance"
        params = {"as_of": as_of.isoformat()} if as_of is not None else None
        status, payload = self._http.request("GET", path, params=params)
        return self._parse("GET", path, status, parse_deal_performance, payload, deal_id)

    # -- negotiation -------------------------------------------------------------------------------

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
        body = negotiation_message(
            idempotency_key=idempotency_key,
            action=action,
            quote_id=quote_id,
            buyer_price=buyer_price,
            round_number=round_number,
            rationale=rationale,
        )
        return self._call("POST", "/api/v1/negotiations/messages", parse_negotiation_round, body=body)

    # -- media kit (public, shapes still evolving on the seller: returned as parsed JSON) ---------------

    def media_kit(self) -> dict[str, Any]:
        return self._call("GET", "/media-kit", _json_object)

    def media_kit_packages(self) -> list[dict[str, Any]]:
        return self._call("GET", "/media-kit/packages", lambda p: _json_list(p, "packages"))

    def media_kit_package(self, package_id: str) -> dict[str, Any]:
        return self._call("GET", f"/media-kit/packages/{path_segment(package_id)}", _json_object)

    def media_kit_search(self, query: str, **filters: Any) -> list[dict[str, Any]]:
        # A read despite being a POST, so the transport's retries are harmless without an idempotency key.
        body = {**filters, "query": query}
        return self._call("POST", "/media-kit/search", lambda p: _json_list(p, "results"), body=body)

    # -- internals ---------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        parser: Callable[[Any], T],
        *,
        body: Mapping[str, Any] | None = None,
    ) -> T:
        status, payload = self._http.request(method, path, body=body)
        return self._parse(method, path, status, parser, payload)

    def _parse(self, method: str, path: str, status: int, parser: Callable[..., T], *args: Any) -> T:
        try:
            return parser(*args)
        except _PARSE_ERRORS as exc:
            # ``from None``: the cause may quote seller data at length; the message below is capped.
            raise SellerError(
                self._http.scrub(f"{method} {path}: {exc}"), status=status, code="invalid_response"
            ) from None


class CatalogSource(Protocol):
    """What ``fetch_catalogs`` asks of a client: a REST, MCP or guarded one."""

    def list_products(self) -> list[Product]: ...  # guarded AdCP clients also take ``brief=``


def fetch_catalogs(
    clients: Mapping[str, CatalogSource], *, max_workers: int = 8, brief: str = ""
) -> dict[str, list[Product] | SellerError]:
    """Every seller's catalog, fetched in parallel; a failing seller yields its error, never an exception.

    ``brief``: the campaign in words, sent to the sellers that search by brief (AdCP ``get_products``). Each
    client is used by exactly one worker thread, so no httpx client is shared across threads.
    """
    if not clients:
        return {}
    results: dict[str, list[Product] | SellerError] = {}
    workers = max(1, min(max_workers, len(clients)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seller-catalog") as pool:
        futures = {}
        for name, client in clients.items():
            options = {"brief": brief} if brief and _searches_by_brief(client) else {}
            futures[pool.submit(client.list_products, **options)] = name
        for future in as_completed(futures):
            name = futures[future]
            try:
                results[name] = future.result()
            except SellerError as exc:
                results[name] = exc
            except Exception as exc:  # a bug with one seller must not cost us the others
                logger.warning("catalog fetch for seller %r failed unexpectedly", name, exc_info=True)
                results[name] = SellerError(f"unexpected {type(exc).__name__}", code="unexpected_error")
    return {name: results[name] for name in clients}


def _searches_by_brief(client: Any) -> bool:
    return getattr(client, "protocol", "") == "adcp"


# -- wire helpers ----------------------------------------------------------------------------------


def _json_object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValueError("response is not a JSON object")
    return payload


def _json_list(payload: Any, key: str) -> list[dict[str, Any]]:
    items = payload.get(key) if isinstance(payload, dict) else payload
    if not isinstance(items, list):
        raise ValueError(f"response.{key} is not a list")
    return [item for item in items if isinstance(item, dict)]


def _idempotency_key(key: str) -> str:
    # Without a key the seller 422s, and a retried POST could no longer be recognised as a replay.
    if not isinstance(key, str) or not key.strip():
        raise ValueError("idempotency_key must be a non-empty string")
    return key


def _wire_date(value: date) -> str:
    return (value.date() if isinstance(value, datetime) else value).isoformat()


def _wire_money(amount: Decimal | int, what: str) -> dict[str, Any]:
    # A float here means a price already went through binary arithmetic somewhere upstream.
    if isinstance(amount, bool) or not isinstance(amount, Decimal | int):
        raise TypeError(f"{what} must be a Decimal, not {type(amount).__name__}")
    amount = Decimal(amount)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{what} must be a finite, non-negative amount")
    return money(amount)


def _wire_identity(identity: BuyerIdentity | None) -> dict[str, str] | None:
    return identity.as_wire() if identity is not None else None
