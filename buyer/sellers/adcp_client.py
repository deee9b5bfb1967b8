"""Synchronous client for one AdCP sales agent (Ad Context Protocol media-buy tasks over MCP), behind the same
methods and domain types as ``SellerRestClient`` and ``SellerMcpClient``.

The wire is the official ``adcp`` client's (typed requests, responses validated strictly against the bundled
3.2 schemas); what this module adds is the mapping into the buyer's terms:

- ``list_products`` → ``get_products`` (``wholesale``, or ``brief`` with the campaign's words). Each AdCP product
  becomes one domain ``Product`` priced by *one* of its pricing options: a fixed CPM if it has one, else a
  floor-only (auction) CPM, else its first option, whose model the planner then names when it skips it (the
  buyer buys CPM only and never converts a vCPM, CPCV or flat rate into an invented CPM).
- ``request_quote`` asks nothing of the seller: AdCP has no quotes. It states the buyer's own terms — at a fixed
  price the seller's price; at a floor-only price a bid the buyer chooses, at least the floor and never above
  the ceiling the brief set — and records them in the quote (``pricing``: the floor, the bid, and that the price
  is a bid). The quote id encodes the terms, so the booking step and a restarted worker read them back from
  our records alone.
- ``book_deal`` → ``create_media_buy`` with one package (product, pricing option, budget = the line's cost,
  pacing, impressions, the bid for an auction option) and the booking's idempotency key. A buy the seller
  books at once is read back as a ``Deal`` whose id is the ``media_buy_id``; a buy it takes for review answers
  ``submitted`` with a ``task_id``: :class:`~buyer.sellers.errors.SellerTaskPending`, followed by
  ``task_status`` from a periodic task — nothing waits.
- ``get_deal`` → ``get_media_buys``; ``deal_performance`` → ``get_media_buy_delivery``; ``health`` →
  ``get_adcp_capabilities``; ``set_budget`` (an approved reallocation cutting what a deal may spend) →
  ``update_media_buy`` on its package, with an idempotency key derived from our records.

Failures are ``SellerError``: the seller's own AdCP error code (``PRODUCT_NOT_FOUND``…, lower-cased) for a
refusal, ``invalid_response`` for an answer that fails schema validation, ``timeout`` / ``connection_error``
for transport faults (retryable, counted by the breaker like the other clients'). The credential goes as
``x-adcp-auth`` (``api_key``) or ``Authorization: Bearer`` and is scrubbed from every message.

Importing the ``adcp`` client costs seconds and hundreds of MiB (its typed models), so this module is imported
only where a seller speaks AdCP (``registry._inner_client``), never by the web process's routes. One MCP
session serves all of a client's calls: it runs in a private event-loop thread opened on first use and closed
with the client, because the SDK opens its session in the task of the first call and must close it there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import random
import threading
import time as time_module
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal, InvalidOperation
from types import TracebackType
from typing import Any, Self

from adcp import ADCPClient
from adcp.types import AgentConfig, Protocol
from adcp.validation.client_hooks import ValidationHookConfig

from .errors import SellerError, SellerTaskPending
from .money import cost_for, decimal_to_micros, micros_to_decimal
from .rest import CREDENTIAL_SCHEMES, MAX_BACKOFF_S, Secret, excerpt
from .types import BudgetChange, BuyerIdentity, Deal, DealPerformance, Product, Quote, QuoteRequest, TaskState

__all__ = ["ADCP_PATH", "SellerAdcpClient", "decode_quote_id", "encode_quote_id"]

logger = logging.getLogger("buyer.sellers")

ADCP_PATH = "/mcp"
BOUGHT_MODELS = frozenset({"cpm"})
# AdCP channels → the buyer's inventory types (the planner's vocabulary); others keep their AdCP name.
CHANNEL_INVENTORY: Mapping[str, str] = {
    "display": "display",
    "olv": "video",
    "ctv": "ctv",
    "linear_tv": "linear_tv",
    "dooh": "dooh",
    "ooh": "dooh",
    "streaming_audio": "audio",
    "podcast": "audio",
    "radio": "audio",
}
# Format kinds → the formats a brief names.
FORMAT_WORDS: Mapping[str, str] = {
    "image": "banner",
    "html5": "banner",
    "display_tag": "banner",
    "video_vast": "video",
    "video_hosted": "video",
    "audio_hosted": "audio",
    "native": "native",
}
PENDING_STATUSES = frozenset({"submitted", "working", "input-required", "auth-required"})
FAILED_STATUSES = frozenset({"failed", "rejected", "canceled"})
_QUOTE_PREFIX = "adcp1"
_OFFER_PREFIX = "adcp2"  # terms of an offer from a versioned feed (AdCP 3.2 list_products), bought by buy_products
_SEP = "~"
MAX_QUOTE_ID = 200


# --- quote ids: the buyer's terms, readable from our records alone --------------------------------------------


@dataclass(frozen=True)
class OrderTerms:
    product_id: str
    pricing_option_id: str
    impressions: int
    cpm: Decimal  # the fixed price, or our bid on a floor-only option
    bid: bool  # True: ``cpm`` is a bid at an auction option
    deal_type: str
    flight_start: date
    flight_end: date
    # Decided when the terms are stated (the flight had started: AdCP's "asap"), so every retry of the order
    # sends the same body: a seller hashes it with the idempotency key, and another body would be a conflict.
    asap: bool = False
    # The offer feed the product was listed from (AdCP 3.2 ``list_products``): bought with ``buy_products`` at
    # exactly those versions, so a seller whose offers changed meanwhile refuses rather than sells other terms.
    feed_version: str | None = None
    pricing_version: str | None = None

    @property
    def budget(self) -> Decimal:
        return cost_for(self.impressions, self.cpm)


def encode_quote_id(terms: OrderTerms) -> str:
    """The terms as a quote id (at most 200 characters). Feed versions that do not fit, or hold the separator,
    are left out: such an offer is then bought with ``create_media_buy``, the 3.x task every seller keeps."""
    if terms.feed_version:
        versions = [terms.feed_version, terms.pricing_version or ""]
        if not any(_SEP in v for v in versions):
            offer_id = _SEP.join([_OFFER_PREFIX, *_quote_fields(terms)[:6], *versions, terms.product_id])
            if len(offer_id) <= MAX_QUOTE_ID:
                _check_fields(terms)
                return offer_id
    fields = [_QUOTE_PREFIX, *_quote_fields(terms), terms.product_id]
    _check_fields(terms)
    quote_id = _SEP.join(fields)
    if len(quote_id) > MAX_QUOTE_ID:
        raise SellerError(f"product id {terms.product_id[:60]!r}… is too long to book", code="unbookable")
    return quote_id


def _quote_fields(terms: OrderTerms) -> list[str]:
    return [
        terms.pricing_option_id,
        str(terms.impressions),
        str(decimal_to_micros(terms.cpm)),
        ("b" if terms.bid else "f") + ("a" if terms.asap else "t") + terms.deal_type,
        terms.flight_start.strftime("%Y%m%d"),
        terms.flight_end.strftime("%Y%m%d"),
    ]


def _check_fields(terms: OrderTerms) -> None:
    if _SEP in terms.pricing_option_id:
        raise SellerError(f"pricing option {terms.pricing_option_id!r} cannot be named in a quote", code="unbookable")


def decode_quote_id(quote_id: str) -> OrderTerms:
    feed: str | None = None
    pricing: str | None = None
    if quote_id.startswith(_OFFER_PREFIX + _SEP):
        parts = quote_id.split(_SEP, 9)
        if len(parts) != 10:
            raise SellerError(f"{quote_id[:80]!r} is not a well-formed quote", code="quote_not_found")
        _, option, impressions, micros, kind, start, end, feed, pricing, product = parts
    else:
        parts = quote_id.split(_SEP, 7)
        if len(parts) != 8 or parts[0] != _QUOTE_PREFIX:
            why = f"{quote_id[:80]!r} is not a quote of this buyer's AdCP client"
            raise SellerError(why, code="quote_not_found")
        _, option, impressions, micros, kind, start, end, product = parts
    try:
        return OrderTerms(
            product_id=product,
            pricing_option_id=option,
            impressions=int(impressions),
            cpm=micros_to_decimal(int(micros)),
            bid=kind[:1] == "b",
            asap=kind[1:2] == "a",
            deal_type=kind[2:] or "PD",
            flight_start=datetime.strptime(start, "%Y%m%d").date(),
            flight_end=datetime.strptime(end, "%Y%m%d").date(),
            feed_version=feed or None,
            pricing_version=pricing or None,
        )
    except ValueError:
        raise SellerError(f"{quote_id[:80]!r} is not a well-formed quote", code="quote_not_found") from None


# --- the client -----------------------------------------------------------------------------------------------


class SellerAdcpClient:
    """One AdCP sales agent. Not shared across sellers; safe to call from several threads (calls take turns on
    the one session)."""

    def __init__(
        self,
        base_url: str,
        *,
        credential: str | None = None,
        credential_scheme: str = "api_key",
        timeout: float = 10.0,
        max_retries: int = 2,
        brand_domain: str = "buyer.example",
        operator_domain: str | None = None,
        pacing: str = "even",
        webhook_seller: int | None = None,
        signing: tuple[bytes, str] | None = None,
        tls: tuple[str, str, str] | None = None,
    ) -> None:
        if credential_scheme not in CREDENTIAL_SCHEMES:
            raise ValueError(f"credential_scheme must be one of {CREDENTIAL_SCHEMES}")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.endpoint = self.base_url + ADCP_PATH
        self.timeout = timeout
        self.max_retries = max_retries
        self.credential_scheme = credential_scheme
        self._credential = Secret(credential) if credential else None
        self.brand = {"domain": brand_domain}
        self.account = {"brand": {"domain": brand_domain}, "operator": operator_domain or brand_domain}
        self.pacing = pacing if pacing in {"even", "asap", "front_loaded"} else "even"
        # Our Seller row's id: orders and changes ask for signed task webhooks when ADCP_WEBHOOK_URL is set.
        self.webhook_seller = webhook_seller
        # The buyer's RFC 9421 key (PEM, kid): the library signs what the seller's capabilities ask to be signed.
        self._signing_pem = Secret(signing[0].decode()) if signing is not None else None
        self._signing_kid = signing[1] if signing is not None else None
        # Mutual TLS and/or the seller's own CA: (client certificate PEM, its key PEM, CA PEM), any may be "".
        self._tls = None
        if tls is not None and any(part.strip() for part in tls):
            from .tls import client_tls_context

            self._tls = client_tls_context(cert_pem=tls[0], key_pem=tls[1], ca_pem=tls[2])
        self._loop: _SessionLoop | None = None
        self._loop_lock = threading.Lock()
        self._catalog: dict[str, Product] | None = None  # the last wholesale catalog: quotes price from it
        self._tools: frozenset[str] | None = None  # the AdCP 3.2 lifecycle tools the seller advertises
        # The seller's own named formats (list_creative_formats), as canonical declarations by (owner, id): the
        # library turns a 3.0/3.1 product's format_ids into format options with them, or drops the product.
        self._formats: dict[tuple[str, str], dict[str, Any]] | None = None
        self._feed: tuple[str, str | None, list[Product]] | None = None  # the last offer feed read whole

    def __repr__(self) -> str:
        credential = "'***'" if self._credential is not None else "None"
        return f"SellerAdcpClient(base_url={self.base_url!r}, credential={credential})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._loop_lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.close(self.timeout)

    # -- discovery -------------------------------------------------------------------------------------------

    def health(self) -> bool:
        """True when the agent answers ``get_adcp_capabilities`` and says it sells media. Never raises."""
        try:
            capabilities = self.capabilities()
        except SellerError:
            return False
        return "media_buy" in (capabilities.get("supported_protocols") or [])

    def capabilities(self) -> dict[str, Any]:
        from adcp.types import GetAdcpCapabilitiesRequest

        return self._data("get_adcp_capabilities", lambda c: c.get_adcp_capabilities(GetAdcpCapabilitiesRequest()))

    def lifecycle_tools(self) -> frozenset[str]:
        """The AdCP 3.2 compact lifecycle tools the seller advertises (``media_buy.lifecycle_tools``), read once
        per client; none when its capabilities cannot be read (the 3.x tasks then, and they say what is wrong)."""
        if self._tools is None:
            try:
                media_buy = _obj(self.capabilities().get("media_buy"))
            except SellerError as exc:
                logger.info("seller %s: capabilities unreadable (%s); using the 3.x tasks", self.base_url, exc.code)
                return frozenset()
            tools = media_buy.get("lifecycle_tools")
            self._tools = frozenset(str(t) for t in tools) if isinstance(tools, list) else frozenset()
        return self._tools

    # -- catalog ---------------------------------------------------------------------------------------------

    def list_products(self, *, page_size: int = 100, max_products: int = 2000, brief: str = "") -> list[Product]:
        """The agent's products (``wholesale``; ``brief`` when a brief is given), one priced option each."""
        from adcp.types import GetProductsRequest

        if page_size < 1 or max_products < 1:
            raise ValueError("page_size and max_products must be positive")
        if "list_products" in self.lifecycle_tools():
            offers = self._list_offers(page_size=page_size, max_products=max_products)
            self._catalog = {**(self._catalog or {}), **{p.product_id: p for p in offers}}
            return offers
        request = (
            GetProductsRequest.model_validate({"buying_mode": "brief", "brief": brief[:2000]})
            if brief.strip()
            else GetProductsRequest.model_validate({"buying_mode": "wholesale"})
        )
        data = self._data("get_products", lambda c: c.get_products(request))
        if self._formats is None and _formats_unresolved(data):
            # A 3.0/3.1 seller naming formats of its own creative agent: learn them, then ask once more.
            self._formats = self._creative_formats()
            if self._formats:
                data = self._data("get_products", lambda c: c.get_products(request))
        products: dict[str, Product] = {}
        skipped = _read_products(data.get("products"), products, max_products)
        if skipped:
            logger.warning("seller %s: skipped %d AdCP products the buyer cannot read", self.base_url, skipped)
        if not products and brief.strip():
            return self.list_products(page_size=page_size, max_products=max_products)  # nothing for the brief
        # Quotes are priced from the products seen (a brief's answer holds whole products too).
        self._catalog = {**(self._catalog or {}), **products}
        return list(products.values())

    def _creative_formats(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The seller's named formats (``list_creative_formats``, AdCP 3.0/3.1), each as the canonical declaration
        the library projects it to; none when the seller cannot say (its products then stay unread)."""
        from adcp.canonical_formats import project_v1_format_to_declaration
        from adcp.types.legacy import LegacyListCreativeFormatsRequest

        request = _request(LegacyListCreativeFormatsRequest, {})
        try:
            data = self._data("list_creative_formats", lambda c: c.list_creative_formats_legacy(request))
        except SellerError as exc:
            logger.warning("seller %s: its creative formats are unreadable (%s)", self.base_url, exc.code)
            return {}
        formats: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in data.get("formats") or []:
            ref = _obj(_obj(entry).get("format_id"))
            if not isinstance(ref.get("agent_url"), str) or not isinstance(ref.get("id"), str):
                continue
            declaration = project_v1_format_to_declaration(entry).declaration
            if declaration is not None:
                body = declaration.model_dump(mode="json", exclude_none=True)
                for legacy in ("v1_format_ref", "format_id", "format_ids", "agent_url"):
                    body.pop(legacy, None)
                formats[(_owner(ref["agent_url"]), ref["id"])] = body
        logger.info("seller %s: %d creative formats of its own read", self.base_url, len(formats))
        return formats

    def _own_format(self, context: Any) -> dict[str, Any] | None:
        """The library's legacy format converter: a format the seller defined, else None (the library's own
        catalog, or the product is dropped)."""
        ref = context.format_id
        return (self._formats or {}).get((_owner(str(ref.agent_url)), str(ref.id)))

    def _list_offers(self, *, page_size: int, max_products: int) -> list[Product]:
        """The seller's offer feed (AdCP 3.2 ``list_products``), page by page; each product remembers the feed and
        pricing versions it was listed under. Asked again with ``if_feed_version``, an unchanged feed is not sent
        again (the products read last time stand). The brief does not narrow it: the planner ranks the offers."""
        from adcp.types import ListProductsRequest

        products: dict[str, Product] = {}
        skipped = 0
        restarted = False
        cursor: str | None = None
        seen: set[str] = set()
        known = self._feed
        first_versions: tuple[str, str | None] | None = None
        for _page in range(MAX_FEED_PAGES):
            if len(products) >= max_products:
                break
            fields: dict[str, Any] = {"max_results": min(page_size, 100), "account": self.account}
            if cursor is not None:
                fields["cursor"] = cursor
            elif known is not None:
                fields["if_feed_version"] = known[0]
                if known[1]:
                    fields["if_pricing_version"] = known[1]
            request = _request(ListProductsRequest, fields)

            def ask(client: ADCPClient, request: Any = request) -> Awaitable[Any]:
                return client.list_products(request)

            data = self._data("list_products", ask)
            data = _obj(data.get("root", data))
            feed, pricing = data.get("feed_version"), data.get("pricing_version")
            if not isinstance(feed, str) or not feed or (pricing is not None and not isinstance(pricing, str)):
                raise SellerError("list_products: the answer names no feed version", code="invalid_response")
            if data.get("outcome") == "unchanged" and cursor is None and known is not None:
                return list(known[2])
            listed_under = {"feed_version": feed, "pricing_version": pricing}
            if first_versions is None:
                first_versions = (feed, pricing)
            elif first_versions != (feed, pricing):
                # The feed changed while it was read: its pages shifted. Read it again from the first page, once.
                if restarted:
                    raise SellerError("list_products: the offer feed kept changing while read", code="conflict")
                restarted, products, cursor, seen, first_versions, skipped = True, {}, None, set(), None, 0
                continue
            before = len(products)
            skipped += _read_products(data.get("products"), products, max_products, listed_under)
            next_cursor = data.get("next_cursor")
            if not isinstance(next_cursor, str) or not next_cursor or next_cursor in seen or len(products) == before:
                break
            seen.add(next_cursor)
            cursor = next_cursor
        if skipped:
            logger.warning("seller %s: skipped %d AdCP offers the buyer cannot read", self.base_url, skipped)
        listed = list(products.values())
        versions = {(p.raw["feed_version"], p.raw["pricing_version"]) for p in listed}
        self._feed = (*next(iter(versions)), listed) if len(versions) == 1 else None
        return listed

    # -- quote, book -----------------------------------------------------------------------------------------

    def request_quote(self, req: QuoteRequest) -> Quote:
        """The buyer's own terms for one product, nothing sent: AdCP sells at the product's pricing options.

        A fixed price is the seller's; a floor-only price becomes a bid: the brief's target when it is at
        least the floor, else the floor — never above ``target_cpm``'s ceiling (the planner passes the lower
        of target and max CPM). A floor above that ceiling is a refusal, not a price."""
        product = self._product(req.product_id)
        option = product.raw.get("pricing_option") or {}
        model = str(option.get("pricing_model") or "")
        if model not in BOUGHT_MODELS:
            raise SellerError(f"{product.name} is priced by {model or 'no model'}; only CPM is bought", code="unpriced")
        fixed, floor = _price(option.get("fixed_price")), _price(option.get("floor_price"))
        pricing: dict[str, Any] = {"pricing_model": model, "pricing_option_id": option.get("pricing_option_id")}
        if fixed is not None:
            cpm, bid = fixed, False
            pricing.update(price_type="fixed", fixed_cpm=str(fixed))
            rationale = f"fixed CPM ${fixed:,.2f} from the seller's pricing option {option.get('pricing_option_id')}"
        elif floor is not None:
            ceiling = req.target_cpm
            if ceiling is not None and ceiling < floor:
                raise SellerError(
                    f"the floor ${floor:,.2f} of {product.name} is above the buyer's ceiling ${ceiling:,.2f}",
                    code="below_floor",
                )
            cpm, bid = (ceiling if ceiling is not None else floor), True
            pricing.update(price_type="floor_only", floor_cpm=str(floor), bid_cpm=str(cpm))
            rationale = (
                f"floor-only price: the seller's floor is ${floor:,.2f}; the buyer bids ${cpm:,.2f} "
                f"({'its ceiling' if ceiling is not None else 'the floor, no ceiling set'}); the clearing price "
                "is the seller's, at most the bid"
            )
        else:
            raise SellerError(f"{product.name} names neither a price nor a floor", code="unpriced")
        impressions = max(req.impressions, product.minimum_impressions)
        terms = OrderTerms(
            product_id=product.product_id,
            pricing_option_id=str(option.get("pricing_option_id")),
            impressions=impressions,
            cpm=cpm,
            bid=bid,
            deal_type=req.deal_type,
            flight_start=req.flight_start,
            flight_end=req.flight_end,
            asap=_flight(req.flight_start, req.flight_end)[0] <= datetime.now(UTC),
            # Bought with buy_products (at these versions) only where the seller offers it; the quote id decides.
            feed_version=product.raw.get("feed_version") if "buy_products" in self.lifecycle_tools() else None,
            pricing_version=product.raw.get("pricing_version"),
        )
        return Quote(
            quote_id=encode_quote_id(terms),
            status="available",
            deal_type=req.deal_type,
            product_id=product.product_id,
            product_name=product.name,
            base_cpm=fixed if fixed is not None else floor,  # type: ignore[arg-type]  # one of them is set
            final_cpm=cpm,
            tier_discount_pct=Decimal(0),
            volume_discount_pct=Decimal(0),
            rationale=rationale,
            impressions=impressions,
            flight_start=req.flight_start,
            flight_end=req.flight_end,
            guaranteed=product.delivery_type == "guaranteed",
            buyer_tier="public",
            expires_at=None,
            seller_id=None,
            raw={"pricing": pricing, "protocol": "adcp"},
        )

    def get_quote(self, quote_id: str) -> Quote:
        """AdCP holds no quotes: never asked by the booking step for this protocol."""
        raise SellerError("AdCP sellers keep no quotes", code="unsupported_operation")

    def book_deal(
        self,
        *,
        idempotency_key: str,
        quote_id: str,
        buyer_identity: BuyerIdentity | None = None,
        notes: str | None = None,
        pacing: str | None = None,
    ) -> Deal:
        """``create_media_buy`` for the terms the quote id names; the buy read back, or ``SellerTaskPending``.

        ``pacing`` is the campaign's curve in AdCP's words (``even``, ``asap``, ``front_loaded``); any other
        (``back_loaded`` has no AdCP word) sends the client's default."""
        from adcp.types import CreateMediaBuyRequest

        terms = decode_quote_id(quote_id)
        if terms.feed_version:
            # Listed from the offer feed: always bought with buy_products, never also with create_media_buy under
            # the same key (each task keeps its own keys: a seller would take the second as another buy).
            return self._buy_products(terms, quote_id, idempotency_key=idempotency_key, notes=notes, pacing=pacing)
        package: dict[str, Any] = {
            "product_id": terms.product_id,
            "pricing_option_id": terms.pricing_option_id,
            "budget": float(terms.budget),
            "pacing": pacing if pacing in {"even", "asap", "front_loaded"} else self.pacing,
            "impressions": terms.impressions,
        }
        if terms.bid:
            package["bid_price"] = float(terms.cpm)
        body: dict[str, Any] = {
            "idempotency_key": _key(idempotency_key),
            "account": self.account,
            "brand": self.brand,
            **_order_times(terms),
            "packages": [package],
        }
        data = self._send_order("create_media_buy", CreateMediaBuyRequest, body, notes)
        return self._deal(data, terms, quote_id)

    def _send_order(self, task: str, model: Any, body: dict[str, Any], notes: str | None) -> dict[str, Any]:
        """Send one order (``create_media_buy`` or ``buy_products``) with its name and webhook request; the
        seller's answer, or ``SellerTaskPending`` when it takes the order for review."""
        if notes:
            body["name"] = excerpt(notes, 200)
        self._ask_for_webhooks(body)
        try:
            request = model.model_validate(body)
        except ValueError as exc:
            raise SellerError(f"{task}: the order cannot be stated: {_first(exc)}", code="unbookable") from None
        data = self._data(task, lambda c: getattr(c, task)(request))
        self._raise_if_pending(task, data)
        return data

    def _buy_products(
        self, terms: OrderTerms, quote_id: str, *, idempotency_key: str, notes: str | None, pacing: str | None
    ) -> Deal:
        """AdCP 3.2's direct purchase of one published offer (``buy_products``) at the feed versions it was listed
        under. A seller whose feed changed since refuses (its ``CONFLICT``): the feed is listed again, and when
        this offer's terms are exactly the ones quoted it is bought at the new versions — under the *same* key, so
        the seller can never make two buys of this line whatever versions the attempts name (another body under a
        used key is its ``IDEMPOTENCY_CONFLICT``, and the current versions then replay the buy it made). Terms
        that changed are a refusal: nothing is bought on other terms than the approved ones. The answer's
        accepted snapshot must match its digest; the deal is read from it."""
        try:
            return self._purchase(terms, quote_id, idempotency_key=idempotency_key, notes=notes, pacing=pacing)
        except SellerError as exc:
            if exc.code not in {"conflict", "idempotency_conflict"}:
                raise
            first = exc
        current, change = self._offer_now(terms)
        if current == (terms.feed_version, terms.pricing_version) and first.code == "conflict":
            # The feed did not change: the conflict was about something else (a call still running): retried.
            raise SellerError(f"{first.message} (the offer feed has not changed)", code="conflict", retryable=True)
        if current is None:
            if first.code == "idempotency_conflict":
                why = (
                    "buy_products: an earlier attempt for this line was taken by the seller at other feed versions "
                    f"and the offer has changed since ({change}): check the seller for a media buy before booking "
                    "again"
                )
                raise SellerError(why, status=409, code="idempotency_conflict")
            why = (
                f"buy_products: the seller changed this offer after it was quoted ({change}); nothing was "
                "bought: research again for its new terms"
            )
            raise SellerError(why, status=409, code="offer_changed")
        relisted = dataclasses.replace(terms, feed_version=current[0], pricing_version=current[1])
        return self._purchase(relisted, quote_id, idempotency_key=idempotency_key, notes=notes, pacing=pacing)

    def _offer_now(self, terms: OrderTerms) -> tuple[tuple[str, str | None] | None, str]:
        """The seller's current feed versions when the offer ``terms`` name is still published on exactly those
        terms (same pricing option and model, the same fixed price, or a floor still at most the bid); else None
        and what changed, in words."""
        self._feed = None  # read the whole feed again
        listed = {p.product_id: p for p in self._list_offers(page_size=100, max_products=100_000)}
        self._catalog = {**(self._catalog or {}), **listed}
        product = listed.get(terms.product_id)
        if product is None:
            return None, "it is no longer offered"
        options = [o for o in product.raw.get("pricing_options") or [] if isinstance(o, dict)]
        option = next((o for o in options if str(o.get("pricing_option_id")) == terms.pricing_option_id), None)
        if option is None:
            return None, f"its pricing option {terms.pricing_option_id} is gone"
        if option.get("pricing_model") not in BOUGHT_MODELS:
            return None, f"it is now priced by {option.get('pricing_model')}"
        fixed, floor = _price(option.get("fixed_price")), _price(option.get("floor_price"))
        versions = (product.raw["feed_version"], product.raw["pricing_version"])
        if terms.bid:
            if fixed is None and floor is not None and floor <= terms.cpm:
                return versions, ""
            if fixed is not None:
                return None, f"it now has a fixed CPM of ${fixed:,.2f} instead of a floor"
            return None, f"its floor is now ${floor or 0:,.2f}, above our bid of ${terms.cpm:,.2f}"
        if fixed == terms.cpm:
            return versions, ""
        now = f"${fixed:,.2f}" if fixed is not None else f"a floor of ${floor or 0:,.2f}"
        return None, f"its CPM went from ${terms.cpm:,.2f} to {now}"

    def _purchase(
        self, terms: OrderTerms, quote_id: str, *, idempotency_key: str, notes: str | None, pacing: str | None
    ) -> Deal:
        from adcp.types import BuyProductsRequest

        purchase: dict[str, Any] = {
            "product_id": terms.product_id,
            "pricing_option_id": terms.pricing_option_id,
            "budget": float(terms.budget),
            "impressions": float(terms.impressions),
            "pacing": pacing if pacing in {"even", "asap", "front_loaded"} else self.pacing,
        }
        if terms.bid:
            purchase["bidding"] = {"bid_amount": float(terms.cpm)}
        body: dict[str, Any] = {
            "idempotency_key": _key(idempotency_key),
            "account": self.account,
            "feed_version": terms.feed_version,
            **_order_times(terms),
            "purchases": [purchase],
        }
        if terms.pricing_version:
            body["pricing_version"] = terms.pricing_version
        data = self._send_order("buy_products", BuyProductsRequest, body, notes)
        return self._bought_deal(data, terms, quote_id)

    def _bought_deal(self, data: dict[str, Any], terms: OrderTerms, quote_id: str) -> Deal:
        """The deal a completed purchase (or create) answer states. A purchase whose accepted snapshot fails its
        digest is read back from the seller's own record of the media buy instead (it exists: never dropped)."""
        media_buy_id = data.get("media_buy_id")
        try:
            buy = purchased(data)
            if buy is not None:
                return self._deal(buy, terms, quote_id)
            why = "fail their digest"
        except SellerError as exc:
            if not isinstance(media_buy_id, str) or not media_buy_id.strip():
                raise
            why = f"cannot be read ({exc.message})"
        logger.warning(
            "seller %s: the accepted terms of %s %s; reading the media buy back",
            self.base_url,
            str(media_buy_id)[:80],
            why,
        )
        return self.get_deal(str(media_buy_id), quote_id=quote_id)

    def task_status(self, task_id: str, *, quote_id: str | None = None) -> TaskState:
        """Where an asynchronous task stands (``get_task_status``). A completed order (``quote_id`` given) carries
        its deal; another completed task (an update) carries none: read the media buy back for its result."""
        from adcp.types import GetTaskStatusRequest

        request = _request(GetTaskStatusRequest, {"task_id": task_id, "include_result": True})
        data = self._data("get_task_status", lambda c: c.get_task_status(request))
        status = str(data.get("status") or "")
        message = self._scrub(str(data.get("message") or ""))
        if status == "completed" and quote_id is None:
            return TaskState(task_id=task_id, status=status, message=message)
        if status == "completed" and quote_id is not None:
            result = data.get("result")
            if not isinstance(result, dict) or not result.get("media_buy_id"):
                raise SellerError(f"task {task_id} completed without a media buy", code="invalid_response")
            deal = self._bought_deal(result, decode_quote_id(quote_id), quote_id)
            return TaskState(task_id=task_id, status=status, message=message, deal=deal)
        if status in FAILED_STATUSES:
            error = _obj(data.get("error"))
            why = self._scrub(str(error.get("message") or message or f"the seller {status} the order"))
            return TaskState(task_id=task_id, status=status, message=why, error_code=str(error.get("code") or ""))
        if status in PENDING_STATUSES:
            return TaskState(task_id=task_id, status=status, message=message)
        raise SellerError(f"task {task_id}: unknown status {status[:40]!r}", code="invalid_response")

    def set_budget(
        self, deal_id: str, *, package_id: str, budget: Decimal, impressions: int, idempotency_key: str
    ) -> BudgetChange:
        """Change one package's budget (and the impressions it buys) with ``update_media_buy``; the seller's
        figures, or ``SellerTaskPending`` when it takes the change for review. The seller refuses a budget
        below what the package has spent (its error code, e.g. ``budget_too_low``, and message)."""
        from adcp.types import UpdateMediaBuyRequest

        if not budget > 0 or impressions < 0:
            raise ValueError("the budget must be positive and the impressions not negative")
        fields = {
            "idempotency_key": _key(idempotency_key),
            "account": self.account,
            "media_buy_id": deal_id,
            "packages": [{"package_id": package_id, "budget": float(budget), "impressions": impressions}],
        }
        self._ask_for_webhooks(fields)
        request = _request(UpdateMediaBuyRequest, fields)
        data = self._data("update_media_buy", lambda c: c.update_media_buy(request))
        self._raise_if_pending("update_media_buy", data)
        status = str(data.get("status") or "")
        if data.get("media_buy_id") not in (None, deal_id):
            raise SellerError("update_media_buy: the answer names another media buy", code="invalid_response")
        affected = [
            p for p in data.get("affected_packages") or [] if isinstance(p, dict) and p.get("package_id") == package_id
        ]
        if not affected:
            # The seller confirmed without stating the package: what it holds now is read back.
            return self.budget_of(deal_id, package_id=package_id)
        return _budget_change(deal_id, affected[0], status=str(data.get("media_buy_status") or status))

    def budget_of(self, deal_id: str, *, package_id: str) -> BudgetChange:
        """The budget one package of a media buy holds now (``get_media_buys``)."""
        from adcp.types import GetMediaBuysRequest

        request = _request(GetMediaBuysRequest, {"media_buy_ids": [deal_id]})
        data = self._data("get_media_buys", lambda c: c.get_media_buys(request))
        for buy in data.get("media_buys") or []:
            if not isinstance(buy, dict) or buy.get("media_buy_id") != deal_id:
                continue
            for package in buy.get("packages") or []:
                if isinstance(package, dict) and package.get("package_id") == package_id:
                    return _budget_change(deal_id, package, status=str(buy.get("status") or ""))
        raise SellerError(
            f"the seller holds no package {package_id!r} in {deal_id!r}", status=404, code="deal_not_found"
        )

    def get_deal(self, deal_id: str, *, quote_id: str | None = None) -> Deal:
        """The media buy ``deal_id`` (``get_media_buys``), in the terms the booking asked for when known."""
        from adcp.types import GetMediaBuysRequest

        request = _request(GetMediaBuysRequest, {"media_buy_ids": [deal_id]})
        data = self._data("get_media_buys", lambda c: c.get_media_buys(request))
        buys = [b for b in data.get("media_buys") or [] if isinstance(b, dict) and b.get("media_buy_id") == deal_id]
        if not buys:
            raise SellerError(f"the seller holds no media buy {deal_id!r}", status=404, code="deal_not_found")
        terms = decode_quote_id(quote_id) if quote_id else None
        return self._deal(buys[0], terms, quote_id or "")

    def deal_performance(self, deal_id: str, *, as_of: datetime | None = None) -> DealPerformance:
        """Delivery to date of one media buy (``get_media_buy_delivery``), summed over its packages."""
        from adcp.types import GetMediaBuyDeliveryRequest

        fields: dict[str, Any] = {"media_buy_ids": [deal_id]}
        if as_of is not None:
            fields["end_date"] = as_of.date().isoformat()
        request = _request(GetMediaBuyDeliveryRequest, fields)
        data = self._data("get_media_buy_delivery", lambda c: c.get_media_buy_delivery(request))
        deliveries = data.get("media_buy_deliveries") or []
        rows = [d for d in deliveries if isinstance(d, dict) and d.get("media_buy_id") == deal_id]
        if not rows:
            raise SellerError(f"the seller reports no delivery for media buy {deal_id!r}", code="deal_not_found")
        row = rows[0]
        totals = _obj(row.get("totals"))
        try:
            impressions = int(totals.get("impressions") or 0)
            spend = Decimal(str(totals.get("spend") or 0)).quantize(Decimal("0.000001"))
        except (ValueError, InvalidOperation):
            why = f"media buy {deal_id}: delivery totals are not numbers"
            raise SellerError(why, code="invalid_response") from None
        period = _obj(data.get("reporting_period"))
        reported = _when(period.get("end"))
        statuses = {str(p.get("delivery_status")) for p in row.get("by_package") or [] if isinstance(p, dict)}
        return DealPerformance(
            deal_id=deal_id,
            impressions_delivered=impressions,
            spend=spend,
            as_of=reported,
            status=str(row.get("status") or ""),
            delivery_pacing=", ".join(sorted(s for s in statuses if s and s != "None")),
            raw=row,
        )

    # -- internals: mapping ----------------------------------------------------------------------------------

    def _ask_for_webhooks(self, body: dict[str, Any]) -> None:
        """Ask for signed task webhooks (``buyer.sellers.webhooks``), correlated by the call's idempotency key."""
        from .webhooks import push_notification_config

        config = push_notification_config(self.webhook_seller, operation_id=body["idempotency_key"])
        if config is not None:
            body["push_notification_config"] = config

    def _raise_if_pending(self, name: str, data: dict[str, Any]) -> None:
        """``SellerTaskPending`` when the seller took the call as a task to follow by its id."""
        status = str(data.get("status") or "")
        if status in PENDING_STATUSES or (data.get("task_id") and not data.get("media_buy_id")):
            task_id = data.get("task_id")
            if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > 200:
                # Nothing to follow: the buyer cannot know whether the change will happen. Never guessed.
                raise SellerError(f"{name}: {status or 'pending'} without a task_id", code="invalid_response")
            raise SellerTaskPending(
                task_id=task_id, status=status or "submitted", message=self._scrub(str(data.get("message") or ""))
            )

    def _product(self, product_id: str) -> Product:
        catalog = self._catalog if self._catalog is not None and product_id in self._catalog else None
        if catalog is None:
            self.list_products()
            catalog = self._catalog or {}
        if product_id in catalog:
            return catalog[product_id]
        raise SellerError(f"the seller offers no product {product_id!r}", status=404, code="product_not_found")

    def _deal(self, buy: dict[str, Any], terms: OrderTerms | None, quote_id: str) -> Deal:
        """A media buy (a create answer, a task's result or a ``get_media_buys`` entry) as a ``Deal``.

        The seller states each package's budget and its rate or our bid; the impressions are the ones the
        order asked for (capped by what the budget buys at that price), never more."""
        packages = [p for p in buy.get("packages") or [] if isinstance(p, dict)]
        if not packages:
            raise SellerError(f"media buy {buy.get('media_buy_id')} has no package", code="invalid_response")
        package = packages[0]
        try:
            budget = Decimal(str(package.get("budget")))
        except (InvalidOperation, ValueError):
            raise SellerError("the media buy's package names no budget", code="invalid_response") from None
        bid = package.get("bid_price")
        if bid is None and isinstance(package.get("bidding"), dict):
            bid = package["bidding"].get("bid_amount")
        stated = _price(_obj(package.get("pricing")).get("fixed_price"))  # a buy_products snapshot states its rate
        cpm = _price(bid) if bid is not None else stated or (terms.cpm if terms is not None else None)
        if cpm is None or cpm <= 0:
            raise SellerError("the media buy states no price the buyer can read", code="invalid_response")
        affordable = int((budget * 1000 / cpm).to_integral_value(rounding=ROUND_DOWN))
        asked = package.get("impressions") or (terms.impressions if terms is not None else affordable)
        impressions = min(int(asked), affordable) if terms is None else int(asked)
        if terms is not None and impressions > 0 and budget > terms.budget:
            # The seller holds more money than the order gave it: the deal is what that budget buys at the
            # impressions ordered, so the read-back check sees the dearer price and holds the deal for a person.
            cpm = max(cpm, (budget * 1000 / impressions).quantize(Decimal("0.000001")))
        start = _when(package.get("start_time") or buy.get("start_time"))
        end = _when(package.get("end_time") or buy.get("end_time"))
        pricing: dict[str, Any] = {
            "protocol": "adcp",
            "media_buy_id": buy.get("media_buy_id"),
            "package_id": package.get("package_id"),
            "pricing_option_id": package.get("pricing_option_id") or (terms.pricing_option_id if terms else None),
            "budget": str(budget),
            "currency": buy.get("currency") or package.get("currency") or "USD",
        }
        if terms is not None and terms.bid:
            pricing.update(price_type="floor_only", bid_cpm=str(terms.cpm))
        elif terms is not None:
            pricing.update(price_type="fixed", fixed_cpm=str(terms.cpm))
        status = buy.get("media_buy_status") or buy.get("status") or ""
        return Deal(
            deal_id=str(buy.get("media_buy_id")),
            deal_type=terms.deal_type if terms is not None else "",
            status=str(status),
            quote_id=quote_id,
            product_id=str(package.get("product_id") or (terms.product_id if terms else "")),
            product_name="",
            final_cpm=cpm,
            impressions=impressions,
            flight_start=start.date() if start else (terms.flight_start if terms else date.today()),
            flight_end=(end - timedelta(seconds=1)).date() if end else (terms.flight_end if terms else date.today()),
            buyer_tier="public",
            expires_at=None,
            activation_instructions={},
            openrtb_params={},
            raw={"pricing": pricing, "media_buy": buy},
        )

    # -- internals: calls ------------------------------------------------------------------------------------

    def _data(self, name: str, call: Callable[[ADCPClient], Awaitable[Any]]) -> dict[str, Any]:
        """Run one task on the session; its data as JSON, or ``SellerError``. Transport faults are retried up to
        ``max_retries`` times with jittered backoff: every task here is a read or carries its idempotency key."""
        for attempt in range(self.max_retries + 1):
            try:
                return self._data_once(name, call)
            except SellerError as exc:
                if not exc.retryable or attempt == self.max_retries:
                    raise
                logger.info("seller %s: %s failed (%s); retrying", self.base_url, name, exc.code)
                time_module.sleep(min(MAX_BACKOFF_S, 0.2 * 2**attempt) * (0.5 + random.random()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _data_once(self, name: str, call: Callable[[ADCPClient], Awaitable[Any]]) -> dict[str, Any]:
        from adcp.exceptions import (
            ADCPAuthenticationError,
            ADCPError,
            ADCPSigningRequiredError,
            IdempotencyConflictError,
            IdempotencyExpiredError,
        )

        loop = self._session()
        try:
            result = loop.run(call, self.timeout * 2)
        except IdempotencyConflictError as exc:
            raise SellerError(f"{name}: {self._scrub(str(exc))}", status=409, code="idempotency_conflict") from None
        except IdempotencyExpiredError as exc:
            raise SellerError(f"{name}: {self._scrub(str(exc))}", status=409, code="idempotency_expired") from None
        except FutureTimeout:
            why = f"{name}: no answer within {self.timeout * 2:g} s"
            raise SellerError(why, code="timeout", retryable=True) from None
        except (ADCPAuthenticationError, ADCPSigningRequiredError) as exc:
            raise self._refused(name, self._scrub(str(exc))) from None
        except ADCPError as exc:
            raise SellerError(f"{name}: {self._scrub(str(exc))}", code="transport_error", retryable=True) from None
        except (OSError, RuntimeError) as exc:
            raise SellerError(f"{name}: {self._scrub(str(exc))}", code="connection_error", retryable=True) from None
        if not result.success:
            raise self._failure(name, result)
        data = result.data
        if hasattr(data, "model_dump"):
            data = data.model_dump(mode="json", exclude_none=True)
        if not isinstance(data, dict):
            raise SellerError(f"{name}: the answer is not an object", code="invalid_response")
        return data

    def _failure(self, name: str, result: Any) -> SellerError:
        adcp_error = result.adcp_error if isinstance(result.adcp_error, dict) else None
        text = self._scrub(str(result.error or (adcp_error or {}).get("message") or "failed"))
        if adcp_error and adcp_error.get("code"):
            code = str(adcp_error["code"]).lower()[:64]
            recovery = str(adcp_error.get("recovery") or "")
            field = adcp_error.get("field")
            where = f" ({field})" if isinstance(field, str) and field else ""
            # A CONFLICT ("refetch and retry") is retried by reading again, never by resending the same call: for a
            # purchase it means the offers changed since they were listed, and the approved terms are gone.
            retryable = recovery == "transient" and code != "conflict"
            return SellerError(f"{name}: {text}{where}", status=400, code=code, retryable=retryable)
        lowered = text.lower()
        if "authentication failed" in lowered or "http 401" in lowered:
            return self._refused(name, text)
        if any(word in lowered for word in ("schema", "validation", "invalid structured content", "structured adcp")):
            return SellerError(f"{name}: the answer fails the AdCP schema: {text}", code="invalid_response")
        if "timed out" in lowered or "timeout" in lowered:
            return SellerError(f"{name}: {text}", code="timeout", retryable=True)
        return SellerError(f"{name}: {text}", code="connection_error", retryable=True)

    def _http_factory(self) -> Callable[..., Any] | None:
        """The MCP transport's HTTP client with this seller's TLS context (mutual TLS, its CA); None: the
        library's default."""
        context = self._tls
        if context is None:
            return None
        import httpx2

        def factory(**kwargs: Any) -> Any:
            return httpx2.AsyncClient(verify=context, **kwargs)

        return factory

    @staticmethod
    def _refused(name: str, text: str) -> SellerError:
        """A 401: refused, not unwell, so never retried; an unsigned order to a seller demanding signatures says
        how to sign."""
        code = "signature_required" if "signature" in text.lower() else "unauthorized"
        why = (
            " (set this seller to sign requests; the buyer needs a signing key)" if code == "signature_required" else ""
        )
        return SellerError(f"{name}: the seller refused the call: {text}{why}", status=401, code=code)

    def _session(self) -> _SessionLoop:
        with self._loop_lock:
            if self._loop is None or not self._loop.alive:
                self._loop = _SessionLoop(self._config())
            return self._loop

    def _config(self) -> Callable[[], ADCPClient]:
        token = self._credential.reveal() if self._credential is not None else None
        config = AgentConfig(
            id=hashlib.sha256(self.base_url.encode()).hexdigest()[:16],
            agent_uri=self.endpoint,
            protocol=Protocol.MCP,
            auth_token=token,
            auth_type="bearer" if self.credential_scheme == "bearer" else "token",
            timeout=self.timeout,
        )

        def make() -> ADCPClient:
            # Responses strict whatever ADCP_ENV says: an answer that fails the schema is a seller error.
            validation = ValidationHookConfig(requests="strict", responses="strict")
            signing = None
            if self._signing_pem is not None and self._signing_kid:
                from adcp.signing.autosign import SigningConfig
                from cryptography.hazmat.primitives import serialization

                key = serialization.load_pem_private_key(self._signing_pem.reveal().encode(), password=None)
                signing = SigningConfig(private_key=key, key_id=self._signing_kid)  # type: ignore[arg-type]
            return ADCPClient(
                config,
                account_policy="off",
                validation=validation,
                signing=signing,
                httpx_client_factory=self._http_factory(),
                legacy_format_converter=self._own_format,
            )

        return make

    def _scrub(self, text: str, limit: int = 400) -> str:
        if self._credential is not None:
            text = text.replace(self._credential.reveal(), "***")
        return excerpt(text, limit)


class _SessionLoop:
    """A private event loop in a daemon thread that owns one ``ADCPClient`` for its lifetime: calls are
    queued to one task, which opens the SDK's session on the first call and closes it on ``close``.

    A session that breaks (the SDK cancels its own task when a connection attempt fails) ends the loop: the
    call gets a ``ConnectionError``, calls queued behind it a ``RuntimeError``, and the client opens a new loop
    for its next call."""

    def __init__(self, make: Callable[[], ADCPClient]) -> None:
        self._make = make
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[tuple[Callable[[ADCPClient], Awaitable[Any]], Future[Any], float] | None] | None
        self._queue = None
        self._task: asyncio.Task[None] | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(started,), name="adcp-session", daemon=True)
        self._thread.start()
        started.wait(5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._queue is not None and not self._loop.is_closed()

    def _main(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._queue = asyncio.Queue()
        started.set()
        try:
            self._task = self._loop.create_task(self._serve())
            self._loop.run_until_complete(self._task)
        except BaseException:  # a broken session's teardown: the calls already have their answers
            logger.debug("AdCP session ended abnormally", exc_info=True)
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        assert self._queue is not None
        try:
            async with self._make() as client:
                while True:
                    item = await self._queue.get()
                    if item is None:
                        return
                    call, future, timeout = item
                    if not future.set_running_or_notify_cancel():
                        continue
                    try:
                        # Bounded here too: a call the caller gave up on must not hold the session for the next.
                        future.set_result(await asyncio.wait_for(call(client), timeout))
                    except Exception as exc:  # noqa: BLE001 - handed to the caller's thread, which decides
                        future.set_exception(exc)
                    except BaseException as exc:
                        future.set_exception(ConnectionError(f"the session to the seller broke ({type(exc).__name__})"))
                        raise
        finally:
            while not self._queue.empty():
                queued = self._queue.get_nowait()
                if queued is not None and queued[1].set_running_or_notify_cancel():
                    queued[1].set_exception(RuntimeError("the AdCP session closed"))

    def run(self, call: Callable[[ADCPClient], Awaitable[Any]], timeout: float) -> Any:
        if not self.alive:
            raise RuntimeError("the AdCP session is closed")
        assert self._queue is not None
        future: Future[Any] = Future()
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (call, future, timeout))
        except RuntimeError:  # the loop closed meanwhile
            raise RuntimeError("the AdCP session is closed") from None
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise

    def close(self, timeout: float) -> None:
        if self.alive and self._queue is not None:
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
            except RuntimeError:  # the loop already stopped
                return
            self._thread.join(timeout)
            if self._thread.is_alive() and self._task is not None:
                # A call still hangs: cancel the session's task (its teardown closes the connection).
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._task.cancel)
                self._thread.join(timeout)


# --- wire helpers ---------------------------------------------------------------------------------------------


def product_from_adcp(item: dict[str, Any]) -> Product:
    """An AdCP product as a domain ``Product``, priced by its best pricing option for this buyer."""
    product_id = item["product_id"]
    if not isinstance(product_id, str) or not product_id.strip():
        raise ValueError("product_id")
    options = [o for o in item.get("pricing_options") or [] if isinstance(o, dict)]
    if not options:
        raise ValueError("pricing_options")
    option = _best_option(options)
    model = str(option.get("pricing_model") or "")
    fixed, floor = _price(option.get("fixed_price")), _price(option.get("floor_price"))
    channels = [str(c) for c in item.get("channels") or []]
    known = [CHANNEL_INVENTORY[c] for c in channels if c in CHANNEL_INVENTORY]
    inventory = known[0] if known else (channels[0] if channels else "")
    kinds = [str(f.get("format_kind")) for f in item.get("format_options") or [] if isinstance(f, dict)]
    formats = tuple(dict.fromkeys([inventory, *(FORMAT_WORDS.get(k, k) for k in kinds)]))
    domains = [
        str(p.get("publisher_domain"))
        for p in item.get("publisher_properties") or []
        if isinstance(p, dict) and p.get("publisher_domain")
    ]
    delivery = str(item.get("delivery_type") or "non_guaranteed")
    minimum = option.get("min_spend_per_package")
    price = fixed if fixed is not None else floor
    raw = dict(item)
    raw["pricing_option"] = option
    raw["domain"] = domains[0] if domains else ""
    raw["tags"] = [*channels, *kinds]
    return Product(
        product_id=product_id,
        name=str(item.get("name") or product_id),
        description=str(item.get("description") or ""),
        seller_organization_id=domains[0] if domains else "",
        inventory_type=inventory,
        ad_formats=formats,
        delivery_type=delivery,
        pricing_model=model,
        base_cpm=price,
        floor_cpm=floor,
        available_impressions=None,
        minimum_impressions=(
            int((Decimal(str(minimum)) * 1000 / price).to_integral_value(rounding=ROUND_CEILING))
            if minimum is not None and price and model == "cpm"
            else 0
        ),
        deal_types=("PG",) if delivery == "guaranteed" and fixed is not None else ("PD",) if fixed else ("PA",),
        raw=raw,
    )


def purchased(data: dict[str, Any]) -> dict[str, Any] | None:
    """A ``buy_products`` answer (or a purchase task's result) as a media buy with packages, like
    ``create_media_buy``'s: each purchase of the accepted snapshot under the package id its binding names; None
    when the snapshot does not match its ``terms_digest``. Any other answer is returned as it is."""
    if "purchase_bindings" not in data:
        return data
    from adcp.negotiation import verify_terms_digest

    proposal = _obj(data.get("accepted_proposal"))
    terms = _obj(proposal.get("commercial_terms"))
    try:
        intact = verify_terms_digest(proposal)
    except (ValueError, TypeError):
        intact = False
    if not intact:
        return None
    purchases = [p for p in terms.get("purchases") or [] if isinstance(p, dict)]
    packages = []
    for binding in data.get("purchase_bindings") or []:
        index = _obj(binding).get("purchase_index")
        if not isinstance(index, int) or not 0 <= index < len(purchases):
            raise SellerError("buy_products: a binding names no purchase", code="invalid_response")
        packages.append({**purchases[index], "package_id": binding.get("package_id")})
    return {
        "media_buy_id": data.get("media_buy_id"),
        "media_buy_status": data.get("media_buy_status") or "",
        "start_time": terms.get("start_time"),
        "end_time": terms.get("end_time"),
        "currency": _obj(terms.get("total_budget")).get("currency") or "USD",
        "packages": packages,
        "revision": data.get("revision"),
    }


#: The most pages of an offer feed read at once (100 products each).
MAX_FEED_PAGES = 200
#: What the library reports for a 3.0/3.1 product whose named formats it could not turn into format options.
UNRESOLVED_FORMATS = frozenset({"CANONICAL_PRODUCT_FORMATS_UNAVAILABLE", "FORMAT_PROJECTION_FAILED"})


def _formats_unresolved(data: dict[str, Any]) -> bool:
    return any(_obj(e).get("code") in UNRESOLVED_FORMATS for e in data.get("errors") or [])


def _owner(agent_url: str) -> str:
    return agent_url.strip().rstrip("/").lower()


def _read_products(items: Any, into: dict[str, Product], limit: int, extra: Mapping[str, Any] | None = None) -> int:
    """Add the AdCP products of ``items`` the buyer can read to ``into`` (the first of each id, up to ``limit``),
    each carrying ``extra`` in its raw; how many could not be read."""
    skipped = 0
    for item in items or []:
        try:
            product = product_from_adcp(item)
        except (ValueError, TypeError, KeyError, ArithmeticError):
            skipped += 1
            continue
        product.raw.update(extra or {})
        if len(into) < limit:
            into.setdefault(product.product_id, product)
    return skipped


def _best_option(options: list[dict[str, Any]]) -> dict[str, Any]:
    def rank(option: dict[str, Any]) -> int:
        model = option.get("pricing_model")
        if model in BOUGHT_MODELS and option.get("fixed_price") is not None:
            return 0
        if model in BOUGHT_MODELS and option.get("floor_price") is not None:
            return 1
        return 2

    return min(options, key=rank)


def _budget_change(deal_id: str, package: dict[str, Any], *, status: str) -> BudgetChange:
    budget = _price(package.get("budget"))
    if budget is None:
        raise SellerError(f"media buy {deal_id}: the package states no budget", code="invalid_response")
    impressions = package.get("impressions")
    return BudgetChange(
        deal_id=deal_id,
        package_id=str(package.get("package_id")),
        budget=budget,
        impressions=(
            int(impressions)
            if isinstance(impressions, int | float) and not isinstance(impressions, bool) and impressions >= 0
            else None
        ),
        status=status,
    )


def _request(model: Any, fields: dict[str, Any]) -> Any:
    """A typed AdCP request, or ``SellerError`` for values it refuses (an id from our records the spec does not
    accept): never a crash in the poller or the delivery reader."""
    try:
        return model.model_validate(fields)
    except ValueError as exc:
        raise SellerError(f"{model.__name__}: {_first(exc)}", code="invalid_request") from None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _price(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return price.quantize(Decimal("0.000001")) if price.is_finite() and price > 0 else None


def _flight(start: date, end: date) -> tuple[datetime, datetime]:
    """The campaign's flight (whole days, inclusive) as AdCP times: midnight UTC to the midnight after."""
    return datetime.combine(start, time(0), tzinfo=UTC), datetime.combine(end + timedelta(days=1), time(0), tzinfo=UTC)


def _order_times(terms: OrderTerms) -> dict[str, str]:
    start, end = _flight(terms.flight_start, terms.flight_end)
    return {
        "start_time": "asap" if terms.asap else start.isoformat().replace("+00:00", "Z"),
        "end_time": end.isoformat().replace("+00:00", "Z"),
    }


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _key(value: str) -> str:
    """An idempotency key the spec accepts (16 to 255 characters of ``[A-Za-z0-9_.:-]``), derived from ours."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_.:-" else "-" for ch in value)
    if len(cleaned) < 16 or len(cleaned) > 255 or cleaned != value:
        return "buyer-" + hashlib.sha256(value.encode()).hexdigest()
    return cleaned


def _first(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"
    return excerpt(str(exc), 200)
