"""Health observations: made in worker threads, persisted from the calling thread, added up across workers."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from django.db import connection

from buyer.sellers.errors import SellerError
from buyer.sellers.guard import EWMA_ALPHA, HealthReport, Outcome
from buyer.sellers.models import Seller
from buyer.sellers.registry import client_for, clients_for, record_health
from tests.factories import SellerFactory
from tests.sellers._guard_support import FakeSellerClient, install_fakes, not_found, timeout

SECRET = "sk-live-7b1f9c2e"


@pytest.fixture
def fakes(monkeypatch) -> dict[str, FakeSellerClient]:
    return install_fakes(monkeypatch)


def _call_quietly(client, name: str = "list_products") -> None:
    with contextlib.suppress(SellerError):
        getattr(client, name)()


@pytest.mark.django_db
def test_counters_from_many_threads_and_several_clients_all_reach_the_row(fakes, settings):
    settings.SELLER_BREAKER_FAILURES = 1000
    seller = SellerFactory(max_concurrency=8)
    fake = fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    fake.script = [timeout() if i % 4 == 0 else not_found() if i % 4 == 1 else [] for i in range(90)]
    clients = [client_for(seller) for _ in range(3)]  # three workers' clients of the same seller
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: _call_quietly(clients[i % 3]), range(90)))

    record_health(clients)
    record_health(clients)  # idempotent: nothing is counted twice
    seller.refresh_from_db()
    assert (seller.calls_total, seller.errors_total) == (90, 23)
    assert 0 < seller.error_rate < 1
    assert seller.latency_ms is not None and seller.latency_ms >= 0
    assert seller.last_success_at is not None and seller.last_failure_at is not None


@pytest.mark.django_db(transaction=True)
def test_workers_recording_at_the_same_time_do_not_lose_counts(fakes):
    """Each thread plays a worker: its own client, its own calls, its own record_health (its own connection)."""
    seller = SellerFactory()
    fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            client = client_for(seller)
            for _ in range(10):
                client.list_products()
            start.wait()
            record_health([client])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seller.refresh_from_db()
    assert (seller.calls_total, seller.errors_total) == (60, 0)


@pytest.mark.django_db
def test_a_stale_instance_elsewhere_does_not_undo_recorded_health(fakes):
    seller = SellerFactory()
    fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    stale = Seller.objects.get(pk=seller.pk)
    client = client_for(seller)
    client.list_products()
    record_health([client])

    from buyer.sellers.services import seller_save_settings

    stale.name = "Renamed by an admin"
    seller_save_settings(seller=stale, changed_fields={"name"}, created=False)
    seller.refresh_from_db()
    assert (seller.name, seller.calls_total) == ("Renamed by an admin", 1)


@pytest.mark.django_db
def test_closing_a_client_in_the_thread_that_made_it_records_its_health(fakes):
    seller = SellerFactory()
    fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    client = client_for(seller)
    client.list_products()
    client.close()
    seller.refresh_from_db()
    assert seller.calls_total == 1


@pytest.mark.django_db
def test_closing_a_client_in_a_worker_thread_leaves_the_database_alone_until_record_health(fakes):
    seller = SellerFactory()
    fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    client = client_for(seller)
    closer = threading.Thread(target=lambda: (client.list_products(), client.close()))
    closer.start()
    closer.join()
    seller.refresh_from_db()
    assert seller.calls_total == 0
    record_health({"s": client})
    seller.refresh_from_db()
    assert seller.calls_total == 1


@pytest.mark.django_db
def test_the_clients_for_block_closes_every_client_and_records_health(fakes):
    sellers = {"a": SellerFactory(), "b": SellerFactory()}
    for seller in sellers.values():
        fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    with clients_for(sellers) as clients:
        clients["a"].list_products()
        clients["b"].list_products()
        clients["b"].list_products()
    assert all(fake.closed for fake in fakes.values())
    assert dict(Seller.objects.values_list("pk", "calls_total")) == {
        sellers["a"].pk: 1,
        sellers["b"].pk: 2,
    }


@pytest.mark.django_db
def test_the_last_error_is_short_and_never_holds_the_credential(fakes):
    seller = SellerFactory()
    seller.set_credential(SECRET)
    seller.save()
    fake = fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    fake.script = [SellerError(f"upstream echoed X-Api-Key: {SECRET} " + "x" * 1000, status=502, code="http_502")]
    client = client_for(seller)
    _call_quietly(client)
    record_health([client])
    seller.refresh_from_db()
    assert SECRET not in seller.last_error
    assert seller.last_error.startswith("http_502") and len(seller.last_error) <= 300


def test_the_moving_averages_applied_in_one_update_equal_applying_each_call_in_turn():
    at = datetime(2026, 11, 23, tzinfo=UTC)
    outcomes = [Outcome(ok, latency, at) for ok, latency in [(True, 100), (False, 900), (True, 80), (False, 1000)]]
    report = HealthReport.from_outcomes(1, outcomes, opened_at=None, closed=False)

    old_rate, old_latency = 0.1, 200.0
    rate, latency = old_rate, old_latency
    for outcome in outcomes:
        rate = (1 - EWMA_ALPHA) * rate + EWMA_ALPHA * (0 if outcome.ok else 1)
        latency = (1 - EWMA_ALPHA) * latency + EWMA_ALPHA * outcome.latency_ms
    assert old_rate * report.decay + report.error_rate_term == pytest.approx(rate)
    assert old_latency * report.decay + report.latency_term == pytest.approx(latency)
    assert (report.calls, report.errors, report.trailing_failures, report.any_success) == (4, 2, 1, True)


@pytest.mark.django_db
def test_the_first_latency_seeds_the_average(fakes):
    seller = SellerFactory()
    fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    client = client_for(seller)
    client.list_products()
    record_health([client])
    seller.refresh_from_db()
    assert seller.latency_ms is not None and seller.latency_ms < 1000
    assert seller.error_rate == 0


@pytest.mark.django_db
def test_calls_to_one_seller_never_exceed_its_max_concurrency(fakes):
    seller = SellerFactory(max_concurrency=3)
    fake = fakes[seller.base_url] = FakeSellerClient(seller.base_url)
    fake.delay = 0.05
    clients = [client_for(seller), client_for(seller)]  # the cap is per seller, not per client
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: clients[i % 2].list_products(), range(24)))
    assert results == [[]] * 24
    assert fake.peak == 3


@pytest.mark.django_db
def test_a_slow_seller_at_its_cap_does_not_hold_up_another_seller(fakes):
    slow, quick = SellerFactory(max_concurrency=1), SellerFactory(max_concurrency=1)
    fakes[slow.base_url] = FakeSellerClient(slow.base_url)
    fakes[slow.base_url].delay = 0.5
    fakes[quick.base_url] = FakeSellerClient(quick.base_url)
    slow_client, quick_client = client_for(slow), client_for(quick)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pool.submit(slow_client.list_products)
        pool.submit(slow_client.list_products)
        time.sleep(0.05)
        started = time.perf_counter()
        pool.submit(quick_client.list_products).result()
        assert time.perf_counter() - started < 0.3


@pytest.mark.django_db
def test_the_research_step_records_every_sellers_health_without_changes_to_the_flow(settings):
    from buyer.sandbox import create_app
    from campaigns.models import JobStage, JobStatus
    from tests.campaigns.test_flow import new_job, run
    from tests.conftest import free_port, serve_in_thread

    settings.SELLER_ENDPOINTS, settings.IAB_SERVER_URL_IS_SET = [], False
    settings.SELLER_TIMEOUT_SECONDS, settings.SELLER_MAX_RETRIES = 1, 0
    with serve_in_thread(create_app(catalog="default")) as url:
        up = SellerFactory(name="Up", base_url=url)
        down = SellerFactory(name="Down", base_url=f"http://127.0.0.1:{free_port()}")
        job = run(new_job(), JobStage.PLAN, JobStage.RESEARCH)
    assert job.status == JobStatus.AWAITING_APPROVAL
    up.refresh_from_db()
    down.refresh_from_db()
    assert up.calls_total >= 2 and up.errors_total == 0 and up.last_success_at is not None
    assert (down.calls_total, down.errors_total, down.consecutive_failures) == (1, 1, 1)
    assert down.last_error.startswith("connection_error")
