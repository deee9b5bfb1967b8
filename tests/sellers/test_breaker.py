"""The per-seller circuit breaker: opens on transport failures, fails fast, half-opens, closes on a good trial."""

from __future__ import annotations

import contextlib
import inspect
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from buyer.sellers.client import SellerRestClient
from buyer.sellers.errors import SellerError
from buyer.sellers.guard import GuardedSellerClient, SellerBreaker, concurrency_slot, counts_as_failure
from buyer.sellers.models import BreakerState, Seller
from buyer.sellers.registry import client_for, record_health
from tests.factories import SellerFactory
from tests.sellers._guard_support import FakeSellerClient, install_fakes, timeout

pytestmark = pytest.mark.django_db


@pytest.fixture
def fakes(monkeypatch) -> dict[str, FakeSellerClient]:
    return install_fakes(monkeypatch)


T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _breaker_settings(settings):
    settings.SELLER_BREAKER_FAILURES = 3
    settings.SELLER_BREAKER_COOLDOWN_SECONDS = 60


def _fake(fakes, seller: Seller, *script) -> FakeSellerClient:
    fake = fakes[seller.base_url] = FakeSellerClient(seller.base_url, script=list(script))
    return fake


def _open_breaker_in_db(seller: Seller, at: datetime) -> None:
    Seller.objects.filter(pk=seller.pk).update(
        breaker_state=BreakerState.OPEN, breaker_opened_at=at, consecutive_failures=3
    )


def test_the_breaker_opens_after_n_transport_failures_and_then_fails_fast_without_calling_the_seller(fakes):
    seller = SellerFactory()
    fake = _fake(fakes, seller)
    fake.default = timeout()
    client = client_for(seller)
    for _ in range(3):
        with pytest.raises(SellerError) as failed:
            client.list_products()
        assert failed.value.code == "timeout"

    with pytest.raises(SellerError) as refused:
        client.request_quote(object())
    assert (refused.value.code, refused.value.retryable) == ("circuit_open", False)
    assert len(fake.calls) == 3

    record_health([client])
    seller.refresh_from_db()
    assert seller.breaker_state == BreakerState.OPEN
    assert (seller.consecutive_failures, seller.calls_total, seller.errors_total) == (3, 3, 3)

    # Every process shares it through the row: a new client fails fast before any call.
    with pytest.raises(SellerError, match="circuit_open"):
        client_for(seller).get_deal("deal-1")
    assert len(fake.calls) == 3


@pytest.mark.parametrize(
    "error",
    [
        SellerError("Product not found", status=404, code="product_not_found"),
        SellerError("Quote already booked", status=409, code="quote_already_booked"),
        SellerError("PG requires impressions", status=400, code="pg_requires_impressions"),
        SellerError("Invalid API key", status=401, code="http_401"),
        SellerError("body.impressions: field required", status=422, code="validation_error"),
    ],
    ids=lambda e: e.code,
)
def test_a_business_answer_from_the_seller_does_not_count_as_a_failure(fakes, error):
    seller = SellerFactory()
    fake = _fake(fakes, seller)
    fake.default = error
    client = client_for(seller)
    for _ in range(5):
        with pytest.raises(SellerError) as answered:
            client.get_product("p-1")
        assert answered.value is error

    assert len(fake.calls) == 5 and client.breaker.state == BreakerState.CLOSED
    record_health([client])
    seller.refresh_from_db()
    assert (seller.calls_total, seller.errors_total, seller.consecutive_failures) == (5, 0, 0)
    assert seller.last_success_at is not None and seller.last_failure_at is None
    assert seller.breaker_state == BreakerState.CLOSED


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (SellerError("no response", code="timeout", retryable=True), True),
        (SellerError("refused", code="connection_error", retryable=True), True),
        (SellerError("Internal Server Error", status=500, code="http_500"), True),
        (SellerError("Bad Gateway (gave up)", status=502, code="http_502", retryable=True), True),
        (SellerError("Too Many Requests", status=429, code="http_429"), True),
        (SellerError("response is not JSON", status=200, code="invalid_response"), True),
        (SellerError("Product not found", status=404, code="product_not_found"), False),
        (SellerError("Quote already booked", status=409, code="quote_already_booked"), False),
        (SellerError("MCP session failed", code="mcp_error"), True),
        (SellerError("request_quote: product not found", code="tool_error"), False),
    ],
    ids=lambda v: getattr(v, "code", str(v)),
)
def test_only_transport_level_and_retryable_errors_are_failures(error, counts):
    assert counts_as_failure(error) is counts


def test_a_success_ends_the_failure_streak(fakes):
    seller = SellerFactory()
    _fake(fakes, seller, timeout(), timeout(), [], timeout(), timeout(), [])
    client = client_for(seller)
    for _ in range(6):
        with contextlib.suppress(SellerError):
            client.list_products()
    assert client.breaker.state == BreakerState.CLOSED
    record_health([client])
    seller.refresh_from_db()
    assert (seller.consecutive_failures, seller.errors_total, seller.breaker_state) == (0, 4, BreakerState.CLOSED)


def test_failure_streaks_of_two_workers_add_up_and_open_the_breaker_in_the_database(fakes):
    seller = SellerFactory()
    fake = _fake(fakes, seller)
    fake.default = timeout()
    first, second = client_for(seller), client_for(seller)  # two workers, each below the threshold alone
    for client in (first, second):
        for _ in range(2):
            with pytest.raises(SellerError):
                client.list_products()
        assert client.breaker.state == BreakerState.CLOSED

    record_health([first, second])
    seller.refresh_from_db()
    assert (seller.consecutive_failures, seller.breaker_state) == (4, BreakerState.OPEN)
    assert seller.breaker_opened_at is not None


def test_after_the_cool_down_one_trial_call_is_let_through_and_a_success_closes_the_breaker(fakes):
    seller = SellerFactory()
    fake = _fake(fakes, seller)
    _open_breaker_in_db(seller, T0)

    with time_machine.travel(T0 + timedelta(seconds=30), tick=False), pytest.raises(SellerError, match="circuit_open"):
        client_for(seller).list_products()
    assert fake.calls == []

    with time_machine.travel(T0 + timedelta(seconds=61), tick=False):
        trial = client_for(seller)
        seller.refresh_from_db()
        assert seller.breaker_state == BreakerState.HALF_OPEN
        # Another worker arriving now does not get a second trial.
        with pytest.raises(SellerError, match="circuit_open"):
            client_for(seller).list_products()

        assert trial.list_products() == []
        assert trial.breaker.state == BreakerState.CLOSED
        trial.list_products()  # closed: the rest of the step goes through
        record_health([trial])

    seller.refresh_from_db()
    assert (seller.breaker_state, seller.breaker_opened_at, seller.consecutive_failures) == (
        BreakerState.CLOSED,
        None,
        0,
    )
    assert len(fake.calls) == 2


def test_a_failed_trial_reopens_the_breaker_for_another_cool_down(fakes):
    seller = SellerFactory()
    fake = _fake(fakes, seller, timeout())
    _open_breaker_in_db(seller, T0)
    retried_at = T0 + timedelta(seconds=90)

    with time_machine.travel(retried_at, tick=False):
        trial = client_for(seller)
        with pytest.raises(SellerError, match="timeout"):
            trial.list_products()
        with pytest.raises(SellerError, match="circuit_open"):
            trial.list_products()
        record_health([trial])

    seller.refresh_from_db()
    assert (seller.breaker_state, seller.breaker_opened_at) == (BreakerState.OPEN, retried_at)
    assert len(fake.calls) == 1
    still_cooling = time_machine.travel(retried_at + timedelta(seconds=59), tick=False)
    with still_cooling, pytest.raises(SellerError, match="circuit_open"):
        client_for(seller).list_products()


def test_a_half_open_breaker_lets_a_single_trial_through_while_it_is_in_flight():
    now = [T0]
    breaker = SellerBreaker(
        seller_id=None,
        seller_name="slow",
        state=BreakerState.OPEN,
        opened_at=T0,
        failure_threshold=3,
        cooldown=timedelta(seconds=60),
        clock=lambda: now[0],
    )
    fake = FakeSellerClient()
    fake.delay = 0.3
    client = GuardedSellerClient(fake, breaker=breaker, slot=threading.BoundedSemaphore(8))
    now[0] = T0 + timedelta(seconds=61)

    results: list[object] = []
    trial = threading.Thread(target=lambda: results.append(client.list_products()))
    trial.start()
    while not fake.calls:
        pass
    with pytest.raises(SellerError, match="circuit_open"):
        client.list_products()
    trial.join()
    assert results == [[]] and fake.calls == ["list_products"]
    assert breaker.state == BreakerState.CLOSED


def test_within_a_step_an_open_breaker_half_opens_once_the_cool_down_has_passed():
    now = [T0]
    breaker = SellerBreaker(
        seller_id=None,
        seller_name="flaky",
        failure_threshold=2,
        cooldown=timedelta(seconds=60),
        clock=lambda: now[0],
    )
    fake = FakeSellerClient(script=[timeout(), timeout()])
    client = GuardedSellerClient(fake, breaker=breaker, slot=threading.BoundedSemaphore(4))
    for _ in range(2):
        with pytest.raises(SellerError, match="timeout"):
            client.list_products()
    with pytest.raises(SellerError, match="circuit_open"):
        client.list_products()

    now[0] = T0 + timedelta(seconds=60)
    assert client.list_products() == []
    assert breaker.state == BreakerState.CLOSED and len(fake.calls) == 3


def test_every_public_call_of_the_seller_client_goes_through_the_breaker():
    public = {
        name
        for name, member in inspect.getmembers(SellerRestClient, inspect.isfunction)
        if not name.startswith("_") and name != "close"
    }
    breaker = SellerBreaker(
        seller_id=None,
        seller_name="down",
        state=BreakerState.OPEN,
        opened_at=datetime.now(UTC),
        failure_threshold=1,
        cooldown=timedelta(hours=1),
    )
    fake = FakeSellerClient()
    client = GuardedSellerClient(fake, breaker=breaker, slot=threading.BoundedSemaphore(1))
    for name in sorted(public - {"health"}):
        with pytest.raises(SellerError, match="circuit_open"):
            getattr(client, name)("x")
    assert client.health() is False  # a probe answers, it never raises
    assert fake.calls == []
    assert public <= set(dir(GuardedSellerClient))


def test_our_own_bad_argument_is_not_a_seller_failure_and_frees_the_trial(fakes):
    seller = SellerFactory()
    fake = _fake(fakes, seller)
    _open_breaker_in_db(seller, T0)
    with time_machine.travel(T0 + timedelta(minutes=5), tick=False):
        client = client_for(seller)
        with pytest.raises(ValueError):
            client.get_quote("")
        assert client.get_quote("qt-1") == []  # the trial slot is still free
        record_health([client])
    seller.refresh_from_db()
    assert (seller.calls_total, seller.errors_total, seller.breaker_state) == (1, 0, BreakerState.CLOSED)
    assert fake.calls == ["get_quote"]  # the bad call was refused before reaching the seller


def test_an_unhealthy_probe_counts_as_a_failure_and_the_circuit_open_probe_says_false(fakes):
    seller = SellerFactory()
    fake = _fake(fakes, seller)
    fake.default = False
    client = client_for(seller)
    assert [client.health() for _ in range(4)] == [False, False, False, False]
    assert len(fake.calls) == 3 and client.breaker.state == BreakerState.OPEN


def test_the_slot_is_shared_by_every_client_of_one_seller_in_the_process():
    assert concurrency_slot(41, 3) is concurrency_slot(41, 3)
    assert concurrency_slot(41, 3) is not concurrency_slot(42, 3)
    # A new limit set by an admin applies to clients made after it.
    assert concurrency_slot(41, 5) is not concurrency_slot(41, 3)
