"""REST deals: list, detail, history, price reconciliation (JSON and CSV), refresh from the seller, decisions."""

from __future__ import annotations

import csv
import io
from contextlib import contextmanager
from datetime import date

import httpx
import pytest
from django.utils import timezone

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from buyer.sandbox import create_app
from campaigns.models import DealStatus
from campaigns.services import deal_transition
from pacing.models import DealDelivery
from tests.conftest import serve_in_thread
from tests.factories import BookedDealFactory, RecommendationFactory, SellerFactory

pytestmark = pytest.mark.django_db


def deal(n=1, *, quoted=15_000_000, cpm=15_000_000, negotiated=False, **fields):
    line = RecommendationFactory(
        quoted_cpm_micros=quoted, cpm_micros=cpm, negotiation_status="agreed" if negotiated else ""
    )
    values = dict(
        recommendation=line,
        deal_id=f"DEAL-{n:04d}",
        impressions=1_000_000,
        cpm_micros=cpm,
        cost_micros=cpm * 1_000,
        flight_start=date(2030, 12, 1),
        flight_end=date(2030, 12, 31),
    )
    return BookedDealFactory(**(values | fields))


def test_deals_are_listed_newest_first_and_filtered(client):
    first, _ = deal(1), deal(2, channel="ctv")
    body = client.get("/deals").json()
    assert body["total"] == 2 and [d["deal_id"] for d in body["deals"]] == ["DEAL-0002", "DEAL-0001"]
    assert client.get("/deals", {"channel": "ctv"}).json()["total"] == 1
    assert client.get("/deals", {"campaign_id": str(first.job_id)}).json()["deals"][0]["id"] == first.pk
    assert client.get("/deals", {"campaign_id": str(first.job.campaign_id)}).json()["total"] == 1
    assert client.get("/deals", {"status": "nonsense"}).status_code == 422
    assert client.get("/deals", {"campaign_id": "not-a-job"}).status_code == 404
    assert client.get("/deals", {"limit": 0}).status_code == 422


def test_one_deal_and_its_history(client):
    booked = deal(1)
    deal_transition(deal=booked, to_status=DealStatus.DELIVERING, reason="delivery began")
    detail = client.get(f"/deals/{booked.pk}").json()
    assert detail["deal_id"] == "DEAL-0001" and detail["status"] == "delivering" and "activation_instructions" in detail
    history = client.get(f"/deals/{booked.pk}/history").json()
    assert [t["to_status"] for t in history["transitions"]] == ["delivering"]
    assert client.get("/deals/999999").status_code == 404
    assert client.get("/deals/999999/history").json() == {"detail": "Deal not found"}


def test_reconciliation_flags_a_negotiated_price_dropped_at_booking_and_a_bill_above_the_booking(client):
    dropped = deal(1, quoted=15_000_000, cpm=12_750_000, negotiated=True, cpm_micros=15_000_000)
    billed = deal(2)
    DealDelivery.objects.create(
        deal=billed, impressions=100_000, spend_micros=1_800_000_000, as_of=timezone.now(), checked_at=timezone.now()
    )
    fine = deal(3)

    body = client.get("/deals/reconciliation").json()
    rows = {r["deal_id"]: r for r in body["deals"]}
    assert body["flagged"] == 2
    assert rows["DEAL-0001"]["negotiated_cpm"] == 12.75 and rows["DEAL-0001"]["booked_cpm"] == 15.0
    assert rows["DEAL-0001"]["flags"] == ["booked at $15.00 CPM, above the negotiated $12.75"]
    assert rows["DEAL-0002"]["delivered_cpm"] == 18.0
    assert rows["DEAL-0002"]["flags"] == ["billed $18.00 CPM on delivery, above the booked $15.00"]
    assert rows["DEAL-0003"]["flags"] == [] and fine.pk == rows["DEAL-0003"]["id"]
    assert [r["deal_id"] for r in client.get("/deals/reconciliation", {"flagged": "true"}).json()["deals"]] == [
        "DEAL-0002",
        "DEAL-0001",
    ]
    exported = client.get("/deals/reconciliation", {"format": "csv"})
    assert exported["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert {r["deal_id"]: r["flags"] for r in table}["DEAL-0001"].startswith("booked at $15.00")
    assert dropped.pk == rows["DEAL-0001"]["id"]


def _book_at(url: str) -> str:
    """A deal booked at the sandbox over its REST API; its Deal ID."""
    product = httpx.get(f"{url}/products").json()["products"][0]
    quote = httpx.post(
        f"{url}/api/v1/quotes",
        json={
            "idempotency_key": "refresh-quote",
            "product_id": product["product_id"],
            "deal_type": "PD",
            "impressions": 100_000,
            "flight_start": "2030-12-01",
            "flight_end": "2030-12-31",
        },
    ).json()["quote"]
    booked = httpx.post(f"{url}/api/v1/deals", json={"idempotency_key": "refresh-deal", "quote_id": quote["quote_id"]})
    return booked.json()["deal"]["deal_id"]


@contextmanager
def deal_at_sandbox(settings, seller_status: str):
    """One of our deals, booked at a sandbox seller served for the block, which then reports ``seller_status``."""
    settings.SELLER_TIMEOUT_SECONDS, settings.SELLER_MAX_RETRIES = 1, 0
    app = create_app()
    with serve_in_thread(app) as url:
        seller_deal = _book_at(url)
        ours = deal(1, deal_id=seller_deal, seller=SellerFactory(base_url=url), seller_url=url)
        app.state.sandbox._deals[seller_deal].status = seller_status
        yield ours


def test_refresh_follows_what_the_seller_says_and_a_dead_seller_is_a_502(client, settings):
    _, key = api_key_create(name="ops", scopes=[Scope.WRITE])
    with deal_at_sandbox(settings, "expired") as ours:  # the seller let it lapse
        refreshed = client.post(f"/deals/{ours.pk}/refresh", headers={"X-API-Key": key})

        assert refreshed.status_code == 200
        assert (refreshed.json()["status"], refreshed.json()["seller_status"]) == ("expired", "expired")
        history = client.get(f"/deals/{ours.pk}/history", headers={"X-API-Key": key}).json()["transitions"]
        assert history[-1]["reason"] == "the seller reports the deal expired" and history[-1]["actor"] == "ops"
    gone = client.post(f"/deals/{ours.pk}/refresh", headers={"X-API-Key": key})  # the seller is not there now
    assert gone.status_code == 502 and "reading deal" in gone.json()["detail"]


def test_the_schedule_reads_back_deals_not_read_for_a_day(settings):
    from campaigns.deal_refresh import deals_refresh_due

    with deal_at_sandbox(settings, "completed") as ours:
        assert deals_refresh_due() == {"read": 1, "moved": 1, "failed": 0}
        assert deals_refresh_due() == {"read": 0, "moved": 0, "failed": 0}  # read an hour ago: not due
    ours.refresh_from_db()
    assert ours.status == DealStatus.COMPLETED and ours.seller_checked_at is not None


def test_a_held_deal_is_decided_over_the_api_and_a_read_only_key_cannot(client):
    _, writer = api_key_create(name="ops", scopes=[Scope.WRITE])
    _, reader = api_key_create(name="viewer", scopes=[Scope.READ])
    held = deal(1, status=DealStatus.BOOKING, flag="the seller booked deal DEAL-0001 at 1,200,000 impressions")

    def decide(decision, key):
        url, body = f"/deals/{held.pk}/decide", {"decision": decision}
        return client.post(url, body, content_type="application/json", headers={"X-API-Key": key})

    refused, accepted, again = decide("accept", reader), decide("accept", writer), decide("refuse", writer)

    assert refused.status_code == 403
    assert accepted.status_code == 200 and accepted.json()["status"] == "booked"
    assert again.status_code == 409 and "only a deal held for a decision" in again.json()["detail"]
    assert decide("maybe", writer).status_code == 422


def test_a_refused_deal_is_listed_until_it_is_confirmed_cancelled(client):
    _, writer = api_key_create(name="ops", scopes=[Scope.WRITE])
    held = deal(1, status=DealStatus.BOOKING, flag="the seller booked deal DEAL-0001 at $18.00 CPM")
    deal(2)

    def needs(what):
        return client.get("/deals", {"needs": what}, headers={"X-API-Key": writer}).json()["deals"]

    def decide(decision):
        url, body = f"/deals/{held.pk}/decide", {"decision": decision}
        return client.post(url, body, content_type="application/json", headers={"X-API-Key": writer})

    assert [d["deal_id"] for d in needs("decision")] == ["DEAL-0001"] and needs("cancellation") == []
    refused = decide("refuse").json()
    assert (refused["status"], refused["refused_by"], refused["awaiting_cancellation"]) == ("failed", "ops", True)
    assert [d["deal_id"] for d in needs("cancellation")] == ["DEAL-0001"] and needs("decision") == []

    cancelled = decide("cancelled").json()
    assert (cancelled["status"], cancelled["awaiting_cancellation"]) == ("cancelled", False)
    assert needs("cancellation") == []
    assert decide("cancelled").status_code == 409
    assert client.get("/deals", {"needs": "nothing"}, headers={"X-API-Key": writer}).status_code == 422


def test_a_deal_the_seller_cancelled_before_it_delivered_frees_its_money(settings):
    from campaigns import ledger
    from campaigns.deal_refresh import deal_refresh

    with deal_at_sandbox(settings, "rejected") as ours:
        ledger.commit(ours.recommendation, cost_micros=ours.cost_micros, reason="booked")
        deal_refresh(ours)
    assert ours.status == DealStatus.CANCELLED
    assert ledger.held_micros(ours.recommendation) == 0
