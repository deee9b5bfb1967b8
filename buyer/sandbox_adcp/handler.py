"""The AdCP tasks of the sandbox seller: an ``adcp.server.ADCPHandler`` over :class:`SandboxAdcpState`.

The library's dispatcher validates each request against the AdCP schemas and parses it into the typed request
model before a method here runs, converts the answer for the buyer's negotiated AdCP version and validates it
on the way out. Methods translate between those models and the state; business refusals are raised as
``AdcpError`` so they reach the buyer as the structured ``adcp_error`` envelope (MCP ``isError``), like
the library's own validation errors, and are never stored under an idempotency key.

Mutating tasks run under the library's :class:`~adcp.server.IdempotencyStore`, scoped per caller: the same
key and body replays the first answer (``replayed: true``), the same key with another body is
``IDEMPOTENCY_CONFLICT``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Literal, TypeVar

from adcp.canonical_formats.fixtures import load_v1_reference_catalog
from adcp.decisioning.types import AdcpError
from adcp.negotiation import compute_terms_digest
from adcp.server import ADCPHandler, IdempotencyStore, ToolContext
from adcp.server.helpers import STANDARD_ERROR_CODES, valid_actions_for_status
from adcp.server.responses import (
    capabilities_response,
    delivery_response,
    legacy_creative_formats_response,
    media_buy_response,
    media_buys_response,
    products_response,
    update_media_buy_response,
)
from adcp.types import (
    BuyProductsRequest,
    CreateMediaBuyRequest,
    GetAdcpCapabilitiesRequest,
    GetMediaBuyDeliveryRequest,
    GetMediaBuysRequest,
    GetProductsRequest,
    GetTaskStatusRequest,
    ListProductsRequest,
    UpdateMediaBuyRequest,
)
from adcp.types.legacy import LegacyListCreativeFormatsRequest
from pydantic import BaseModel

from buyer.sandbox_adcp.catalog import CURRENCY, CatalogProduct
from buyer.sandbox_adcp.delivery import ZERO
from buyer.sandbox_adcp.state import (
    BuyOrder,
    MediaBuyRecord,
    PackageRecord,
    SandboxAdcpError,
    SandboxAdcpState,
    TaskRecord,
    money,
)

#: Where the context factory keeps the caller's credential-derived identity (``owner``).
OWNER_KEY = "sandbox.owner"
#: The mutations a seller demanding signed requests requires signed.
SIGNED_OPERATIONS = ("create_media_buy", "update_media_buy")
#: Who a call comes from when it carries no credential (the sandbox authenticates nobody).
ANONYMOUS = "anonymous"
TOOLS: frozenset[str] = frozenset(
    {
        "get_adcp_capabilities",
        "get_products",
        "list_creative_formats",
        "create_media_buy",
        "update_media_buy",
        "get_media_buys",
        "get_media_buy_delivery",
        "get_task_status",
    }
)
#: AdCP 3.2's compact lifecycle tasks this seller offers beside the 3.x ones when built ``compact``.
COMPACT_TOOLS: frozenset[str] = frozenset({"list_products", "buy_products"})
#: The seller's own creative agent, owner of the formats an AdCP 3.0/3.1-style seller names (``legacy_formats``).
OWN_CREATIVE_AGENT = "https://creative.sandbox-seller.example/"
#: Products per ``list_products`` page (the buyer may ask for fewer).
LIST_PAGE = 100

RequestT = TypeVar("RequestT", bound=BaseModel)
Recovery = Literal["correctable", "transient", "terminal"]


def _typed(model: type[RequestT], params: RequestT | dict[str, Any]) -> RequestT:
    """The dispatcher hands typed models; accept a dict too, as the base class's signature does."""
    return params if isinstance(params, model) else model.model_validate(params)


def refused(exc: SandboxAdcpError) -> AdcpError:
    """A business refusal as the library's structured server error, with the code's standard recovery class."""
    recovery: Recovery = "terminal"
    standard = STANDARD_ERROR_CODES.get(exc.code, {}).get("recovery")
    if standard == "correctable":
        recovery = "correctable"
    elif standard == "transient":
        recovery = "transient"
    return AdcpError(exc.code, message=exc.message, recovery=recovery, field=exc.field, details=exc.details)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class SandboxAdcpHandler(ADCPHandler[ToolContext]):
    """The AdCP 3.x media-buy baseline: discovery, buying, reading back, updating and polling tasks; with
    ``compact``, AdCP 3.2's compact lifecycle too: ``list_products`` (the versioned offer feed) and
    ``buy_products`` (a direct purchase of published offers, refused when the feed it names is stale), advertised
    in ``tools/list`` and under ``media_buy.lifecycle_tools``."""

    advertised_tools: ClassVar[set[str]] = set(TOOLS | COMPACT_TOOLS)

    def __init__(
        self,
        state: SandboxAdcpState,
        idempotency: IdempotencyStore,
        *,
        request_signing: Sequence[str] = (),
        compact: bool = False,
        legacy_formats: bool = False,
    ) -> None:
        self.state = state
        self.idempotency = idempotency
        self.request_signing = tuple(request_signing)  # operations that must come signed (RFC 9421)
        self.compact = compact
        # Products name their formats only by id, formats of the seller's own creative agent (as AdCP 3.0/3.1
        # sellers do), defined by list_creative_formats.
        self.legacy_formats = legacy_formats
        # The store's wrap takes the handler's own (self, params, context) shape.
        self._create_once = idempotency.wrap(SandboxAdcpHandler._create_media_buy)
        self._update_once = idempotency.wrap(SandboxAdcpHandler._update_media_buy)
        self._buy_once = idempotency.wrap(SandboxAdcpHandler._buy_products)

    def advertised_tools_for_instance(self) -> set[str]:
        """The library's per-instance ``tools/list`` filter: the compact tools only where offered."""
        return set(TOOLS | COMPACT_TOOLS) if self.compact else set(TOOLS)

    def get_adcp_version(self) -> str | None:
        """The library's server pin: an AdCP 3.1 seller (``legacy_formats``) advertises and checks the 3.1 schemas."""
        return "3.1" if self.legacy_formats else None

    def _compact_only(self, task: str) -> None:
        if not self.compact:
            raise refused(SandboxAdcpError("UNSUPPORTED_FEATURE", f"this seller does not offer {task}", field=task))

    # ---------------------------------------------------------------------------------------------- discovery

    async def get_adcp_capabilities(
        self, params: GetAdcpCapabilitiesRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        catalog = self.state.catalog
        response = capabilities_response(["media_buy"], idempotency=self.idempotency.capability(), sandbox=True)
        response["media_buy"] = {
            "supported_pricing_models": catalog.pricing_models,
            "buying_modes": ["brief", "wholesale"],
            "portfolio": {"publisher_domains": catalog.publisher_domains, "primary_channels": catalog.channels},
        }
        if self.compact:
            response["media_buy"]["lifecycle_tools"] = sorted(COMPACT_TOOLS)
        if self.request_signing:
            response["request_signing"] = {
                "supported": True,
                "covers_content_digest": "required",
                "required_for": list(self.request_signing),
            }
        return response

    async def get_products(
        self, params: GetProductsRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(GetProductsRequest, params)
        mode = request.buying_mode.value
        if mode == "refine":
            raise refused(SandboxAdcpError("UNSUPPORTED_FEATURE", "this seller does not refine", field="refine"))
        filters = request.filters
        delivery_types = [d.value for d in request.preferred_delivery_types or []]
        max_budget: Decimal | None = None
        if filters is not None:
            if filters.delivery_type is not None:
                delivery_types = [filters.delivery_type.value]
            if filters.budget_range is not None and filters.budget_range.max is not None:
                max_budget = Decimal(str(filters.budget_range.max))
        found = self.state.search_products(
            brief=request.brief if mode == "brief" else None,
            channels=[c.value for c in (filters.channels or [])] if filters else [],
            format_kinds=list(filters.format_kinds or []) if filters else [],
            delivery_types=delivery_types,
            fixed_price=filters.is_fixed_price if filters else None,
            currencies=[_currency(c) for c in (filters.pricing_currencies or [])] if filters else [],
            max_budget=max_budget,
        )
        products = [_product_wire(product, matched) for product, matched in found]
        scope = "public" if mode == "wholesale" else None
        if self.legacy_formats:
            # The library's builder refuses named formats (they are legacy): the 3.1 wire is stated by hand.
            answer = dict(products_response([], cache_scope=scope))
            answer["products"] = [_named_formats(w, p) for w, (p, _) in zip(products, found, strict=True)]
            return answer
        return products_response(products, cache_scope=scope)

    async def list_creative_formats_legacy(
        self, params: LegacyListCreativeFormatsRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(LegacyListCreativeFormatsRequest, params)
        offered = self.state.catalog.v1_format_ids
        owner_url = OWN_CREATIVE_AGENT if self.legacy_formats else None
        asked = {ref.id for ref in request.format_ids or []}
        search = (request.name_search or "").lower()
        formats = []
        for entry in load_v1_reference_catalog():
            if entry["format_id"]["id"] not in offered:
                continue
            if owner_url is not None:
                entry = {**entry, "format_id": {"agent_url": owner_url, "id": _own_id(entry["format_id"]["id"])}}
            if (not asked or entry["format_id"]["id"] in asked) and (not search or search in entry["name"].lower()):
                formats.append(entry)
        return legacy_creative_formats_response(formats)

    async def list_products(
        self, params: ListProductsRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(ListProductsRequest, params)
        self._compact_only("list_products")
        feed, pricing = self.state.feed_versions()
        base: dict[str, Any] = {"feed_version": feed, "pricing_version": pricing, "cache_scope": "public"}
        if request.if_feed_version == feed and request.if_pricing_version in (None, pricing):
            return {"outcome": "unchanged", **base}
        wanted = {str(p) for p in (request.criteria.product_ids or [])} if request.criteria is not None else set()
        products = [p for p in self.state.catalog.products if not wanted or p.product_id in wanted]
        try:
            offset = int(request.cursor or 0)
        except ValueError:
            raise refused(SandboxAdcpError("INVALID_REQUEST", "unknown cursor", field="cursor")) from None
        size = min(int(request.max_results or 25), LIST_PAGE)
        page = products[offset : offset + size]
        answer: dict[str, Any] = {
            "outcome": "listed",
            "products": [p.offer() for p in page],
            **base,
        }
        if offset + size < len(products):
            answer["next_cursor"] = str(offset + size)
        return answer

    async def buy_products(
        self, params: BuyProductsRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        return await self._buy_once(self, params, context)

    async def _buy_products(
        self, params: BuyProductsRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(BuyProductsRequest, params)
        self._compact_only("buy_products")
        try:
            order = self.state.plan_purchase(request)
        except SandboxAdcpError as exc:
            raise refused(exc) from None
        return self._submit(order, request.push_notification_config, context, self._bought)

    # ---------------------------------------------------------------------------------------------- buying

    async def create_media_buy(
        self, params: CreateMediaBuyRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        return await self._create_once(self, params, context)

    async def _create_media_buy(
        self, params: CreateMediaBuyRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(CreateMediaBuyRequest, params)
        try:
            order = self.state.plan_buy(request)
        except SandboxAdcpError as exc:
            raise refused(exc) from None
        return self._submit(order, request.push_notification_config, context, self._created)

    def _submit(
        self, order: BuyOrder, config: Any, context: ToolContext | None, answer: Callable[[MediaBuyRecord], Any]
    ) -> Any:
        """Book ``order`` (or take it as a task, notified at the buyer's push config): ``answer`` of the buy, or
        the task's ``submitted``."""
        push = config.model_dump(mode="json", exclude_none=True) if config is not None else None
        booked = self.state.submit(owner(context), order, push=push)
        if isinstance(booked, TaskRecord):
            return {"status": "submitted", "task_id": booked.task_id, "message": booked.message}
        return answer(booked)

    def _created(self, buy: MediaBuyRecord) -> dict[str, Any]:
        """The create_media_buy success payload (also the terminal ``result`` of an asynchronous buy)."""
        now = self.state.now()
        response = media_buy_response(
            buy.media_buy_id,
            [_package_wire(p) for p in buy.packages],
            status=buy.status(now),
            revision=buy.revision,
            confirmed_at=iso(buy.confirmed_at),
            adcp_version="3.2",
        )
        response["currency"] = CURRENCY
        response["total_budget"] = money(buy.total_budget)
        response["pacing"] = buy.pacing
        if buy.name:
            response["name"] = buy.name
        return response

    def _bought(self, buy: MediaBuyRecord) -> dict[str, Any]:
        """The buy_products success payload (also the terminal ``result`` of an asynchronous purchase)."""
        response: dict[str, Any] = {
            "status": "completed",
            "media_buy_id": buy.media_buy_id,
            "revision": buy.revision,
            "media_buy_status": buy.status(self.state.now()),
            "confirmed_at": iso(buy.confirmed_at),
            "accepted_proposal": _accepted(buy),
            "purchase_bindings": [
                {"purchase_index": i, "product_id": p.product.product_id, "package_id": p.package_id}
                for i, p in enumerate(buy.packages)
            ],
            "available_actions": [],
        }
        if buy.name:
            response["name"] = buy.name
        return response

    async def update_media_buy(
        self, params: UpdateMediaBuyRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        return await self._update_once(self, params, context)

    async def _update_media_buy(
        self, params: UpdateMediaBuyRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(UpdateMediaBuyRequest, params)
        try:
            buy, affected = self.state.update(owner(context), request)
        except SandboxAdcpError as exc:
            raise refused(exc) from None
        response = update_media_buy_response(
            buy.media_buy_id,
            affected_packages=[_package_wire(p) for p in affected],
            status=buy.status(self.state.now()),
            revision=buy.revision,
            adcp_version="3.2",
        )
        response["currency"] = CURRENCY
        response["total_budget"] = money(buy.total_budget)
        return response

    # ---------------------------------------------------------------------------------------------- reading back

    async def get_media_buys(
        self, params: GetMediaBuysRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(GetMediaBuysRequest, params)
        buys, missing = self.state.buys(owner(context), request.media_buy_ids)
        now = self.state.now()
        wanted = _status_filter(request.status_filter)
        if wanted is not None:
            buys = [b for b in buys if b.status(now) in wanted]
        response = media_buys_response(
            [self._media_buy_wire(b, now, snapshot=bool(request.include_snapshot)) for b in buys]
        )
        if missing:
            response["errors"] = [_not_found(i) for i in missing]
        return response

    def _media_buy_wire(self, buy: MediaBuyRecord, now: datetime, *, snapshot: bool) -> dict[str, Any]:
        status = buy.status(now)
        packages = []
        for package in buy.packages:
            wire = _package_wire(package)
            wire.pop("pricing_option_id", None)
            wire["currency"] = CURRENCY
            if snapshot:
                delivered = package.metrics(now)
                wire["snapshot"] = {
                    "as_of": iso(now),
                    "staleness_seconds": 0,
                    "impressions": delivered.impressions,
                    "spend": money(delivered.spend),
                    "clicks": delivered.clicks,
                    "currency": CURRENCY,
                    "delivery_status": self.state.delivery_status(buy, package, now),
                }
                pacing_index = self.state.pacing_index(package, now)
                if pacing_index is not None:
                    wire["snapshot"]["pacing_index"] = pacing_index
            packages.append(wire)
        media_buy: dict[str, Any] = {
            "media_buy_id": buy.media_buy_id,
            "status": status,
            "currency": CURRENCY,
            "total_budget": money(buy.total_budget),
            "pacing": buy.pacing,
            "start_time": iso(buy.start),
            "end_time": iso(buy.end),
            "confirmed_at": iso(buy.confirmed_at),
            "created_at": iso(buy.created_at),
            "updated_at": iso(buy.updated_at),
            "revision": buy.revision,
            "valid_actions": valid_actions_for_status(status),
            "packages": packages,
        }
        if buy.name:
            media_buy["name"] = buy.name
        return media_buy

    async def get_media_buy_delivery(
        self, params: GetMediaBuyDeliveryRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(GetMediaBuyDeliveryRequest, params)
        buys, missing = self.state.buys(owner(context), request.media_buy_ids)
        now = self.state.now()
        wanted = _status_filter(request.status_filter)
        if wanted is not None:
            buys = [b for b in buys if b.status(now) in wanted]
        period_start = _day_start(request.start_date) if request.start_date else None
        period_end = min(now, _day_start(request.end_date) + timedelta(days=1)) if request.end_date else now
        if period_start is None:
            period_start = min((b.start for b in buys), default=now)
        period_start = min(period_start, period_end)
        deliveries = [self._delivery_wire(b, period_start, period_end) for b in buys]
        response = delivery_response(
            deliveries,
            reporting_period={"start": iso(period_start), "end": iso(period_end), "timezone": "UTC"},
            currency=CURRENCY,
        )
        if missing:
            response["errors"] = [_not_found(i) for i in missing]
        return response

    def _delivery_wire(self, buy: MediaBuyRecord, start: datetime, end: datetime) -> dict[str, Any]:
        by_package = []
        impressions, spend, clicks = 0, ZERO, 0
        for package in buy.packages:
            delivered = package.metrics(end) - package.metrics(start)
            impressions += delivered.impressions
            spend += delivered.spend
            clicks += delivered.clicks
            row: dict[str, Any] = {
                "package_id": package.package_id,
                "impressions": delivered.impressions,
                "spend": money(delivered.spend),
                "clicks": delivered.clicks,
                "pricing_model": package.option.model,
                "rate": float(package.rate),
                "currency": CURRENCY,
                "delivery_status": self.state.delivery_status(buy, package, end),
                "paused": package.paused or buy.paused,
            }
            if delivered.completed_views is not None:
                row["completed_views"] = delivered.completed_views
                row["completion_rate"] = delivered.completion_rate
            pacing_index = self.state.pacing_index(package, end)
            if pacing_index is not None:
                row["pacing_index"] = pacing_index
            by_package.append(row)
        return {
            "media_buy_id": buy.media_buy_id,
            "status": buy.status(end),
            "currency": CURRENCY,
            "totals": {"impressions": impressions, "spend": money(spend), "clicks": clicks},
            "by_package": by_package,
        }

    # ---------------------------------------------------------------------------------------------- tasks

    async def get_task_status(
        self, params: GetTaskStatusRequest | dict[str, Any], context: ToolContext | None = None
    ) -> Any:
        request = _typed(GetTaskStatusRequest, params)
        try:
            task = self.state.task(owner(context), request.task_id)
        except SandboxAdcpError as exc:
            raise refused(exc) from None
        response: dict[str, Any] = {
            "task_id": task.task_id,
            "task_type": task.task_type,
            "protocol": "media-buy",
            "status": task.status,
            "message": task.message,
            "created_at": iso(task.created_at),
            "updated_at": iso(task.updated_at or task.created_at),
            "has_webhook": task.push is not None,
        }
        if task.completed_at is not None:
            response["completed_at"] = iso(task.completed_at)
        if task.status == "rejected":
            error = {"code": "POLICY_VIOLATION", "message": task.message}
            response["error"] = error
            if request.include_result:
                response["result"] = {"errors": [{**error, "recovery": "terminal"}]}
        elif task.status == "completed" and task.media_buy_id is not None and request.include_result:
            buys, _ = self.state.buys(task.owner, [task.media_buy_id])
            response["result"] = self._bought(buys[0]) if task.task_type == "buy_products" else self._created(buys[0])
        if request.include_history:
            response["history"] = [
                {"timestamp": iso(at), "type": "response", "data": {"status": status}} for at, status in task.history
            ]
        return response


def _accepted(buy: MediaBuyRecord) -> dict[str, Any]:
    """The immutable accepted-proposal snapshot a buy_products answer carries: the commercial terms bought, and
    their RFC 8785 digest."""
    order = buy.order
    assert order is not None
    purchases = []
    for package in buy.packages:
        purchase = _package_wire(package)
        for key in ("package_id", "paused", "canceled", "bid_price", "context"):
            purchase.pop(key, None)
        if package.bid is not None:
            purchase["bidding"] = {"bid_amount": float(package.bid)}
        purchase["pricing"] = package.option.wire()
        if package.impressions is not None:
            purchase["impressions"] = float(package.impressions)
        purchases.append(purchase)
    terms: dict[str, Any] = {
        "source_feed_version": order.feed_version,
        "source_pricing_version": order.pricing_version,
        "brand": dict(order.brand or {"domain": "unknown.example"}),
        "purchases": purchases,
        "start_time": iso(buy.start),
        "end_time": iso(buy.end),
        "pacing": buy.pacing,
        "total_budget": {"amount": money(buy.total_budget), "currency": CURRENCY},
    }
    return {
        "proposal_id": f"prop-{buy.media_buy_id}",
        "proposal_kind": "new_media_buy",
        "proposal_status": "accepted",
        "media_buy_id": buy.media_buy_id,
        "accepted_at": iso(buy.confirmed_at),
        "name": buy.name or f"Media buy {buy.media_buy_id}",
        "commercial_terms": terms,
        "terms_digest": compute_terms_digest(terms),
    }


# --------------------------------------------------------------------------------------------------
# Wire helpers
# --------------------------------------------------------------------------------------------------


def owner(context: ToolContext | None) -> str:
    """The caller's scope: media buys, tasks and idempotency keys are private to it."""
    if context is not None and isinstance(context.metadata, dict) and context.metadata.get(OWNER_KEY):
        return str(context.metadata[OWNER_KEY])
    if context is not None and context.caller_identity:
        return context.caller_identity
    return ANONYMOUS


def _currency(value: Any) -> str:
    return str(value)


def _product_wire(product: CatalogProduct, matched: Sequence[str]) -> Any:
    wire = product.wire()
    if matched:
        wire = wire.model_copy(update={"brief_relevance": f"Matches the brief on: {', '.join(matched)}."})
    return wire


def _own_id(v1_id: str) -> str:
    return "sandbox_" + v1_id


def _named_formats(wire: Any, product: CatalogProduct) -> dict[str, Any]:
    """A product as an AdCP 3.0/3.1 seller with its own creative agent states it: formats named only by id."""
    body: dict[str, Any] = wire.model_dump(mode="json", exclude_none=True)
    body.pop("format_options", None)
    body["format_ids"] = [
        {"agent_url": OWN_CREATIVE_AGENT, "id": _own_id(v1_id)} for spec in product.formats for v1_id in spec.v1_ids
    ]
    return body


def _package_wire(package: PackageRecord) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "package_id": package.package_id,
        "product_id": package.product.product_id,
        "pricing_option_id": package.option.option_id,
        "budget": money(package.budget),
        "pacing": package.pacing,
        "start_time": iso(package.start),
        "end_time": iso(package.end),
        "paused": package.paused,
    }
    if package.canceled:
        wire["canceled"] = True
    if package.bid is not None:
        if package.bid_field == "bid_price":
            wire["bid_price"] = float(package.bid)
        else:
            wire["bidding"] = {(package.bid_field or "bidding.bid_amount").split(".", 1)[1]: float(package.bid)}
    if package.impressions is not None:
        wire["impressions"] = package.impressions
    if package.context is not None:
        wire["context"] = package.context
    return wire


def _status_filter(value: Any) -> set[str] | None:
    if value is None:
        return None
    root = getattr(value, "root", value)
    values = root if isinstance(root, list) else [root]
    return {str(getattr(v, "value", v)) for v in values}


def _day_start(value: str | date) -> datetime:
    day = value if isinstance(value, date) else date.fromisoformat(value)
    return datetime.combine(day, time(0), tzinfo=UTC)


def _not_found(media_buy_id: str) -> dict[str, Any]:
    return {
        "code": "MEDIA_BUY_NOT_FOUND",
        "message": f"no media buy {media_buy_id!r}",
        "field": "media_buy_ids",
        "recovery": "correctable",
    }


__all__ = ["ANONYMOUS", "COMPACT_TOOLS", "TOOLS", "SandboxAdcpHandler", "owner", "refused"]
