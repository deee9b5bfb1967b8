"""The fast reads answer ``GET /bookings`` and ``GET /bookings/{id}`` exactly as Django does, and leave every
other request to Django (PostgreSQL: the fast reads run only there)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.utils import timezone

from buyer.apikeys.models import ApiKey
from buyer.apikeys.services import api_key_create
from buyer.fastpath import CHECKOUT_TIMEOUT, FastReads
from buyer.web import build_wsgi
from campaigns.fast_reads import ROUTES
from campaigns.models import (
    BookedDeal,
    BookingJob,
    Campaign,
    DealStatus,
    JobStatus,
    NegotiationRound,
    NegotiationStatus,
    Recommendation,
)
from tests.factories import BookedDealFactory, BookingJobFactory, RecommendationFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("needs_postgres")]

BOOTSTRAP = "bootstrap-key-for-fast-read-tests"
IGNORED_HEADERS = {"date", "server", "x-request-id"}  # x-request-id: new for each request (both have one)


class Fallback:
    """Stands for Django behind the fast reads: records what reached it, answers 599."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def api_settings(settings):
    settings.API_KEY = BOOTSTRAP
    settings.API_RATE_LIMIT_PER_MINUTE = 0
    settings.WEB_FAST_READS = True
    return settings


def fast_get(requests: list[tuple[str, dict[str, str]]]) -> tuple[list[httpx.Response], list[str]]:
    """Each (url, headers) through the fast reads, in one server lifetime; and the paths they left to Django."""
    fallback = Fallback()
    app = FastReads(fallback, ROUTES, connections=2)

    async def run() -> list[httpx.Response]:
        async with app.lifespan():
            assert app.db is not None
            await app.db.pool.wait()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                return [await client.get(url, headers=headers) for url, headers in requests]

    return asyncio.run(run()), fallback.paths


def django_get(url: str, headers: dict[str, str]) -> httpx.Response:
    with httpx.Client(transport=httpx.WSGITransport(app=build_wsgi()), base_url="http://127.0.0.1:8000") as client:
        return client.get(url, headers=headers)


def header_set(response: httpx.Response) -> set[tuple[str, str]]:
    return {(k.lower(), v) for k, v in response.headers.items() if k.lower() not in IGNORED_HEADERS}


def seeded_job() -> BookingJob:
    """A job with lines in every state the detail shows: negotiated with rounds, booked, held, refused."""
    parent = BookingJobFactory(status=JobStatus.COMPLETED)
    job = BookingJobFactory(
        status=JobStatus.COMPLETED,
        parent=parent,
        campaign=parent.campaign,
        budget_allocations={
            "branding": {"channel": "branding", "budget": 30000, "percentage": 60, "rationale": "reach"},
            "ctv": {"channel": "ctv", "budget": 20000.5, "percentage": 40.0, "rationale": "attention"},
        },
        errors=["Slow seller: timed out"],
        approval_expires_at=timezone.now() + timedelta(hours=2),
    )
    lines = [RecommendationFactory(job=job, priority=n + 1) for n in range(5)]
    lines[0].negotiation_status = NegotiationStatus.AGREED
    lines[0].negotiation_terms = {"strategy": "collaborative", "target": "8.5", "walk_away": "11"}
    lines[0].negotiation_id = "neg-1"
    lines[0].quoted_cpm_micros = 12_000_000
    lines[0].save()
    for number, (ours, theirs) in enumerate([(8_000_000, 11_500_000), (9_500_000, None)], start=1):
        NegotiationRound.objects.create(
            recommendation=lines[0],
            round_number=number,
            action="counter",
            buyer_price_micros=ours,
            seller_price_micros=theirs,
            seller_action="counter" if theirs else "accept",
            status="active",
            rounds_remaining=3 - number,
            rationale=f"round {number} — ünïcode",
        )
    BookedDealFactory(recommendation=lines[0], deal_id="DEAL-A")
    BookedDealFactory(recommendation=lines[1], deal_id="DEAL-B", status=DealStatus.BOOKING, flag="price differs")
    BookedDealFactory(recommendation=lines[2], deal_id="DEAL-C")
    return job


def test_the_fast_answers_are_djangos_byte_for_byte(api_settings):
    job = seeded_job()
    BookingJobFactory.create_batch(3, status=JobStatus.FAILED)
    BookingJobFactory.create_batch(2, status=JobStatus.AWAITING_APPROVAL)
    big = BookingJobFactory(status=JobStatus.COMPLETED)  # rendered in a thread: more rows than the loop takes
    for n in range(40):
        line = RecommendationFactory(job=big, priority=n + 1)
        if n < 30:
            BookedDealFactory(recommendation=line)
    _, stored = api_key_create(name="reader", scopes=["read"])
    ApiKey.objects.update(last_used_at=timezone.now())
    urls = [
        f"/bookings/{big.pk}",
        "/bookings",
        "/bookings?limit=2",
        "/bookings?limit=2&offset=3",
        "/bookings?status=failed&limit=200",
        "/bookings?status=running",  # none: an empty page, total 0
        "/bookings?offset=1000",
        f"/bookings/{job.pk}",
        f"/bookings/{job.parent_id}",
        f"/bookings/{str(job.pk).upper()}",
    ]
    for key in (BOOTSTRAP, stored):
        requests = [(url, {"X-API-Key": key}) for url in urls]
        fast, deferred = fast_get(requests)
        assert deferred == []
        for (url, headers), answer in zip(requests, fast, strict=True):
            expected = django_get(url, headers)
            assert answer.status_code == expected.status_code == 200, url
            assert answer.content == expected.content, url
            assert header_set(answer) == header_set(expected), url
            assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"]) and expected.headers["x-request-id"]
    assert fast[2].json()["total"] == 8 and len(fast[2].json()["jobs"]) == 2
    assert len(fast[0].json()["booked_lines"]) == 30
    assert [line["deal_id"] for line in fast[-3].json()["booked_lines"]] == ["DEAL-A", "DEAL-B", "DEAL-C"]


def test_anything_unusual_is_left_to_django(api_settings):
    job = BookingJobFactory()
    _, stored = api_key_create(name="reader", scopes=["read"])
    key = {"X-API-Key": BOOTSTRAP}
    unusual = [
        ("/bookings", {}),  # no key: Django's 401
        ("/bookings", {"X-API-Key": "mba_nope_nope"}),
        ("/bookings", {"X-API-Key": stored}),  # last_used_at is due: Django records it
        ("/bookings?limit=0", key),
        ("/bookings?limit=201", key),
        ("/bookings?limit=abc", key),
        ("/bookings?limit=", key),
        ("/bookings?limit=1&limit=2", key),
        ("/bookings?offset=9223372036854775808", key),
        ("/bookings?status=bogus", key),
        ("/bookings?unknown=1", key),
        ("/bookings/", key),
        (f"/bookings/{uuid.uuid4()}", key),  # unknown job: Django's 404
        ("/bookings/not-a-uuid", key),
        ("/bookings", {**key, "Origin": "http://localhost:3000"}),  # CORS is Django's
        ("/bookings", {**key, "Host": "evil.example"}),
        ("/bookings", {"X-API-Key": BOOTSTRAP.encode() + b"\xa0"}),  # Django does not strip the key: 401
        ("/bookings", {**key, "X_API_Key": "junk"}),  # WSGI merges it with X-API-Key: Django's 401
        ("/bookings", {**key, "Content-Length": "5"}),  # a body: Django's bound (413) applies
    ]
    fast, deferred = fast_get(unusual)
    assert [answer.status_code for answer in fast] == [599] * len(unusual)
    assert len(deferred) == len(unusual)
    assert django_get("/bookings", {"X-API-Key": stored}).status_code == 200
    assert ApiKey.objects.get().last_used_at is not None  # recorded by Django, so the next read is fast
    fast, deferred = fast_get([("/bookings", {"X-API-Key": stored}), (f"/bookings/{job.pk}", {"X-API-Key": stored})])
    assert [answer.status_code for answer in fast] == [200, 200] and deferred == []


def test_a_key_over_its_rate_limit_is_left_to_django(api_settings, fresh_rate_limits):
    api_settings.API_RATE_LIMIT_PER_MINUTE = 2
    key = {"X-API-Key": api_settings.API_KEY}
    unknown = (f"/bookings/{uuid.uuid4()}", key)  # left to Django, so counted there only (here: not at all)
    fast, _ = fast_get([unknown, unknown, *[("/bookings", key)] * 3])
    assert [answer.status_code for answer in fast] == [599, 599, 200, 200, 599]
    assert django_get("/bookings", {"X-API-Key": api_settings.API_KEY}).status_code == 429


def test_without_the_setting_everything_goes_to_django(api_settings):
    api_settings.WEB_FAST_READS = False
    fallback = Fallback()
    app = FastReads(fallback, ROUTES)

    async def run() -> int:
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                return (await client.get("/bookings", headers={"X-API-Key": BOOTSTRAP})).status_code

    assert asyncio.run(run()) == 599 and fallback.paths == ["/bookings"]


def move_line(line: Recommendation, to: BookingJob) -> None:
    """A line and its deal to another job (two statements, as a data fix would)."""
    Recommendation.objects.filter(pk=line.pk).update(job=to)
    BookedDeal.objects.filter(recommendation=line).update(job=to)


def truncate_versions() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE campaigns_jobversion, campaigns_joblistversion")


def test_an_answer_is_given_again_only_while_nothing_it_shows_has_changed(api_settings):
    job = seeded_job()
    other, third = BookingJobFactory(), BookingJobFactory()
    line, deal = job.recommendations.order_by("priority").first(), job.deals.order_by("booked_at").first()
    writes = [  # each thing a list or a detail shows, written the ways the services write it
        lambda: BookingJob.objects.filter(pk=job.pk).update(progress=0.75),
        lambda: BookingJob.objects.filter(pk=other.pk).update(status=JobStatus.FAILED),
        lambda: Campaign.objects.filter(pk=job.campaign_id).update(name="Renamed campaign"),
        lambda: Recommendation.objects.filter(pk=line.pk).update(status_reason="seller sold out"),
        lambda: NegotiationRound.objects.create(recommendation=line, round_number=3, action="accept"),
        lambda: BookedDeal.objects.filter(pk=deal.pk).update(impressions=123),
        lambda: BookedDealFactory(recommendation=RecommendationFactory(job=job, priority=9), deal_id="DEAL-NEW"),
        lambda: BookingJobFactory(),
        lambda: BookedDeal.objects.filter(deal_id="DEAL-NEW").delete(),
        lambda: move_line(line, third),  # both jobs change
        truncate_versions,  # the sums start again from nothing, in a new epoch
        lambda: BookingJob.objects.filter(pk=job.pk).update(progress=0.5),
        lambda: BookingJob.objects.filter(pk=other.pk).delete(),
    ]
    urls = ["/bookings?limit=3", f"/bookings/{job.pk}", f"/bookings/{other.pk}", f"/bookings/{third.pk}"]
    key = {"X-API-Key": BOOTSTRAP}
    fallback = Fallback()
    app = FastReads(fallback, ROUTES, connections=2)

    async def compare() -> list[bytes]:
        bodies = []
        for url in urls:
            answer = await client.get(url, headers=key)
            expected = await asyncio.to_thread(django_get, url, key)
            if answer.status_code == 599:  # left to Django: only the deleted job (404)
                assert expected.status_code == 404, url
            else:
                assert answer.content == expected.content, url
            bodies.append(answer.content)
        return bodies

    async def run() -> None:
        nonlocal client
        async with app.lifespan():
            assert app.db is not None
            await app.db.pool.wait()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                before = await compare()
                hits = app.answers.hits
                assert await compare() == before and app.answers.hits == hits + len(urls)  # nothing changed
                for write in writes:
                    await asyncio.to_thread(write)
                    await compare()

    client: httpx.AsyncClient
    asyncio.run(run())
    assert fallback.paths == [f"/bookings/{other.pk}"]  # once deleted


def test_a_write_committed_after_an_answer_was_rendered_is_seen(api_settings):
    """A write in flight while a page and a job are rendered is not in them; once it commits, its version rows
    are visible and move the versions on, so neither answer is given again."""
    import psycopg
    from django.db import connection

    job = BookingJobFactory()
    key = {"X-API-Key": BOOTSTRAP}
    app = FastReads(Fallback(), ROUTES, connections=2)
    dsn = connection.get_connection_params()

    async def run() -> list[Any]:
        async with app.lifespan():
            assert app.db is not None
            await app.db.pool.wait()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                writer = await psycopg.AsyncConnection.connect(
                    **{k: v for k, v in dsn.items() if k not in ("cursor_factory", "context")}
                )
                async with writer:
                    await writer.execute("UPDATE campaigns_bookingjob SET progress = 0.9 WHERE id = %s", [job.pk])
                    during = [
                        (await client.get(url, headers=key)).json() for url in ("/bookings", f"/bookings/{job.pk}")
                    ]
                    await writer.commit()
                after = [(await client.get(url, headers=key)).json() for url in ("/bookings", f"/bookings/{job.pk}")]
                return [during, after]

    (listed, detail), (listed_after, detail_after) = asyncio.run(run())
    assert listed["jobs"][0]["progress"] == detail["progress"] == 0.0
    assert listed_after["jobs"][0]["progress"] == detail_after["progress"] == 0.9


def test_with_every_connection_busy_the_request_goes_to_django(api_settings):
    """Held for the pool's checkout timeout (``CHECKOUT_TIMEOUT``, not the pool's default 30 s), then Django's."""
    fallback = Fallback()
    app = FastReads(fallback, ROUTES, connections=1)

    async def run() -> int:
        async with app.lifespan():
            assert app.db is not None
            await app.db.pool.wait()
            assert app.db.pool.timeout == CHECKOUT_TIMEOUT
            transport = httpx.ASGITransport(app=app)
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client,
                app.db.pool.connection(),  # the pool's only connection, held
            ):
                return (await client.get("/bookings", headers={"X-API-Key": BOOTSTRAP})).status_code

    assert asyncio.run(run()) == 599 and fallback.paths == ["/bookings"]
