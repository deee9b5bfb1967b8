"""Isolation around one seller's client: a circuit breaker, a concurrency cap and health observations.

``registry.client_for`` wraps every REST or MCP client in a :class:`GuardedSellerClient`. Its calls run in
worker threads, so nothing here touches the ORM: outcomes are kept in memory under a lock and handed over
as a :class:`HealthReport` by :meth:`GuardedSellerClient.drain_health`, which ``registry.record_health``
persists from the calling thread. The breaker's starting state comes from the seller's row (shared by every
worker process); within a step the in-memory state moves on its own:

    closed ──N consecutive failures──▶ open ──cool-down──▶ half_open ──trial ok──▶ closed
                                        ▲                      │
                                        └─────trial failed─────┘

Only transport-level failures count (timeouts, connection errors, 5xx, 429, invalid responses, and whatever
the client marked retryable). A 4xx business answer (404 product_not_found, 409 quote_already_booked, …) comes
from a seller that is working as intended, so it is recorded as a healthy call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

from django.utils import timezone

from buyer.logs import log_context
from buyer.sellers.errors import SellerError
from buyer.sellers.models import BreakerState
from buyer.sellers.rest import Secret, excerpt
from buyer.sellers.types import BudgetChange, Deal, DealPerformance, NegotiationRound, Product, Quote, TaskState

logger = logging.getLogger("buyer.sellers")

# Weight of the newest call in the error-rate and latency moving averages.
EWMA_ALPHA = 0.2
MAX_ERROR_TEXT = 300
# Codes our clients use for "no usable answer came back"; an MCP client should use the same ones.
TRANSPORT_CODES = frozenset(
    {"timeout", "connection_error", "transport_error", "invalid_response", "mcp_error", "unexpected_error"}
)


def counts_as_failure(exc: SellerError) -> bool:
    """True when the error says the seller (or the way to it) is unwell, not that it said no."""
    if exc.retryable or exc.code in TRANSPORT_CODES:
        return True
    return exc.status is not None and (exc.status >= 500 or exc.status == 429)


def circuit_open_error(seller: str, until: datetime | None) -> SellerError:
    when = f" until {until:%H:%M:%S} UTC" if until is not None else ""
    return SellerError(f"seller {seller} is failing; calls are suspended{when}", code="circuit_open", retryable=False)


# --- observations -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    ok: bool
    latency_ms: float
    at: datetime
    error: str = ""


@dataclass(frozen=True)
class HealthReport:
    """What one client saw since the last drain, in the terms the database update needs.

    The moving averages are linear in their previous value, ``new = old * decay + term``, so the update can
    be applied atomically to whatever the row holds by then (another worker may have written in between).
    """

    seller_id: int | None
    calls: int
    errors: int
    trailing_failures: int  # failures after the last success (all of them when there was no success)
    any_success: bool
    decay: float
    error_rate_term: float
    latency_term: float
    first_latency_ms: float  # seeds the latency average when the row has none yet
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str
    opened_at: datetime | None  # the breaker opened during this step and is still open
    closed: bool  # a trial call closed the breaker during this step

    @classmethod
    def from_outcomes(
        cls, seller_id: int | None, outcomes: list[Outcome], *, opened_at: datetime | None, closed: bool
    ) -> HealthReport:
        n = len(outcomes)
        weights = [EWMA_ALPHA * (1 - EWMA_ALPHA) ** (n - 1 - i) for i in range(n)]
        trailing = 0
        for outcome in reversed(outcomes):
            if outcome.ok:
                break
            trailing += 1
        successes = [o for o in outcomes if o.ok]
        failures = [o for o in outcomes if not o.ok]
        return cls(
            seller_id=seller_id,
            calls=n,
            errors=len(failures),
            trailing_failures=trailing,
            any_success=bool(successes),
            decay=(1 - EWMA_ALPHA) ** n,
            error_rate_term=sum(w for w, o in zip(weights, outcomes, strict=True) if not o.ok),
            latency_term=sum(w * o.latency_ms for w, o in zip(weights, outcomes, strict=True)),
            first_latency_ms=outcomes[0].latency_ms if outcomes else 0.0,
            last_success_at=max((o.at for o in successes), default=None),
            last_failure_at=max((o.at for o in failures), default=None),
            last_error=failures[-1].error if failures else "",
            opened_at=opened_at,
            closed=closed,
        )


# --- the breaker --------------------------------------------------------------------------------------------


class SellerBreaker:
    """One seller's breaker for the lifetime of one client (one step). Thread-safe; no ORM."""

    def __init__(
        self,
        *,
        seller_id: int | None,
        seller_name: str,
        state: str = BreakerState.CLOSED,
        opened_at: datetime | None = None,
        consecutive_failures: int = 0,
        failure_threshold: int,
        cooldown: timedelta,
        clock: Callable[[], datetime] = timezone.now,
    ) -> None:
        self.seller_id = seller_id
        self.seller_name = seller_name
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState(state)
        self._opened_at = opened_at
        self._consecutive = consecutive_failures if self._state == BreakerState.CLOSED else 0
        self._trial_in_flight = False
        self._outcomes: list[Outcome] = []
        self._opened_in_step = False
        self._closed_in_step = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def opened_at(self) -> datetime | None:
        return self._opened_at

    def admit(self) -> bool:
        """Whether a call may go out now; True for the single trial of a half-open breaker. Never blocks."""
        with self._lock:
            if self._state == BreakerState.OPEN:
                if self._opened_at is not None and self._clock() < self._opened_at + self.cooldown:
                    return False
                self._state = BreakerState.HALF_OPEN
            if self._state == BreakerState.HALF_OPEN:
                if self._trial_in_flight:
                    return False
                self._trial_in_flight = True
            return True

    def blocked(self) -> bool:
        """Whether a call would be refused now; unlike ``admit`` it changes nothing."""
        with self._lock:
            if self._state == BreakerState.OPEN:
                return self._opened_at is not None and self._clock() < self._opened_at + self.cooldown
            return self._state == BreakerState.HALF_OPEN and self._trial_in_flight

    def blocked_until(self) -> datetime | None:
        opened_at = self._opened_at
        return opened_at + self.cooldown if opened_at is not None else None

    def record(self, *, ok: bool, latency_ms: float, error: str = "") -> None:
        now = self._clock()
        with self._lock:
            self._outcomes.append(Outcome(ok, latency_ms, now, error))
            if self._state == BreakerState.HALF_OPEN and self._trial_in_flight:
                self._trial_in_flight = False
                if ok:
                    self._close()
                else:
                    self._open(now)
            elif ok:
                self._consecutive = 0
            else:
                self._consecutive += 1
                if self._state == BreakerState.CLOSED and self._consecutive >= self.failure_threshold:
                    self._open(now)

    def release(self) -> None:
        """An admitted call that never reached the seller (our own bad argument): free the trial slot."""
        with self._lock:
            self._trial_in_flight = False

    def drain(self) -> HealthReport | None:
        """Hand over what was observed since the last drain; None when there is nothing to persist."""
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            # Half-open here means opened in this step and now waiting on its own trial: still open for others.
            still_open = self._state in (BreakerState.OPEN, BreakerState.HALF_OPEN)
            opened_at = self._opened_at if self._opened_in_step and still_open else None
            closed = self._closed_in_step and self._state == BreakerState.CLOSED
            self._opened_in_step = self._closed_in_step = False
        if not outcomes and opened_at is None and not closed:
            return None
        return HealthReport.from_outcomes(self.seller_id, outcomes, opened_at=opened_at, closed=closed)

    # Both called with the lock held.
    def _open(self, now: datetime) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._opened_in_step = True
        self._closed_in_step = False
        logger.warning("seller %s: circuit opened after repeated failures", self.seller_name)

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._opened_at = None
        self._consecutive = 0
        self._closed_in_step = True
        self._opened_in_step = False
        logger.info("seller %s: circuit closed after a successful trial call", self.seller_name)


# --- concurrency cap ----------------------------------------------------------------------------------------

_slots_lock = threading.Lock()
_slots: dict[tuple[object, int], threading.BoundedSemaphore] = {}


def concurrency_slot(seller_key: object, limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore of one seller: every client of that seller in this process shares it.

    Keyed by the limit as well, so an admin's new ``max_concurrency`` takes effect for clients made after it.
    """
    limit = max(1, int(limit))
    with _slots_lock:
        slot = _slots.get((seller_key, limit))
        if slot is None:
            slot = _slots[(seller_key, limit)] = threading.BoundedSemaphore(limit)
        return slot


# --- the guarded client -------------------------------------------------------------------------------------


class GuardedSellerClient:
    """A seller client (REST or MCP) whose every public call goes through the seller's breaker and slot.

    ``refusal``: a client that cannot be built properly (unreadable credential, MCP support missing) still
    exists, so one misconfigured seller never breaks the loop over all of them; each call raises the refusal,
    which is our fault, not the seller's, and is not recorded as a seller failure.
    """

    def __init__(
        self,
        inner: Any,
        *,
        breaker: SellerBreaker,
        slot: threading.BoundedSemaphore,
        secret: str | None = None,
        base_url: str | None = None,
        protocol: str = "",
        refusal: SellerError | None = None,
        on_close: Callable[[GuardedSellerClient], None] | None = None,
    ) -> None:
        self._inner = inner
        self.protocol = protocol
        self.breaker = breaker
        self._slot = slot
        self._secret = Secret(secret) if secret else None
        self.refusal = refusal
        self._on_close = on_close
        self.base_url: str = base_url if base_url is not None else getattr(inner, "base_url", "")

    def __repr__(self) -> str:
        # Not the inner client's repr: it is not ours to vouch for (it might show the credential).
        return f"GuardedSellerClient(base_url={self.base_url!r}, breaker={self.breaker.state!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self._inner is not None:
                self._inner.close()
        finally:
            if self._on_close is not None:
                self._on_close(self)

    def drain_health(self) -> HealthReport | None:
        return self.breaker.drain()

    # -- the seller's surface (same names and arguments as SellerRestClient) -----------------------------

    def health(self) -> bool:
        """True when the seller says it is healthy. Never raises, even with the circuit open."""
        try:
            return bool(self._call("health", (), {}, healthy=bool))
        except SellerError:
            return False

    def agent_card(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._call("agent_card", args, kwargs)

    def list_products(self, *args: Any, **kwargs: Any) -> list[Product]:
        return self._call("list_products", args, kwargs)

    def get_product(self, *args: Any, **kwargs: Any) -> Product:
        return self._call("get_product", args, kwargs)

    def request_quote(self, *args: Any, **kwargs: Any) -> Quote:
        return self._call("request_quote", args, kwargs)

    def get_quote(self, *args: Any, **kwargs: Any) -> Quote:
        return self._call("get_quote", args, kwargs)

    def book_deal(self, *args: Any, **kwargs: Any) -> Deal:
        return self._call("book_deal", args, kwargs)

    def get_deal(self, *args: Any, **kwargs: Any) -> Deal:
        return self._call("get_deal", args, kwargs)

    def deal_performance(self, *args: Any, **kwargs: Any) -> DealPerformance:
        return self._call("deal_performance", args, kwargs)

    def negotiate(self, *args: Any, **kwargs: Any) -> NegotiationRound:
        return self._call("negotiate", args, kwargs)

    def task_status(self, *args: Any, **kwargs: Any) -> TaskState:
        return self._call("task_status", args, kwargs)

    def set_budget(self, *args: Any, **kwargs: Any) -> BudgetChange:
        return self._call("set_budget", args, kwargs)

    def budget_of(self, *args: Any, **kwargs: Any) -> BudgetChange:
        return self._call("budget_of", args, kwargs)

    def media_kit(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._call("media_kit", args, kwargs)

    def media_kit_packages(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self._call("media_kit_packages", args, kwargs)

    def media_kit_package(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._call("media_kit_package", args, kwargs)

    def media_kit_search(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return self._call("media_kit_search", args, kwargs)

    # -- internals ---------------------------------------------------------------------------------

    def _call(
        self,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        healthy: Callable[[Any], bool] | None = None,
    ) -> Any:
        if self.refusal is not None:
            raise self.refusal
        # Checked before waiting for a slot, so an open circuit fails fast even when the slot is busy…
        if self.breaker.blocked():
            raise circuit_open_error(self.breaker.seller_name, self.breaker.blocked_until())
        with self._slot:
            # …and admitted after, because the breaker may have opened while this call waited.
            if not self.breaker.admit():
                raise circuit_open_error(self.breaker.seller_name, self.breaker.blocked_until())
            method = getattr(self._inner, name, None)
            if method is None:
                self.breaker.release()
                raise SellerError(
                    f"{name} is not available over {self.protocol or 'this protocol'}", code="unsupported_operation"
                )
            started = time.perf_counter()
            try:
                with log_context(seller=self.breaker.seller_name):
                    result = method(*args, **kwargs)
            except SellerError as exc:
                failed = counts_as_failure(exc)
                self.breaker.record(ok=not failed, latency_ms=_since(started), error=self._text(exc) if failed else "")
                raise
            except (ValueError, TypeError):
                # Our own bad argument, refused before anything was sent: says nothing about the seller.
                self.breaker.release()
                raise
            except Exception as exc:
                self.breaker.record(ok=False, latency_ms=_since(started), error=f"unexpected {type(exc).__name__}")
                raise
            ok = healthy(result) if healthy is not None else True
            self.breaker.record(ok=ok, latency_ms=_since(started), error="" if ok else f"{name} reported unhealthy")
            return result

    def _text(self, exc: SellerError) -> str:
        text = str(exc)
        if self._secret is not None:
            text = text.replace(self._secret.reveal(), "***")
        return excerpt(text, MAX_ERROR_TEXT)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
