"""The AdCP sandbox seller's in-memory state: media buys, their packages, and the tasks that approve them.

Everything that reads and then writes runs under one lock. Each ``create_app`` call builds its own
:class:`SandboxAdcpState`; nothing is shared between app instances.

Time comes only from ``clock`` (timezone-aware; a naive value is taken as UTC), so tests move time by moving the
clock. Asynchronous approvals are evaluated lazily against it: a task submitted at ``t`` with a delay ``d``
*is* completed at ``t + d`` whenever anyone next looks, and its media buy is confirmed at ``t + d`` — no timers,
no background threads, the same answer for the same moment.

Business rules raise :class:`SandboxAdcpError` with an AdCP error code; the handler turns it into the task's
error arm (``{"errors": [...]}``) or, for tasks without one, a transport error.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from adcp.types import BuyProductsRequest, CreateMediaBuyRequest, UpdateMediaBuyRequest

from buyer.sandbox_adcp.catalog import CURRENCY, Catalog, CatalogProduct, PricingSpec
from buyer.sandbox_adcp.delivery import CENT, ONE, ZERO, Metrics, Segment, delivered, flight_share, spend_at

DEFAULT_INPUT_MESSAGE = (
    "Manual approval at the seller: a trafficker must approve this order before it is booked "
    "(sandbox: POST /_sandbox/tasks/{task_id}/approve)."
)


class SandboxAdcpError(Exception):
    """A business-rule refusal: an AdCP error ``code`` with a message and the request field it concerns."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        field: str | None = None,
        details: Mapping[str, str | int | float | bool | None] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.field = field
        self.details = dict(details) if details else None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def money(value: Decimal) -> float:
    """Dollars on the wire: a JSON number rounded to the cent."""
    return float(value.quantize(CENT))


def _decimal(value: float | int) -> Decimal:
    return Decimal(str(value))


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageOrder:
    """One validated package of an order, before it becomes a booked package."""

    product: CatalogProduct
    option: PricingSpec
    budget: Decimal
    bid: Decimal | None
    bid_field: str | None  # "bid_price" | "bidding.bid_amount" | "bidding.max_bid": echoed as the buyer sent it
    pacing: str
    start: datetime
    end: datetime
    paused: bool
    impressions: float | None
    context: dict[str, Any] | None


@dataclass(frozen=True)
class BuyOrder:
    """A validated create_media_buy or buy_products request: everything needed to book it now or when its task
    completes (a buy_products order also keeps the offer feed it bought from, for the accepted snapshot)."""

    name: str | None
    po_number: str | None
    start: datetime
    end: datetime
    pacing: str
    paused: bool
    packages: tuple[PackageOrder, ...]
    kind: str = "create_media_buy"
    feed_version: str | None = None
    pricing_version: str | None = None
    brand: Mapping[str, Any] | None = None


@dataclass
class PackageRecord:
    package_id: str
    product: CatalogProduct
    option: PricingSpec
    budget: Decimal
    bid: Decimal | None
    bid_field: str | None
    pacing: str
    start: datetime
    end: datetime
    paused: bool
    impressions: float | None
    context: dict[str, Any] | None
    canceled: bool = False
    #: Its plans, oldest first: each change opens a new one, so any past moment is still answered as it was.
    segments: list[Segment] = field(default_factory=list)

    @property
    def rate(self) -> Decimal:
        """What a unit costs: the fixed price, else the buyer's bid (the sandbox clears at the bid)."""
        if self.option.fixed is not None:
            return self.option.fixed
        return self.bid if self.bid is not None else self.option.floor or ZERO

    @property
    def plan_budget(self) -> Decimal:
        return plan_budget(self.option, self.budget)

    def plan(self, since: datetime, *, spent_before: Decimal, paused: bool) -> None:
        """Open a new plan at ``since`` on the package's current terms."""
        self.segments.append(
            Segment(
                since=since,
                spent_before=spent_before,
                budget=self.plan_budget,
                paused=paused or self.paused or self.canceled,
                start=self.start,
                end=self.end,
                pacing="even" if self.option.model == "flat_rate" else self.pacing,
                fill=ONE if self.product.delivery_type == "guaranteed" else self.product.fill_rate,
                rate=self.rate,
            )
        )

    def spend(self, moment: datetime) -> Decimal:
        segment = next((s for s in reversed(self.segments) if s.since <= moment), self.segments[0])
        return spend_at(segment, moment)

    def metrics(self, moment: datetime) -> Metrics:
        return delivered(self.segments, moment, product=self.product, option=self.option)


@dataclass
class MediaBuyRecord:
    media_buy_id: str
    owner: str
    name: str | None
    po_number: str | None
    start: datetime
    end: datetime
    pacing: str
    packages: list[PackageRecord]
    created_at: datetime
    confirmed_at: datetime
    updated_at: datetime
    revision: int = 1
    paused: bool = False
    canceled_at: datetime | None = None
    order: BuyOrder | None = None  # what was bought (a buy_products answer restates its terms)

    def status(self, moment: datetime) -> str:
        """The lifecycle status at ``moment``: canceled, completed, paused, pending_start or active."""
        if self.canceled_at is not None and moment >= self.canceled_at:
            return "canceled"
        if moment >= self.end:
            return "completed"
        if self.paused:
            return "paused"
        if moment < self.start:
            return "pending_start"
        return "active"

    @property
    def total_budget(self) -> Decimal:
        return sum((p.budget for p in self.packages), ZERO)

    def package(self, package_id: str) -> PackageRecord | None:
        return next((p for p in self.packages if p.package_id == package_id), None)


@dataclass
class TaskRecord:
    """An asynchronous create_media_buy: submitted, then working or awaiting input, then completed or rejected."""

    task_id: str
    owner: str
    created_at: datetime
    order: BuyOrder
    delay: timedelta
    needs_input: bool
    stuck: bool
    input_message: str
    status: str = "submitted"
    updated_at: datetime | None = None
    approved_at: datetime | None = None
    completed_at: datetime | None = None
    media_buy_id: str | None = None
    rejection: str | None = None
    history: list[tuple[datetime, str]] = field(default_factory=list)
    # The buyer's push_notification_config (url, operation_id, authentication), and the last status sent to it.
    push: dict[str, Any] | None = None
    notified: str = ""

    @property
    def task_type(self) -> str:
        return self.order.kind

    @property
    def message(self) -> str:
        if self.status == "input-required":
            return self.input_message.replace("{task_id}", self.task_id)
        if self.status == "completed":
            return f"Media buy {self.media_buy_id} booked."
        if self.status == "rejected":
            return f"The seller rejected the order: {self.rejection}"
        if self.stuck:
            return "The seller is still working on this order."
        return "The order is queued for approval at the seller."


# --------------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------------


class SandboxAdcpState:
    """One sandbox seller's catalog, media buys and tasks, and the knobs that shape how it books.

    ``approval_delay`` (seconds on the clock): 0 books ``create_media_buy`` synchronously; more answers
    ``submitted`` with a task that completes that long after submission. ``input_required`` makes every task
    wait in ``input-required`` (``input_message``) until :meth:`approve`; the delay then runs from the
    approval. ``stuck`` makes every task stay ``working`` for ever. Knobs are read when an order is submitted,
    so a test may change them between orders.
    """

    def __init__(
        self,
        catalog: Catalog,
        *,
        clock: Callable[[], datetime] | None = None,
        approval_delay: float = 0.0,
        input_required: bool = False,
        stuck: bool = False,
        input_message: str = DEFAULT_INPUT_MESSAGE,
        id_prefix: str = "",
    ) -> None:
        self.catalog = catalog
        # Prepended to every id (the CLI gives each run its own), so a restarted sandbox never reissues the
        # ids of media buys a buyer already recorded.
        self.id_prefix = id_prefix
        self.clock: Callable[[], datetime] = clock or _utcnow
        self.approval_delay = approval_delay
        self.input_required = input_required
        self.stuck = stuck
        self.input_message = input_message
        self.lock = threading.RLock()
        self.media_buys: dict[str, MediaBuyRecord] = {}
        self.tasks: dict[str, TaskRecord] = {}
        self._issued: dict[str, int] = {}
        self._published = 1  # the offer feed's revision: a price set back still publishes a new version

    def now(self) -> datetime:
        moment = self.clock()
        # A naive clock is taken as UTC rather than local time, so a test cannot skew flights by TZ.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    @property
    def asynchronous(self) -> bool:
        return self.approval_delay > 0 or self.input_required or self.stuck

    def _next_id(self, prefix: str) -> str:
        """``mb-00001``, ``task-00001``…: one sequence per prefix. An asynchronous buy gets its id when the
        seller first notices its task has completed (a poll or a read), so ids follow the order of events."""
        self._issued[prefix] = self._issued.get(prefix, 0) + 1
        return f"{prefix}-{self.id_prefix}{self._issued[prefix]:05d}"

    # ---------------------------------------------------------------------------------------------- products

    def search_products(
        self,
        *,
        brief: str | None,
        channels: Iterable[str] = (),
        format_kinds: Iterable[str] = (),
        delivery_types: Iterable[str] = (),
        fixed_price: bool | None = None,
        currencies: Iterable[str] = (),
        max_budget: Decimal | None = None,
    ) -> list[tuple[CatalogProduct, list[str]]]:
        """Products passing every filter given, best brief match first, each with the brief words it matched.

        A brief ranks rather than filters: a sandbox that answered nothing to an unexpected brief would only
        get in the way. Filters exclude.
        """
        wanted_channels, wanted_kinds = set(channels), set(format_kinds)
        wanted_delivery, wanted_currencies = set(delivery_types), set(currencies)
        words = _brief_words(brief)
        found: list[tuple[int, int, CatalogProduct, list[str]]] = []
        for index, product in enumerate(self.catalog.products):
            if wanted_channels and not wanted_channels & set(product.channels):
                continue
            if wanted_kinds and not wanted_kinds & product.format_kinds:
                continue
            if wanted_delivery and product.delivery_type not in wanted_delivery:
                continue
            if fixed_price is not None and not any((o.fixed is not None) == fixed_price for o in product.pricing):
                continue
            if wanted_currencies and CURRENCY not in wanted_currencies:
                continue
            if max_budget is not None and product.smallest_budget > max_budget:
                continue
            matched = sorted(words & product.keywords())
            found.append((-len(matched), index, product, matched))
        found.sort(key=lambda row: (row[0], row[1]))
        return [(product, matched) for _, _, product, matched in found]

    def feed_versions(self) -> tuple[str, str]:
        """The offer feed's version and its pricing layer's (AdCP 3.2 ``list_products``): digests of what is
        published and of its revision, so every change gives new versions, never an earlier one again."""
        products = [p.offer() for p in self.catalog.products]
        prices = [[p.product_id, [o.wire() for o in p.pricing]] for p in self.catalog.products]
        return _digest("feed", [self._published, products]), _digest("pricing", [self._published, prices])

    def reprice(self, product_id: str, option_id: str, *, fixed: Decimal | None, floor: Decimal | None) -> None:
        """Publish a new price for one pricing option (new feed and pricing versions)."""
        with self.lock:
            product = self.catalog.product(product_id)
            option = product.option(option_id) if product is not None else None
            if product is None or option is None:
                raise SandboxAdcpError("PRODUCT_NOT_FOUND", f"no pricing option {option_id!r} of {product_id!r}")
            changed = replace(option, fixed=fixed, floor=floor)
            pricing = tuple(changed if o.option_id == option_id else o for o in product.pricing)
            products = tuple(
                replace(p, pricing=pricing) if p.product_id == product_id else p for p in self.catalog.products
            )
            self.catalog = replace(self.catalog, products=products)
            self._published += 1

    # ---------------------------------------------------------------------------------------------- buying

    def plan_buy(self, request: CreateMediaBuyRequest) -> BuyOrder:
        """Validate a create_media_buy request against the catalog and the clock; the order to book."""
        if request.proposal_id is not None:
            raise SandboxAdcpError(
                "UNSUPPORTED_FEATURE", "this seller issues no proposals; buy packages", field="proposal_id"
            )
        if not request.packages:
            raise SandboxAdcpError("INVALID_REQUEST", "a media buy needs at least one package", field="packages")
        return self._plan_order(
            request,
            [_dump(p) for p in request.packages],
            where="packages",
            name=request.name,
            po_number=request.po_number,
        )

    def plan_purchase(self, request: BuyProductsRequest) -> BuyOrder:
        with self.lock:  # the versions checked are the catalog planned from
            return self._plan_purchase(request)

    def _plan_purchase(self, request: BuyProductsRequest) -> BuyOrder:
        """Validate a buy_products request (AdCP 3.2's direct purchase of published offers) against the offer
        feed it names, the catalog and the clock; the order to book. Offers changed since that feed are refused
        (``CONFLICT``), never bought at the new terms."""
        feed, pricing = self.feed_versions()
        if request.feed_version != feed or (request.pricing_version or pricing) != pricing:
            raise SandboxAdcpError(
                "CONFLICT",
                f"the offers changed since feed version {request.feed_version}: list products again "
                f"(now {feed}, pricing {pricing})",
                field="feed_version",
                details={"feed_version": feed, "pricing_version": pricing},
            )
        order = self._plan_order(
            request,
            [_dump(p) for p in request.purchases],
            where="purchases",
            name=request.name,
            po_number=request.purchase_order_ref,
        )
        account = _dump(request.account)
        brand = account.get("brand") or (_dump(request.brand) if request.brand is not None else None)
        return replace(order, kind="buy_products", feed_version=feed, pricing_version=pricing, brand=brand)

    def _plan_order(
        self,
        request: CreateMediaBuyRequest | BuyProductsRequest,
        packages: list[dict[str, Any]],
        *,
        where: str,
        name: str | None,
        po_number: str | None,
    ) -> BuyOrder:
        now = self.now()
        allocation = request.budget_allocation
        if allocation is not None and _dump(allocation).get("mode") != "fixed":
            raise SandboxAdcpError(
                "UNSUPPORTED_FEATURE", "only fixed budget allocation is supported", field="budget_allocation"
            )
        start = now if request.start_time == "asap" else _aware(request.start_time)
        end = _aware(request.end_time)
        if end <= start:
            raise SandboxAdcpError("INVALID_REQUEST", "end_time must be after start_time", field="end_time")
        if end <= now:
            raise SandboxAdcpError("INVALID_REQUEST", "end_time must be in the future", field="end_time")
        buy_pacing = request.pacing.value if request.pacing is not None else "even"
        buy_bidding = _dump(request.bidding) if request.bidding is not None else {}
        planned = tuple(
            self._plan_package(f"{where}[{i}]", package, start=start, end=end, pacing=buy_pacing, bidding=buy_bidding)
            for i, package in enumerate(packages)
        )
        if request.total_budget is not None:
            total = _decimal(request.total_budget.amount)
            if request.total_budget.currency != CURRENCY:
                raise SandboxAdcpError(
                    "INVALID_REQUEST", f"this seller sells in {CURRENCY}", field="total_budget.currency"
                )
            if total != sum((p.budget for p in planned), ZERO):
                raise SandboxAdcpError(
                    "INVALID_REQUEST",
                    f"total_budget must equal the sum of the {where} budgets",
                    field="total_budget.amount",
                )
        return BuyOrder(
            name=name,
            po_number=po_number,
            start=start,
            end=end,
            pacing=buy_pacing,
            paused=bool(request.paused),
            packages=planned,
        )

    def _plan_package(
        self,
        path: str,
        wire: dict[str, Any],
        *,
        start: datetime,
        end: datetime,
        pacing: str,
        bidding: dict[str, Any],
    ) -> PackageOrder:
        product = self.catalog.product(wire["product_id"])
        if product is None:
            raise SandboxAdcpError(
                "PRODUCT_NOT_FOUND", f"no product {wire['product_id']!r} at this seller", field=f"{path}.product_id"
            )
        option = product.option(wire["pricing_option_id"])
        if option is None:
            raise SandboxAdcpError(
                "INVALID_PRICING_OPTION",
                f"product {product.product_id!r} has no pricing option {wire['pricing_option_id']!r}",
                field=f"{path}.pricing_option_id",
            )
        budget = _decimal(wire["budget"]) if wire.get("budget") is not None else None
        if budget is None or budget <= 0:
            raise SandboxAdcpError("BUDGET_TOO_LOW", "a package budget must be above zero", field=f"{path}.budget")
        smallest = option.fixed if option.model == "flat_rate" else option.min_spend
        if smallest is not None and budget < smallest:
            raise SandboxAdcpError(
                "BUDGET_TOO_LOW",
                f"pricing option {option.option_id!r} needs a budget of at least {smallest} {CURRENCY}",
                field=f"{path}.budget",
                details={"minimum": money(smallest), "budget": money(budget)},
            )
        kind = wire.get("format_kind")
        if kind is not None and kind not in product.format_kinds:
            raise SandboxAdcpError(
                "FORMAT_NOT_SUPPORTED",
                f"product {product.product_id!r} takes no {kind!r} creatives",
                field=f"{path}.format_kind",
            )
        # A media-buy-level bid is a default for the auction packages only.
        bid, bid_field = _bid(wire, bidding if option.auction else {}, path)
        _check_bid(option, bid, bid_field, path)
        package_start = _aware(datetime.fromisoformat(wire["start_time"])) if wire.get("start_time") else start
        package_end = _aware(datetime.fromisoformat(wire["end_time"])) if wire.get("end_time") else end
        if not start <= package_start < package_end <= end:
            raise SandboxAdcpError(
                "INVALID_REQUEST", "a package flight must lie within the media buy's", field=f"{path}.start_time"
            )
        return PackageOrder(
            product=product,
            option=option,
            budget=budget,
            bid=bid,
            bid_field=bid_field,
            pacing=wire.get("pacing") or pacing,
            start=package_start,
            end=package_end,
            paused=bool(wire.get("paused")),
            impressions=wire.get("impressions"),
            context=wire.get("context"),
        )

    def submit(self, owner: str, order: BuyOrder, *, push: dict[str, Any] | None = None) -> MediaBuyRecord | TaskRecord:
        """Book ``order`` now (synchronous knobs) or queue it as a task (notified at ``push``, the buyer's
        ``push_notification_config``, when given); the buy or the task."""
        with self.lock:
            now = self.now()
            if not self.asynchronous:
                return self._book(owner, order, at=now, created_at=now)
            task = TaskRecord(
                task_id=self._next_id("task"),
                owner=owner,
                created_at=now,
                order=order,
                delay=timedelta(seconds=self.approval_delay),
                needs_input=self.input_required,
                stuck=self.stuck,
                input_message=self.input_message,
                push=push,
            )
            self._transition(task, "submitted", now)
            self.tasks[task.task_id] = task
            self._settle(task, now)
            return task

    def _book(self, owner: str, order: BuyOrder, *, at: datetime, created_at: datetime) -> MediaBuyRecord:
        media_buy_id = self._next_id("mb")
        packages = [
            PackageRecord(
                package_id=f"{media_buy_id}-pkg-{i + 1}",
                product=p.product,
                option=p.option,
                budget=p.budget,
                bid=p.bid,
                bid_field=p.bid_field,
                pacing=p.pacing,
                start=p.start,
                end=p.end,
                paused=p.paused,
                impressions=p.impressions,
                context=p.context,
            )
            for i, p in enumerate(order.packages)
        ]
        for package in packages:
            package.plan(at, spent_before=ZERO, paused=order.paused)
        buy = MediaBuyRecord(
            media_buy_id=media_buy_id,
            owner=owner,
            name=order.name,
            po_number=order.po_number,
            start=order.start,
            end=order.end,
            pacing=order.pacing,
            packages=packages,
            created_at=created_at,
            confirmed_at=at,
            updated_at=at,
            paused=order.paused,
            order=order,
        )
        self.media_buys[media_buy_id] = buy
        return buy

    # ---------------------------------------------------------------------------------------------- tasks

    def _transition(self, task: TaskRecord, status: str, at: datetime) -> None:
        if task.status != status or not task.history:
            task.history.append((at, status))
        task.status = status
        task.updated_at = at

    def _settle(self, task: TaskRecord, now: datetime) -> None:
        """Bring ``task`` to where the clock says it is (callers hold the lock)."""
        if task.status in {"completed", "rejected"}:
            return
        if task.needs_input and task.approved_at is None:
            if task.status != "input-required":
                self._transition(task, "input-required", task.created_at)
            return
        began = task.approved_at or task.created_at
        ready = began + task.delay
        if not task.stuck and now >= ready:
            buy = self._book(task.owner, task.order, at=ready, created_at=task.created_at)
            task.media_buy_id = buy.media_buy_id
            task.completed_at = ready
            self._transition(task, "completed", ready)
        elif now > began and task.status != "working":
            self._transition(task, "working", began)

    def task(self, owner: str, task_id: str) -> TaskRecord:
        """The caller's task, brought up to the clock. Raises ``REFERENCE_NOT_FOUND`` for another's or none."""
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.owner != owner:
                raise SandboxAdcpError("REFERENCE_NOT_FOUND", f"no task {task_id!r}", field="task_id")
            self._settle(task, self.now())
            return task

    def all_tasks(self) -> list[TaskRecord]:
        with self.lock:
            now = self.now()
            for task in self.tasks.values():
                self._settle(task, now)
            return list(self.tasks.values())

    def mark_notified(self, task_id: str, status: str) -> None:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is not None:
                task.notified = status

    def approve(self, task_id: str) -> TaskRecord:
        """The seller's trafficker approves an order waiting for input (the sandbox control route)."""
        with self.lock:
            task = self._control_task(task_id)
            if task.status != "input-required":
                raise SandboxAdcpError("INVALID_STATE", f"task {task_id!r} is {task.status}, not input-required")
            now = self.now()
            task.approved_at = now
            self._transition(task, "working", now)
            self._settle(task, now)
            return task

    def reject(self, task_id: str, reason: str) -> TaskRecord:
        """The seller turns an order down before it is booked (the sandbox control route)."""
        with self.lock:
            task = self._control_task(task_id)
            if task.status in {"completed", "rejected"}:
                raise SandboxAdcpError("INVALID_STATE", f"task {task_id!r} is already {task.status}")
            task.rejection = reason
            now = self.now()
            task.completed_at = now
            self._transition(task, "rejected", now)
            return task

    def _control_task(self, task_id: str) -> TaskRecord:
        task = self.tasks.get(task_id)
        if task is None:
            raise SandboxAdcpError("REFERENCE_NOT_FOUND", f"no task {task_id!r}")
        self._settle(task, self.now())
        return task

    # ---------------------------------------------------------------------------------------------- media buys

    def buys(self, owner: str, media_buy_ids: Sequence[str] | None = None) -> tuple[list[MediaBuyRecord], list[str]]:
        """The caller's media buys (all, or those asked for, in that order) and the ids it has none of."""
        with self.lock:
            now = self.now()
            for task in self.tasks.values():
                if task.owner == owner:
                    self._settle(task, now)
            mine = [b for b in self.media_buys.values() if b.owner == owner]
            if media_buy_ids is None:
                return mine, []
            by_id = {b.media_buy_id: b for b in mine}
            return [by_id[i] for i in media_buy_ids if i in by_id], [i for i in media_buy_ids if i not in by_id]

    def update(self, owner: str, request: UpdateMediaBuyRequest) -> tuple[MediaBuyRecord, list[PackageRecord]]:
        """Apply an update_media_buy request all or nothing; the buy and the packages it changed."""
        with self.lock:
            found, _ = self.buys(owner, [request.media_buy_id])
            if not found:
                raise SandboxAdcpError(
                    "MEDIA_BUY_NOT_FOUND", f"no media buy {request.media_buy_id!r}", field="media_buy_id"
                )
            buy = found[0]
            now = self.now()
            if request.revision is not None and request.revision != buy.revision:
                raise SandboxAdcpError(
                    "CONFLICT",
                    f"revision {request.revision} is stale; the media buy is at revision {buy.revision}",
                    field="revision",
                    details={"current_revision": buy.revision},
                )
            unsupported = sorted(
                name
                for name in (
                    "start_time",
                    "total_budget",
                    "daily_budget_cap",
                    "frequency_cap",
                    "budget_allocation",
                    "bidding",
                    "new_packages",
                    "invoice_recipient",
                    "reporting_webhook",
                )
                if getattr(request, name) is not None
            )
            if unsupported:
                raise SandboxAdcpError(
                    "UNSUPPORTED_FEATURE", f"this seller cannot change {', '.join(unsupported)}", field=unsupported[0]
                )
            status = buy.status(now)
            if status in {"canceled", "completed"}:
                raise SandboxAdcpError("INVALID_STATE", f"media buy {buy.media_buy_id} is {status}")
            end = _aware(request.end_time) if request.end_time is not None else buy.end
            if end <= now or end <= buy.start:
                raise SandboxAdcpError(
                    "INVALID_REQUEST", "end_time must be in the future and after the start", field="end_time"
                )
            changes = [self._plan_package_update(buy, i, _dump(p), now) for i, p in enumerate(request.packages or [])]

            # Everything checked: apply, then re-plan every package from ``now`` so spend to date stays put.
            spent = {package.package_id: package.spend(now) for package in buy.packages}
            affected: dict[str, PackageRecord] = {}
            for package, values in changes:
                for name, value in values.items():
                    setattr(package, name, value)
                affected[package.package_id] = package
            if request.pacing is not None:
                buy.pacing = request.pacing.value
            if request.end_time is not None:
                for package in buy.packages:
                    if package.end == buy.end:
                        package.end = end
                buy.end = end
            if request.paused is not None:
                buy.paused = request.paused
            if request.canceled:
                buy.canceled_at = now
                for package in buy.packages:
                    package.canceled = True
            if request.name is not None:
                buy.name = request.name
            for package in buy.packages:
                package.plan(now, spent_before=spent[package.package_id], paused=buy.paused)
                if request.canceled or request.paused is not None or request.end_time is not None:
                    affected.setdefault(package.package_id, package)
            buy.revision += 1
            buy.updated_at = now
            return buy, list(affected.values())

    def _plan_package_update(
        self, buy: MediaBuyRecord, index: int, wire: dict[str, Any], now: datetime
    ) -> tuple[PackageRecord, dict[str, Any]]:
        path = f"packages[{index}]"
        package = buy.package(wire["package_id"])
        if package is None:
            raise SandboxAdcpError(
                "PACKAGE_NOT_FOUND", f"no package {wire['package_id']!r} in {buy.media_buy_id}", field=f"{path}"
            )
        unsupported = sorted(
            name
            for name in ("min_spend_target", "daily_budget_cap", "start_time", "end_time", "catalogs", "creatives")
            if wire.get(name) is not None
        )
        if unsupported:
            raise SandboxAdcpError(
                "UNSUPPORTED_FEATURE",
                f"this seller cannot change a package's {', '.join(unsupported)}",
                field=f"{path}.{unsupported[0]}",
            )
        if package.canceled:
            raise SandboxAdcpError("INVALID_STATE", f"package {package.package_id} is canceled", field=path)
        values: dict[str, Any] = {}
        if wire.get("budget") is not None:
            budget = _decimal(wire["budget"])
            spent = package.spend(now)
            least = max(spent, package.option.min_spend or ZERO)
            if package.option.model == "flat_rate" and package.option.fixed is not None:
                least = max(least, package.option.fixed)
            if budget <= 0 or budget < least:
                raise SandboxAdcpError(
                    "BUDGET_TOO_LOW",
                    f"the budget cannot go below {money(least)} {CURRENCY} (spent so far or the option's minimum)",
                    field=f"{path}.budget",
                    details={"minimum": money(least), "spent": money(spent)},
                )
            values["budget"] = budget
        if wire.get("pacing") is not None:
            values["pacing"] = wire["pacing"]
        if wire.get("paused") is not None:
            values["paused"] = bool(wire["paused"])
        if wire.get("canceled"):
            values["canceled"] = True
        if wire.get("impressions") is not None:
            values["impressions"] = wire["impressions"]
        bid, bid_field = _bid(wire, {}, path)
        if bid_field is not None:
            _check_bid(package.option, bid, bid_field, path)
            values["bid"], values["bid_field"] = bid, bid_field
        return package, values

    # ---------------------------------------------------------------------------------------------- delivery

    def delivery_status(self, buy: MediaBuyRecord, package: PackageRecord, moment: datetime) -> str:
        spend = package.spend(moment)
        if package.plan_budget - spend < CENT:
            return "budget_exhausted"
        if moment >= package.end:
            return "flight_ended"
        if package.canceled or package.paused or buy.paused or moment < package.start:
            return "not_delivering"
        return "delivering"

    def pacing_index(self, package: PackageRecord, moment: datetime) -> float | None:
        """Spend to date over straight-line spend to date (1.0 on plan), once the flight has begun."""
        expected = package.plan_budget * flight_share(package.start, package.end, moment)
        if expected <= 0:
            return None
        return float((package.spend(moment) / expected).quantize(Decimal("0.0001")))


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def plan_budget(option: PricingSpec, budget: Decimal) -> Decimal:
    """What a package will spend: its budget, or at most a flat rate's fee."""
    if option.model == "flat_rate" and option.fixed is not None:
        return min(budget, option.fixed)
    return budget


def _digest(kind: str, value: Any) -> str:
    return f"{kind}-" + hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:20]


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return dumped


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _bid(wire: Mapping[str, Any], inherited: Mapping[str, Any], path: str) -> tuple[Decimal | None, str | None]:
    """The package's bid and the field it came in: ``bid_price`` (3.1), ``bidding`` (3.2) or the buy's bidding."""
    bidding = wire.get("bidding") or inherited
    if wire.get("bid_price") is not None:
        if wire.get("bidding"):
            raise SandboxAdcpError(
                "AMBIGUOUS_BIDDING_POLICY", "send bid_price or bidding, not both", field=f"{path}.bidding"
            )
        return _decimal(wire["bid_price"]), "bid_price"
    if not bidding:
        return None, None
    if set(bidding) - {"bid_amount", "max_bid"}:
        raise SandboxAdcpError(
            "UNSUPPORTED_FEATURE", "only manual bids (bid_amount or max_bid) are supported", field=f"{path}.bidding"
        )
    for name in ("bid_amount", "max_bid"):
        if bidding.get(name) is not None:
            return _decimal(bidding[name]), f"bidding.{name}"
    return None, None


def _check_bid(option: PricingSpec, bid: Decimal | None, bid_field: str | None, path: str) -> None:
    if option.auction:
        floor = option.floor or ZERO
        if bid is None:
            raise SandboxAdcpError(
                "INVALID_REQUEST",
                f"pricing option {option.option_id!r} is an auction: send a bid of at least {floor}",
                field=f"{path}.bid_price",
                details={"floor_price": float(floor)},
            )
        if bid < floor:
            raise SandboxAdcpError(
                "INVALID_REQUEST",
                f"bid {bid} is below the floor price {floor} of pricing option {option.option_id!r}",
                field=f"{path}.{bid_field}",
                details={"floor_price": float(floor), "bid": float(bid)},
            )
    elif bid is not None:
        raise SandboxAdcpError(
            "INVALID_REQUEST",
            f"pricing option {option.option_id!r} has a fixed price; send no bid",
            field=f"{path}.{bid_field}",
        )


def _brief_words(brief: str | None) -> set[str]:
    if not brief:
        return set()
    text = "".join(c.lower() if c.isalnum() else " " for c in brief)
    return {w for w in text.split() if len(w) > 2}


__all__ = [
    "DEFAULT_INPUT_MESSAGE",
    "BuyOrder",
    "MediaBuyRecord",
    "PackageOrder",
    "PackageRecord",
    "SandboxAdcpError",
    "SandboxAdcpState",
    "TaskRecord",
    "money",
]
