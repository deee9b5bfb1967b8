from __future__ import annotations

import uuid
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from buyer.accounts.models import Role
from buyer.accounts.services import user_create
from buyer.events.models import Event, EventType
from buyer.events.services import event_emit
from campaigns.models import BookedDeal, DealStatus, DealTransition
from campaigns.services import deal_transition
from tests.factories import BookedDealFactory, BookingJobFactory, CampaignFactory, RecommendationFactory, SellerFactory

pytestmark = pytest.mark.django_db

PASSWORD = "s3cret-pass-word"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def buyer(client):
    user_create(username="mia", email="mia@example.com", password=PASSWORD, role=Role.MEDIA_BUYER)
    client.login(username="mia", password=PASSWORD)
    return client


def deal(
    n: int = 1, *, seller=None, channel: str = "branding", status: str = DealStatus.BOOKED, **fields
) -> BookedDeal:
    line = RecommendationFactory(
        seller=seller or SellerFactory(), channel=channel, product_name=fields.pop("product_name", f"Product {n}")
    )
    values = dict(
        recommendation=line,
        deal_id=f"DEAL-{n:04d}",
        deal_type="PG",
        impressions=2_000_000,
        cpm_micros=15_000_000,
        cost_micros=30_000 * 1_000_000,
        flight_start=date(2030, 12, 1),
        flight_end=date(2030, 12, 31),
        status=status,
        activation_instructions={
            "xandr": f"In Xandr, enter Deal ID: DEAL-{n:04d}",
            "ttd": f"In The Trade Desk, create a PMP deal with Deal ID: DEAL-{n:04d}",
            "dv360": f"In DV360, add deal DEAL-{n:04d}",
        },
        openrtb_params={"id": f"DEAL-{n:04d}", "bidfloor": "15.00", "at": 1, "wseat": ["seat-1"]},
    )
    values.update(fields)
    return BookedDealFactory(**values)


# --- Deals ------------------------------------------------------------------------------------------------------


def test_the_deals_list_shows_the_sellers_deal_ids_money_and_state(buyer):
    seller = SellerFactory(name="Seller A")
    booked = deal(1, seller=seller)
    content = buyer.get(reverse("campaigns:deals")).content.decode()
    assert '<table id="deals-table">' in content
    assert f'href="{reverse("campaigns:deal_detail", args=[booked.pk])}"><code>DEAL-0001</code>' in content
    assert "Seller A" in content and "Product 1" in content and " · PG</span>" in content
    assert '<td class="num">$15.00</td>' in content and '<td class="num">2,000,000<br>' in content
    assert '<td class="num">$30,000<br>' in content and "2030-12-01" in content and "2030-12-31" in content
    assert 'class="badge badge-booked">booked</span>' in content


def test_deals_filter_by_state_channel_and_seller(buyer):
    seller_a, seller_b = SellerFactory(name="Seller A"), SellerFactory(name="Seller B")
    deal(1, seller=seller_a, channel="ctv", product_name="Streaming")
    deal(2, seller=seller_b, channel="branding", status=DealStatus.CANCELLED, product_name="Homepage")
    url = reverse("campaigns:deals")
    by_state = buyer.get(url, {"status": "cancelled"}).content.decode()
    assert "Homepage" in by_state and "Streaming" not in by_state
    by_channel = buyer.get(url, {"channel": "ctv"}).content.decode()
    assert "Streaming" in by_channel and "Homepage" not in by_channel
    by_seller = buyer.get(url, {"seller": seller_b.pk}).content.decode()
    assert "Homepage" in by_seller and "Streaming" not in by_seller
    assert f'<option value="{seller_a.pk}">Seller A</option>' in by_seller
    assert "No deals match these filters." in buyer.get(url, {"status": "expired"}).content.decode()


def test_deals_filter_by_flight_dates_kept_in_the_url(buyer):
    seller = SellerFactory()
    deal(1, seller=seller, product_name="December", flight_start=date(2030, 12, 1), flight_end=date(2030, 12, 31))
    deal(2, seller=seller, product_name="March", flight_start=date(2031, 3, 1), flight_end=date(2031, 3, 31))
    url = reverse("campaigns:deals")
    later = buyer.get(url, {"flight_from": "2031-01-01"}).content.decode()
    assert "March" in later and "December" not in later and 'value="2031-01-01"' in later
    earlier = buyer.get(url, {"flight_to": "2030-12-15"}).content.decode()
    assert "December" in earlier and "March" not in earlier
    both = buyer.get(url, {"flight_from": "2030-12-20", "flight_to": "2031-03-05"}).content.decode()
    assert "December" in both and "March" in both  # overlapping the window counts
    assert "No deals match these filters." in buyer.get(url, {"flight_from": "2032-01-01"}).content.decode()
    bad = buyer.get(url, {"flight_from": "not a date"})
    assert bad.status_code == 200 and "Some filters were not understood" in bad.content.decode()


def test_deals_are_paginated_and_the_htmx_request_gets_the_results_fragment(buyer):
    seller = SellerFactory()
    for n in range(27):
        deal(n + 1, seller=seller)
    first = buyer.get(reverse("campaigns:deals")).content.decode()
    assert first.count("<code>DEAL-") == 25 and "Page 1 of 2" in first
    second = buyer.get(reverse("campaigns:deals"), {"page": 2}, **HX)
    content = second.content.decode()
    assert second.status_code == 200 and content.lstrip().startswith('<div id="deals-results">')
    assert content.count("<code>DEAL-") == 2 and "<html" not in content


def test_the_deals_list_takes_a_constant_number_of_queries(buyer, django_assert_max_num_queries):
    deal(1)
    with CaptureQueriesContext(connection) as few:
        buyer.get(reverse("campaigns:deals"))
    for n in range(20):
        deal(n + 2)
    with django_assert_max_num_queries(len(few.captured_queries)):
        buyer.get(reverse("campaigns:deals"))


def test_the_deal_detail_shows_activation_per_dsp_openrtb_history_and_the_job(buyer):
    booked = deal(7)
    DealTransition.objects.create(deal=booked, from_status="booking", to_status="booked", reason="seller issued")
    deal_transition(deal=booked, to_status=DealStatus.DELIVERING, reason="first impressions served")
    content = buyer.get(reverse("campaigns:deal_detail", args=[booked.pk])).content.decode()
    assert '<code id="deal-id">DEAL-0007</code>' in content and "delivering</span>" in content
    ttd, dv360, xandr = (content.index(label) for label in ("The Trade Desk", "Display &amp; Video 360", "Xandr</dt>"))
    assert ttd < dv360 < xandr  # a fixed DSP order, whatever order the seller sent
    assert "In The Trade Desk, create a PMP deal with Deal ID: DEAL-0007" in content
    assert 'class="copy" data-copy="activation-1" hidden>Copy' in content and "navigator.clipboard" in content
    assert '<pre class="json" id="openrtb-params">' in content and "&quot;bidfloor&quot;: &quot;15.00&quot;" in content
    history = content.split('<table id="deal-history-table">', 1)[1]
    assert history.index("seller issued") < history.index("first impressions served")
    assert f'href="{reverse("campaigns:job_detail", args=[booked.job_id])}" id="deal-job-link"' in content


def test_seller_text_on_deal_pages_is_escaped(buyer):
    booked = deal(
        1,
        product_name="<script>alert(1)</script>",
        activation_instructions={"ttd": "<img src=x onerror=alert(2)>", "items": "<b>odd key</b>"},
        openrtb_params={"id": "</pre><script>alert(3)</script>"},
    )
    for url in (reverse("campaigns:deals"), reverse("campaigns:deal_detail", args=[booked.pk])):
        content = buyer.get(url).content.decode()
        assert "<script>alert(" not in content and "<img src=x" not in content and "<b>odd key</b>" not in content
    detail = buyer.get(reverse("campaigns:deal_detail", args=[booked.pk])).content.decode()
    assert "&lt;img src=x onerror=alert(2)&gt;" in detail and "&lt;b&gt;odd key&lt;/b&gt;" in detail


def test_an_unknown_deal_is_404(buyer):
    assert buyer.get(reverse("campaigns:deal_detail", args=[999_999])).status_code == 404


def test_the_deal_detail_takes_a_constant_number_of_queries(buyer, django_assert_max_num_queries):
    booked = deal(1)
    with CaptureQueriesContext(connection) as few:
        buyer.get(reverse("campaigns:deal_detail", args=[booked.pk]))
    for n in range(10):
        DealTransition.objects.create(deal=booked, from_status="booked", to_status="booked", reason=f"r{n}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        buyer.get(reverse("campaigns:deal_detail", args=[booked.pk]))


# --- Events -----------------------------------------------------------------------------------------------------


def test_the_events_feed_is_newest_first_with_payloads_and_links_to_jobs(buyer):
    job = BookingJobFactory(campaign=CampaignFactory(name="Holiday push"))
    event_emit(EventType.CAMPAIGN_CREATED, flow_id=str(job.pk), payload={"name": "Holiday push"})
    event_emit(EventType.JOB_FAILED, flow_id="not-a-job", payload={"reason": "first step failed"})
    content = buyer.get(reverse("events:feed")).content.decode().split('<div id="events-results">', 1)[1]
    assert '<table id="events-table">' in content
    assert content.index("Job failed") < content.index("Brief received")
    assert f'href="{reverse("campaigns:job_detail", args=[job.pk])}"' in content
    assert "<code>not-a-job</code>" in content  # not a job: no link
    assert "<summary>Payload" in content and "&quot;reason&quot;: &quot;first step failed&quot;" in content


def test_events_filter_by_type_and_flow(buyer):
    job = BookingJobFactory()
    event_emit(EventType.CAMPAIGN_CREATED, flow_id=str(job.pk), payload={"name": "mine"})
    event_emit(EventType.DEAL_BOOKED, flow_id=str(job.pk), deal_id="DEAL-1", payload={"seller": "S"})
    event_emit(EventType.CAMPAIGN_CREATED, flow_id=str(uuid.uuid4()), payload={"name": "theirs"})
    url = reverse("events:feed")
    by_type = buyer.get(url, {"event_type": "deal.booked"}).content.decode().split('<div id="events-results">', 1)[1]
    assert "Deal booked" in by_type and "Brief received" not in by_type
    by_flow = buyer.get(url, {"flow_id": str(job.pk)}).content.decode()
    assert "&quot;mine&quot;" in by_flow and "&quot;theirs&quot;" not in by_flow
    assert '<option value="deal.booked">Deal booked (deal.booked)</option>' in by_flow
    ignored = buyer.get(url, {"event_type": "nonsense"}).content.decode()
    assert "not understood" in ignored and "&quot;theirs&quot;" in ignored


def test_events_are_paginated_and_htmx_gets_the_results_fragment(buyer):
    Event.objects.bulk_create(
        [Event(event_type=EventType.QUOTE_RECEIVED, flow_id="f", payload={"n": n}) for n in range(55)]
    )
    first = buyer.get(reverse("events:feed")).content.decode()
    assert first.count("<summary>Payload") == 50 and "Page 1 of 2" in first
    second = buyer.get(reverse("events:feed"), {"page": 2}, **HX)
    content = second.content.decode()
    assert content.lstrip().startswith('<div id="events-results">') and content.count("<summary>Payload") == 5
    assert "<html" not in content


def test_event_payloads_are_escaped(buyer):
    event_emit(EventType.SELLER_FAILED, flow_id="f", payload={"seller": "<script>alert(1)</script>", "error": "x"})
    content = buyer.get(reverse("events:feed")).content.decode()
    assert "<script>alert(1)</script>" not in content and "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_the_events_feed_takes_a_constant_number_of_queries(buyer, django_assert_max_num_queries):
    job = BookingJobFactory()
    event_emit(EventType.CAMPAIGN_CREATED, flow_id=str(job.pk), payload={})
    with CaptureQueriesContext(connection) as few:
        buyer.get(reverse("events:feed"))
    for _ in range(20):
        other = BookingJobFactory()
        event_emit(EventType.CAMPAIGN_CREATED, flow_id=str(other.pk), payload={})
    with django_assert_max_num_queries(len(few.captured_queries)):
        buyer.get(reverse("events:feed"))


def test_every_event_type_has_a_label_and_pacing_events_read_as_sentences(buyer):
    from buyer.events.views import EVENT_LABELS

    assert set(EVENT_LABELS) == set(EventType.values)
    job = BookingJobFactory()
    flow = str(job.pk)
    event_emit(
        EventType.PACING_DEVIATION_DETECTED,
        flow_id=flow,
        deal_id="DEAL-7",
        payload={
            "scope": "deal",
            "deal_id": "DEAL-7",
            "alert_level": "critical",
            "direction": "under",
            "deviation_pct": -32.54,
            "change": "opened",
        },
    )
    event_emit(
        EventType.PACING_ALERT_RESOLVED,
        flow_id=flow,
        payload={"scope": "channel", "channel": "ctv", "change": "resolved", "now": "on_track"},
    )
    event_emit(
        EventType.PACING_REALLOCATION_APPLIED,
        flow_id=flow,
        payload={"actor": "ada", "moves": [{"from_channel": "branding", "to_channel": "ctv", "amount": "1500"}]},
    )
    event_emit(
        EventType.DEAL_STATUS_CHANGED,
        flow_id=flow,
        deal_id="DEAL-7",
        payload={"from": "active", "to": "paused", "reason": "paused at the seller"},
    )
    event_emit(EventType.PACING_REALLOCATION_EXPIRED, flow_id=flow, payload={"reason": "lapsed undecided"})

    content = buyer.get(reverse("events:feed")).content.decode()

    for text in (
        "Pacing deviation",
        "deal DEAL-7 · critical, under 32.5 % (opened)",
        "Pacing alert resolved",
        "channel CTV · resolved (now on track)",
        "$1,500.00 Branding → CTV by ada",
        "DEAL-7: active → paused (paused at the seller)",
        "Reallocation lapsed",
        "lapsed undecided",
    ):
        assert text in content, text


def test_event_summaries_count_in_the_singular_and_say_who_approved():
    from buyer.events.views import event_summary

    def summary(kind, payload, deal_id=""):
        return event_summary(Event(event_type=kind, payload=payload, deal_id=deal_id))

    assert summary(EventType.BUDGET_ALLOCATED, {"allocations": {"ctv": {}}}) == "1 channel"
    assert summary(EventType.RESEARCH_COMPLETED, {"quoted": 1, "selected": 1}) == "1 quote, 1 selected"
    auto = {"product_ids": ["a", "b"], "total_cost": "100", "auto_approve": True}
    assert summary(EventType.APPROVAL_GRANTED, auto) == "2 lines, $100.00, automatically"
    assert summary(EventType.APPROVAL_GRANTED, {**auto, "actor": "ada"}) == "2 lines, $100.00 by ada"
    assert (
        summary(EventType.PACING_SNAPSHOT_TAKEN, {"campaigns": 1, "alerts_opened": 0}) == "1 campaign, 0 alerts opened"
    )
    held = {"seller": "Sandbox", "reason": "the seller booked deal D-1 at 120 impressions (approved 100)"}
    assert summary(EventType.DEAL_PRICE_MISMATCH, held, deal_id="D-1").startswith("D-1 · Sandbox: the seller booked")


def test_a_held_deal_shows_why_and_a_person_accepts_or_refuses_it(buyer):
    held = deal(1, status=DealStatus.BOOKING, flag="the seller booked deal DEAL-0001 at 2,400,000 impressions")
    other = deal(2, status=DealStatus.BOOKING, flag="the seller booked deal DEAL-0002 at $18.00 CPM")
    page = buyer.get(reverse("campaigns:deal_detail", args=[held.pk])).content.decode()
    assert 'id="deal-held"' in page and "2,400,000 impressions" in page and 'value="accept"' in page

    accepted = buyer.post(reverse("campaigns:deal_decide", args=[held.pk]), {"decision": "accept"}, follow=True)
    refused = buyer.post(
        reverse("campaigns:deal_decide", args=[other.pk]), {"decision": "refuse", "note": "asked"}, follow=True
    )

    held.refresh_from_db(), other.refresh_from_db()
    assert (held.status, other.status) == (DealStatus.BOOKED, DealStatus.FAILED)
    assert "accepted as booked" in accepted.content.decode() and 'id="deal-held"' not in accepted.content.decode()
    refused_page = refused.content.decode()
    assert "cancel it" in refused_page and 'id="deal-to-cancel"' in refused_page and 'value="cancelled"' in refused_page
    again = buyer.post(reverse("campaigns:deal_decide", args=[held.pk]), {"decision": "refuse"}, follow=True)
    text = again.content.decode()
    assert "Nothing was changed" in text and "only a deal held for a decision" in text
    assert buyer.post(reverse("campaigns:deal_decide", args=[999_999]), {"decision": "accept"}).status_code == 404

    # The deals list finds what needs the buyer: the refused deal, to cancel with the seller.
    listed = buyer.get(reverse("campaigns:deals"), {"needs": "cancellation"}).content.decode()
    assert "DEAL-0002" in listed and "DEAL-0001" not in listed and "to cancel with the seller" in listed
    cancelled = buyer.post(reverse("campaigns:deal_decide", args=[other.pk]), {"decision": "cancelled"}, follow=True)
    other.refresh_from_db()
    assert other.status == DealStatus.CANCELLED and "its money is released" in cancelled.content.decode()
    assert "DEAL-0002" not in buyer.get(reverse("campaigns:deals"), {"needs": "cancellation"}).content.decode()


def test_the_deal_page_reconciles_quoted_negotiated_booked_and_delivered_prices(buyer):
    from django.utils import timezone

    from pacing.models import DealDelivery

    flagged = deal(1, cpm_micros=15_000_000)
    line = flagged.recommendation
    line.quoted_cpm_micros, line.cpm_micros, line.negotiation_status = 15_000_000, 12_750_000, "agreed"
    line.save()
    DealDelivery.objects.create(
        deal=flagged, impressions=10_000, spend_micros=150_000_000, as_of=timezone.now(), checked_at=timezone.now()
    )
    page = buyer.get(reverse("campaigns:deal_detail", args=[flagged.pk])).content.decode()
    prices = page.split('id="deal-prices"', 1)[1].split("</section>", 1)[0]
    assert "$12.75 CPM" in prices and "$15.00 CPM" in prices
    assert "Booked at $15.00 CPM, above the negotiated $12.75: check it with the seller." in prices
    fine = buyer.get(reverse("campaigns:deal_detail", args=[deal(2, cpm_micros=10_000_000).pk])).content.decode()
    assert 'id="prices-agree"' in fine


def test_events_name_products_and_jobs_where_names_exist(buyer):
    from buyer.events.services import event_emit
    from tests.factories import BookingJobFactory

    job = BookingJobFactory(campaign__name="Spring CTV push")
    event_emit(
        EventType.QUOTE_RECEIVED,
        flow_id=str(job.pk),
        payload={"seller": "Acme", "product_id": "prod-94c2e9c1", "product": "Run of site", "final_cpm": "6.18"},
    )
    feed = buyer.get(reverse("events:feed")).content.decode()
    assert "Acme · Run of site at $6.18 CPM" in feed and "prod-94c2e9c1 at" not in feed
    assert ">Spring CTV push</a>" in feed


def test_the_deal_page_explains_the_sellers_words_and_reads_openrtb_in_dollars(buyer):
    shown = deal(
        7,
        seller_status="proposed",
        openrtb_params={"id": "DEAL-0007", "bidfloor": {"amount_micros": 12_500_000, "currency": "USD"}, "at": 3},
    )
    page = buyer.get(reverse("campaigns:deal_detail", args=[shown.pk])).content.decode()
    assert 'proposed <span class="muted">— the seller issued the deal' in page
    readable = page.split('id="openrtb-readable"', 1)[1].split("</dl>", 1)[0]
    assert "$12.50 CPM USD" in readable and "fixed price" in readable and "amount_micros" not in readable
