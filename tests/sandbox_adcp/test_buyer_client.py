"""The buyer's AdCP client (``buyer.sellers.adcp_client``) against the sandbox AdCP seller over real HTTP:
products in the buyer's terms, the buyer's own quotes (fixed price or a bid over a floor), idempotent buys,
asynchronous orders, delivery, and every failure as a ``SellerError``."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest

from buyer.sellers.adcp_client import SellerAdcpClient, decode_quote_id
from buyer.sellers.errors import SellerError, SellerTaskPending
from buyer.sellers.guard import counts_as_failure
from buyer.sellers.types import QuoteRequest

TOKEN = "buyer-token-3f9a1c77"


@pytest.fixture
def connect():
    clients = []

    def make(seller, **kw):
        kw.setdefault("credential", TOKEN)
        client = SellerAdcpClient(seller.url, brand_domain="acme.example", **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def quote_request(seller, product_id, *, deal_type="PD", impressions=100_000, target=None, days=10):
    today = seller.clock.now.date()
    return QuoteRequest(
        idempotency_key="job:quote:adcp:" + product_id,
        product_id=product_id,
        deal_type=deal_type,
        impressions=impressions,
        flight_start=today,
        flight_end=today + timedelta(days=days),
        target_cpm=target,
    )


def test_products_are_priced_by_one_option_each_in_the_buyers_terms(seller, connect):
    products = {p.product_id: p for p in connect(seller).list_products()}
    fixed = products["news-homepage-display"]
    assert (fixed.pricing_model, fixed.base_cpm, fixed.floor_cpm) == ("cpm", Decimal("18"), None)
    assert (fixed.inventory_type, fixed.deal_types, fixed.delivery_type) == ("display", ("PG",), "guaranteed")
    assert fixed.publisher_domain == "sandbox-news.example" and "banner" in fixed.ad_formats
    # Floor-only: the floor is the only price the seller names; it is kept as a floor.
    auction = products["news-run-of-site"]
    assert (auction.base_cpm, auction.floor_cpm, auction.deal_types) == (Decimal("2.5"), Decimal("2.5"), ("PA",))
    # A CPM option is preferred over another model; without one, the product keeps its own model (and price).
    assert products["video-preroll"].pricing_model == "cpm" and products["video-preroll"].inventory_type == "video"
    assert products["news-viewable-display"].pricing_model == "vcpm"
    assert products["news-homepage-takeover"].pricing_model == "flat_rate"
    # A minimum spend becomes the impressions it buys at the price.
    assert products["ctv-premium-streaming"].minimum_impressions == 142_858


def test_a_fixed_price_is_quoted_as_the_seller_states_it(seller, connect):
    quote = connect(seller).request_quote(quote_request(seller, "news-homepage-display", deal_type="PG"))
    assert (quote.status, quote.final_cpm, quote.base_cpm) == ("available", Decimal("18"), Decimal("18"))
    assert quote.raw["pricing"] == {
        "pricing_model": "cpm",
        "pricing_option_id": "cpm-fixed",
        "price_type": "fixed",
        "fixed_cpm": "18.000000",
    }
    terms = decode_quote_id(quote.quote_id)
    assert (terms.product_id, terms.impressions, terms.cpm, terms.bid, terms.deal_type) == (
        "news-homepage-display",
        100_000,
        Decimal("18"),
        False,
        "PG",
    )


@pytest.mark.parametrize(
    ("target", "bid"),
    [(None, Decimal("2.5")), (Decimal("3.10"), Decimal("3.10")), (Decimal("2.5"), Decimal("2.5"))],
)
def test_a_floor_only_price_becomes_a_bid_at_least_the_floor_and_at_most_the_ceiling(seller, connect, target, bid):
    quote = connect(seller).request_quote(quote_request(seller, "news-run-of-site", deal_type="PA", target=target))
    assert quote.final_cpm == bid and quote.base_cpm == Decimal("2.5")
    assert quote.raw["pricing"]["price_type"] == "floor_only"
    assert Decimal(quote.raw["pricing"]["floor_cpm"]) == Decimal("2.5")
    assert Decimal(quote.raw["pricing"]["bid_cpm"]) == bid
    assert "floor" in quote.rationale


def test_a_floor_above_the_ceiling_is_refused_not_priced(seller, connect):
    with pytest.raises(SellerError) as refused:
        connect(seller).request_quote(quote_request(seller, "news-run-of-site", target=Decimal("2.49")))
    assert refused.value.code == "below_floor" and not counts_as_failure(refused.value)


def test_other_pricing_models_and_unknown_products_are_refused(seller, connect):
    client = connect(seller)
    with pytest.raises(SellerError) as vcpm:
        client.request_quote(quote_request(seller, "news-viewable-display"))
    assert vcpm.value.code == "unpriced" and "vcpm" in vcpm.value.message
    with pytest.raises(SellerError) as unknown:
        client.request_quote(quote_request(seller, "no-such-product"))
    assert unknown.value.code == "product_not_found"


def test_a_buy_is_booked_read_back_and_replayed_under_the_same_key(seller, connect):
    client = connect(seller)
    quote = client.request_quote(quote_request(seller, "news-run-of-site", deal_type="PA", target=Decimal("3")))
    deal = client.book_deal(idempotency_key="job-1:deal:7:" + quote.quote_id, quote_id=quote.quote_id)
    again = client.book_deal(idempotency_key="job-1:deal:7:" + quote.quote_id, quote_id=quote.quote_id)
    assert again.deal_id == deal.deal_id and len(seller.state.media_buys) == 1
    [package] = seller.state.media_buys[deal.deal_id].packages
    assert (package.bid, package.budget, package.pacing) == (Decimal("3"), Decimal("300"), "even")
    assert (deal.final_cpm, deal.impressions, deal.deal_type, deal.status) == (Decimal("3"), 100_000, "PA", "active")
    read = client.get_deal(deal.deal_id, quote_id=quote.quote_id)
    assert (read.deal_id, read.final_cpm, read.impressions) == (deal.deal_id, Decimal("3"), 100_000)
    with pytest.raises(SellerError) as missing:
        client.get_deal("mb-99999")
    assert missing.value.code == "deal_not_found"


def test_a_budget_is_cut_with_update_media_buy_once_per_key_and_never_below_spend(seller, connect):
    client = connect(seller)
    quote = client.request_quote(quote_request(seller, "news-run-of-site", deal_type="PA", target=Decimal("3")))
    deal = client.book_deal(idempotency_key="job-9:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    package_id = deal.raw["pricing"]["package_id"]
    change = client.set_budget(
        deal.deal_id, package_id=package_id, budget=Decimal("120"), impressions=40_000, idempotency_key="cut-1-of-job-9"
    )
    assert (change.deal_id, change.package_id, change.budget) == (deal.deal_id, package_id, Decimal("120"))
    buy = seller.state.media_buys[deal.deal_id]
    revision = buy.revision
    assert buy.packages[0].budget == Decimal("120")
    again = client.set_budget(
        deal.deal_id, package_id=package_id, budget=Decimal("120"), impressions=40_000, idempotency_key="cut-1-of-job-9"
    )
    assert again.budget == Decimal("120") and buy.revision == revision  # replayed, not applied twice
    assert client.budget_of(deal.deal_id, package_id=package_id).budget == Decimal("120")
    # Once the package has spent more than the new budget, the seller refuses it: a refusal, not a fault.
    seller.clock.advance(days=9, hours=12)
    with pytest.raises(SellerError) as low:
        client.set_budget(
            deal.deal_id, package_id=package_id, budget=Decimal("1"), impressions=300, idempotency_key="cut-2-of-job-9"
        )
    assert low.value.code == "budget_too_low" and not counts_as_failure(low.value)
    assert buy.packages[0].budget == Decimal("120")
    with pytest.raises(SellerError) as missing:
        client.budget_of(deal.deal_id, package_id="pkg-nope")
    assert missing.value.code == "deal_not_found"


def test_an_order_taken_for_review_is_a_pending_task_followed_to_its_deal(make_seller, connect):
    seller = make_seller(approval_delay=600)
    client = connect(seller)
    quote = client.request_quote(quote_request(seller, "news-homepage-display", deal_type="PG"))
    with pytest.raises(SellerTaskPending) as pending:
        client.book_deal(idempotency_key="job-2:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    task_id = pending.value.task_id
    assert pending.value.task_status == "submitted" and pending.value.status is None
    assert not counts_as_failure(pending.value)
    seller.clock.advance(seconds=1)
    assert client.task_status(task_id, quote_id=quote.quote_id).status == "working"
    seller.clock.advance(seconds=600)
    done = client.task_status(task_id, quote_id=quote.quote_id)
    assert done.status == "completed" and not done.pending
    assert done.deal.deal_id in seller.state.media_buys and done.deal.final_cpm == Decimal("18")


def test_a_rejected_order_says_why(make_seller, connect):
    seller = make_seller(approval_delay=600)
    client = connect(seller)
    quote = client.request_quote(quote_request(seller, "news-homepage-display"))
    with pytest.raises(SellerTaskPending) as pending:
        client.book_deal(idempotency_key="job-3:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    seller.control(f"/_sandbox/tasks/{pending.value.task_id}/reject", {"reason": "Category not accepted"})
    state = client.task_status(pending.value.task_id, quote_id=quote.quote_id)
    assert (state.status, state.deal) == ("rejected", None) and "Category not accepted" in state.message
    assert state.error_code == "POLICY_VIOLATION"


def test_delivery_is_the_media_buys_totals(seller, connect):
    client = connect(seller)
    quote = client.request_quote(quote_request(seller, "news-homepage-display"))
    deal = client.book_deal(idempotency_key="job-4:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    seller.clock.advance(days=2)
    reading = client.deal_performance(deal.deal_id)
    delivered = seller.state.media_buys[deal.deal_id].packages[0].metrics(seller.clock.now)
    assert reading.impressions_delivered == delivered.impressions > 0
    assert reading.spend == delivered.spend.quantize(Decimal("0.01"))
    assert reading.as_of == seller.clock.now


def test_answers_that_fail_the_schema_are_invalid_responses_counted_by_the_breaker(make_seller, connect):
    seller = make_seller(malformed=True)
    with pytest.raises(SellerError) as bad:
        connect(seller).list_products()
    assert bad.value.code == "invalid_response" and counts_as_failure(bad.value)


def test_a_seller_slower_than_the_timeout_is_a_retryable_timeout(make_seller, connect):
    seller = make_seller(latency_ms=3000)
    with pytest.raises(SellerError) as slow:
        connect(seller, timeout=0.5).list_products()
    assert slow.value.retryable and counts_as_failure(slow.value)


def test_an_unreachable_seller_is_a_connection_error_and_health_says_no(connect):
    from tests.sandbox_adcp._support import Clock, Seller

    gone = Seller(app=None, url="http://127.0.0.1:9", clock=Clock())
    client = connect(gone, timeout=2)
    assert client.health() is False
    with pytest.raises(SellerError) as unreachable:
        client.list_products()
    assert unreachable.value.retryable and counts_as_failure(unreachable.value)
    assert TOKEN not in str(unreachable.value) and TOKEN not in repr(client)


def test_health_is_the_agents_capabilities(seller, connect):
    assert connect(seller).health() is True


def test_the_web_process_never_imports_the_adcp_client():
    # Importing it costs seconds and hundreds of MiB: only workers that talk to an AdCP seller pay it.
    code = (
        "import django, os, sys; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'buyer.settings'); django.setup();"
        "from django.urls import resolve; import buyer.urls, buyer.asgi, campaigns.tasks, pacing.tasks;"
        "resolve('/app/'); print(sorted(m for m in sys.modules if m == 'adcp.client' or m.startswith('adcp.types.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_brief_ranks_the_agents_products_and_they_price_quotes_like_the_wholesale_catalog(seller, connect):
    client = connect(seller)
    products = client.list_products(brief="Premium CTV streaming for cord cutters, video completion")
    assert products[0].product_id == "ctv-premium-streaming"
    assert "Matches the brief" in products[0].raw["brief_relevance"]
    # No second catalog read: the quote is priced from the products the brief answered.
    quote = client.request_quote(quote_request(seller, "ctv-premium-streaming", deal_type="PG", impressions=200_000))
    assert quote.final_cpm == Decimal("35")
