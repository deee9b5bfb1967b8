"""AdCP 3.2's compact lifecycle: the sandbox's versioned offer feed (``list_products``) and direct purchases
(``buy_products``), and the buyer's client using them where a seller advertises them — at the feed versions it
listed, never at terms that changed since."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from adcp.negotiation import verify_terms_digest
from adcp.types import BuyProductsRequest, GetAdcpCapabilitiesRequest, ListProductsRequest

from buyer.sellers.adcp_client import OrderTerms, SellerAdcpClient, decode_quote_id, encode_quote_id
from buyer.sellers.errors import SellerError, SellerTaskPending
from buyer.sellers.guard import counts_as_failure
from buyer.sellers.types import QuoteRequest

from ._support import ACCOUNT, iso, key

TOKEN = "buyer-token-3f9a1c77"


@pytest.fixture
def compact(make_seller):
    return make_seller(compact=True)


@pytest.fixture
def connect():
    clients = []

    def make(seller, **kw):
        client = SellerAdcpClient(seller.url, credential=TOKEN, brand_domain="acme.example", **kw)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def listing(seller, **fields):
    async def work(client):
        return await client.list_products(ListProductsRequest.model_validate(fields))

    result = seller.run(work)
    assert result.success, result.error
    return result.data.model_dump(mode="json", exclude_none=True)


def purchase(seller, feed, pricing, *purchases, idempotency_key=None):
    body = {
        "idempotency_key": idempotency_key or key(),
        "account": ACCOUNT,
        "feed_version": feed,
        "pricing_version": pricing,
        "start_time": iso(seller.clock.now),
        "end_time": iso(seller.clock.now + timedelta(days=10)),
        "purchases": list(purchases),
    }

    async def work(client):
        return await client.buy_products(BuyProductsRequest.model_validate(body))

    return seller.run(work)


def quote_request(seller, product_id, *, deal_type="PD", target=None):
    today = seller.clock.now.date()
    return QuoteRequest(
        idempotency_key="job:quote:adcp:" + product_id,
        product_id=product_id,
        deal_type=deal_type,
        impressions=100_000,
        flight_start=today,
        flight_end=today + timedelta(days=10),
        target_cpm=target,
    )


# --- the sandbox ------------------------------------------------------------------------------------------------


def test_only_a_compact_seller_advertises_the_lifecycle_tools(make_seller, compact):
    async def capabilities(client):
        return await client.get_adcp_capabilities(GetAdcpCapabilitiesRequest())

    tools = compact.run(capabilities).data.model_dump(mode="json")["media_buy"]["lifecycle_tools"]
    assert sorted(tools) == ["buy_products", "list_products"]
    baseline = make_seller().run(capabilities).data.model_dump(mode="json")["media_buy"]
    assert not baseline.get("lifecycle_tools")


def test_the_offer_feed_pages_keeps_its_versions_and_answers_unchanged_until_a_price_moves(compact):
    first = listing(compact, max_results=3)
    assert first["outcome"] == "listed" and len(first["products"]) == 3 and first["next_cursor"]
    rest = listing(compact, max_results=100, cursor=first["next_cursor"])
    ids = [p["product_id"] for p in first["products"] + rest["products"]]
    assert len(ids) == len(set(ids)) == len(compact.state.catalog.products)
    assert (rest["feed_version"], rest["pricing_version"]) == (first["feed_version"], first["pricing_version"])
    same = listing(compact, if_feed_version=first["feed_version"], if_pricing_version=first["pricing_version"])
    assert same["outcome"] == "unchanged" and not same.get("products")
    only = listing(compact, criteria={"product_ids": ["news-run-of-site"]})
    assert [p["product_id"] for p in only["products"]] == ["news-run-of-site"]

    moved = compact.control(
        "/_sandbox/products/news-homepage-display/reprice", {"pricing_option_id": "cpm-fixed", "fixed_price": 21}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["feed_version"] != first["feed_version"]
    again = listing(compact, if_feed_version=first["feed_version"], if_pricing_version=first["pricing_version"])
    assert again["outcome"] == "listed"
    [homepage] = [p for p in again["products"] if p["product_id"] == "news-homepage-display"]
    assert homepage["pricing_options"][0]["fixed_price"] == 21.0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"pricing_option_id": "cpm-fixed"},
        {"pricing_option_id": "cpm-fixed", "fixed_price": -1},
        {"pricing_option_id": "cpm-fixed", "fixed_price": "x"},
        {"pricing_option_id": "cpm-fixed", "fixed_price": 2, "floor_price": 1},
    ],
)
def test_a_reprice_without_one_positive_price_is_refused(compact, body):
    assert compact.control("/_sandbox/products/news-homepage-display/reprice", body).status_code == 400
    missing = compact.control("/_sandbox/products/nope/reprice", {"pricing_option_id": "x", "fixed_price": 2})
    assert missing.status_code == 404


def test_a_purchase_books_one_buy_per_key_with_an_accepted_snapshot_that_matches_its_digest(compact):
    feed = listing(compact)
    bought = {"product_id": "news-homepage-display", "pricing_option_id": "cpm-fixed", "budget": 1800.0}
    same_key = key()
    result = purchase(compact, feed["feed_version"], feed["pricing_version"], bought, idempotency_key=same_key)
    assert result.success, result.error
    data = result.data.model_dump(mode="json", exclude_none=True)
    proposal = data["accepted_proposal"]
    assert verify_terms_digest(proposal)
    assert proposal["commercial_terms"]["source_feed_version"] == feed["feed_version"]
    assert proposal["commercial_terms"]["purchases"][0]["pricing"]["fixed_price"] == 18.0
    assert data["purchase_bindings"] == [
        {"purchase_index": 0, "product_id": "news-homepage-display", "package_id": f"{data['media_buy_id']}-pkg-1"}
    ]
    again = purchase(compact, feed["feed_version"], feed["pricing_version"], bought, idempotency_key=same_key)
    assert again.data.media_buy_id == data["media_buy_id"] and len(compact.state.media_buys) == 1


def test_a_purchase_naming_a_stale_feed_is_refused_and_buys_nothing(compact):
    feed = listing(compact)
    compact.control(
        "/_sandbox/products/news-homepage-display/reprice", {"pricing_option_id": "cpm-fixed", "fixed_price": 25}
    )
    bought = {"product_id": "news-homepage-display", "pricing_option_id": "cpm-fixed", "budget": 1800.0}
    result = purchase(compact, feed["feed_version"], feed["pricing_version"], bought)
    assert not result.success and result.adcp_error["code"] == "CONFLICT"
    assert not compact.state.media_buys


# --- the buyer's client -----------------------------------------------------------------------------------------


def test_the_client_lists_the_offer_feed_and_reads_it_again_only_when_it_changed(compact, connect):
    client = connect(compact)
    first = client.list_products(brief="sports fans")  # a brief does not narrow the feed
    assert len(first) == len(compact.state.catalog.products)
    versions = {(p.raw["feed_version"], p.raw["pricing_version"]) for p in first}
    assert versions == {compact.state.feed_versions()}
    second = client.list_products()
    assert second[0] is first[0]  # "unchanged": the products read last time stand
    compact.state.reprice("news-homepage-display", "cpm-fixed", fixed=Decimal("19"), floor=None)
    third = client.list_products()
    assert third[0] is not first[0]
    assert {p.raw["feed_version"] for p in third} == {compact.state.feed_versions()[0]}


def test_the_client_buys_a_listed_offer_with_buy_products_at_its_feed_versions_once_per_key(compact, connect):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    terms = decode_quote_id(quote.quote_id)
    assert (terms.feed_version, terms.pricing_version) == compact.state.feed_versions()
    deal = client.book_deal(idempotency_key="job-1:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    again = client.book_deal(idempotency_key="job-1:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert again.deal_id == deal.deal_id and list(compact.state.media_buys) == [deal.deal_id]
    buy = compact.state.media_buys[deal.deal_id]
    assert buy.order.kind == "buy_products"
    assert (deal.final_cpm, deal.impressions, deal.status) == (Decimal("18"), 100_000, "active")
    assert deal.raw["pricing"]["package_id"] == buy.packages[0].package_id
    assert buy.packages[0].budget == Decimal("1800")
    # Read back and cut like any AdCP deal.
    assert client.get_deal(deal.deal_id, quote_id=quote.quote_id).final_cpm == Decimal("18")
    change = client.set_budget(
        deal.deal_id,
        package_id=deal.raw["pricing"]["package_id"],
        budget=Decimal("900"),
        impressions=50_000,
        idempotency_key="cut-1-of-job-1",
    )
    assert change.budget == Decimal("900")


def test_a_floor_only_offer_is_bought_with_a_bid_at_most_the_ceiling(compact, connect):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-run-of-site", deal_type="PA", target=Decimal("3")))
    deal = client.book_deal(idempotency_key="job-2:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    package = compact.state.media_buys[deal.deal_id].packages[0]
    assert (package.bid, package.bid_field) == (Decimal("3"), "bidding.bid_amount")
    assert deal.final_cpm == Decimal("3")
    assert deal.raw["pricing"]["price_type"] == "floor_only" and deal.raw["pricing"]["bid_cpm"] == "3"


def test_an_offer_whose_price_moved_since_it_was_quoted_is_refused_never_bought_at_the_new_price(compact, connect):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    compact.state.reprice("news-homepage-display", "cpm-fixed", fixed=Decimal("30"), floor=None)
    with pytest.raises(SellerError) as refused:
        client.book_deal(idempotency_key="job-3:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert refused.value.code == "offer_changed"
    assert "its CPM went from $18.00 to $30.00" in str(refused.value) and "nothing was bought" in str(refused.value)
    assert not counts_as_failure(refused.value) and not refused.value.retryable
    assert not compact.state.media_buys


def test_a_purchase_taken_for_review_is_followed_by_its_task_to_the_deal(make_seller, connect):
    seller = make_seller(compact=True, approval_delay=600)
    client = connect(seller)
    quote = client.request_quote(quote_request(seller, "news-homepage-display", deal_type="PG"))
    with pytest.raises(SellerTaskPending) as pending:
        client.book_deal(idempotency_key="job-4:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert seller.state.tasks[pending.value.task_id].task_type == "buy_products"
    seller.clock.advance(seconds=601)
    done = client.task_status(pending.value.task_id, quote_id=quote.quote_id)
    assert done.status == "completed"
    assert done.deal.deal_id in seller.state.media_buys and done.deal.final_cpm == Decimal("18")
    assert done.deal.raw["pricing"]["package_id"] == seller.state.media_buys[done.deal.deal_id].packages[0].package_id


def test_a_snapshot_failing_its_digest_is_read_back_from_the_sellers_record_never_dropped(
    compact, connect, monkeypatch
):
    import adcp.negotiation

    monkeypatch.setattr(adcp.negotiation, "verify_terms_digest", lambda proposal: False)
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    deal = client.book_deal(idempotency_key="job-5:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert list(compact.state.media_buys) == [deal.deal_id]
    assert deal.final_cpm == Decimal("18") and deal.raw["media_buy"]["packages"]  # from get_media_buys


def test_a_3x_seller_is_still_bought_from_with_get_products_and_create_media_buy(make_seller, connect):
    seller = make_seller()
    client = connect(seller)
    assert client.lifecycle_tools() == frozenset()
    quote = client.request_quote(quote_request(seller, "news-homepage-display", deal_type="PG"))
    assert quote.quote_id.startswith("adcp1~") and decode_quote_id(quote.quote_id).feed_version is None
    deal = client.book_deal(idempotency_key="job-6:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert seller.state.media_buys[deal.deal_id].order.kind == "create_media_buy"


def test_feed_versions_that_do_not_fit_a_quote_id_leave_it_to_create_media_buy():
    base = dict(
        product_id="p~1",
        pricing_option_id="cpm-fixed",
        impressions=1000,
        cpm=Decimal("2.5"),
        bid=False,
        deal_type="PD",
        flight_start=date(2030, 1, 1),
        flight_end=date(2030, 1, 31),
    )
    fits = OrderTerms(**base, feed_version="feed-1", pricing_version="pricing-1")
    assert decode_quote_id(encode_quote_id(fits)) == fits
    unversioned = OrderTerms(**base, feed_version="feed-1")
    assert decode_quote_id(encode_quote_id(unversioned)) == unversioned
    for feed in ("x" * 300, "has~sep"):
        quote_id = encode_quote_id(OrderTerms(**base, feed_version=feed))
        assert quote_id.startswith("adcp1~") and decode_quote_id(quote_id).feed_version is None


def test_an_offer_unchanged_while_another_price_moved_is_bought_at_the_new_feed_once(compact, connect):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    compact.state.reprice("news-run-of-site", "cpm-auction", fixed=None, floor=Decimal("2.75"))
    key_ = "job-7:deal:1:" + quote.quote_id
    deal = client.book_deal(idempotency_key=key_, quote_id=quote.quote_id)
    buy = compact.state.media_buys[deal.deal_id]
    assert buy.order.feed_version == compact.state.feed_versions()[0] != decode_quote_id(quote.quote_id).feed_version
    assert deal.final_cpm == Decimal("18")
    # A restarted booking step sends the same two calls: the first is refused again, the second replays.
    again = SellerAdcpClient(compact.url, credential=TOKEN, brand_domain="acme.example")
    try:
        assert again.book_deal(idempotency_key=key_, quote_id=quote.quote_id).deal_id == deal.deal_id
    finally:
        again.close()
    assert list(compact.state.media_buys) == [deal.deal_id]
    # A price set back publishes a new version, never the one the first key named.
    compact.state.reprice("news-run-of-site", "cpm-auction", fixed=None, floor=Decimal("2.5"))
    assert compact.state.feed_versions()[0] != decode_quote_id(quote.quote_id).feed_version


# --- AdCP 3.0/3.1 sellers naming formats of their own creative agent ---------------------------------------------


def test_products_naming_the_sellers_own_formats_are_read_with_list_creative_formats_and_bought(make_seller, connect):
    seller = make_seller(legacy_formats=True)
    client = connect(seller)
    products = {p.product_id: p for p in client.list_products()}
    # Without the seller's format definitions the library could not read a single one of them.
    assert set(products) == {p.product_id for p in seller.state.catalog.products}
    assert products["video-preroll"].ad_formats == ("video",)
    assert "banner" in products["news-homepage-display"].ad_formats
    assert products["audio-streaming"].ad_formats == ("audio",)
    quote = client.request_quote(quote_request(seller, "news-homepage-display", deal_type="PG"))
    deal = client.book_deal(idempotency_key="job-8:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert deal.deal_id in seller.state.media_buys and deal.final_cpm == Decimal("18")


def test_a_seller_whose_formats_cannot_be_read_leaves_its_products_unread_and_research_goes_on(
    make_seller, connect, monkeypatch
):
    from buyer.sandbox_adcp.handler import SandboxAdcpHandler

    async def broken(self, params, context=None):
        raise RuntimeError("formats store down")

    monkeypatch.setattr(SandboxAdcpHandler, "list_creative_formats_legacy", broken)
    seller = make_seller(legacy_formats=True)
    client = connect(seller)
    assert client.list_products() == []
    assert client.list_products() == []  # asked once per client, not on every research


@pytest.mark.parametrize(
    ("product_id", "deal_type", "target", "fixed", "floor", "said"),
    [
        ("news-homepage-display", "PG", None, None, Decimal("20"), "its CPM went from $18.00 to a floor of $20.00"),
        (
            "news-run-of-site",
            "PA",
            Decimal("3"),
            None,
            Decimal("3.5"),
            "its floor is now $3.50, above our bid of $3.00",
        ),
        ("news-run-of-site", "PA", Decimal("3"), Decimal("2"), None, "it now has a fixed CPM of $2.00 instead of"),
    ],
)
def test_a_changed_offer_says_what_changed(compact, connect, product_id, deal_type, target, fixed, floor, said):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, product_id, deal_type=deal_type, target=target))
    option = decode_quote_id(quote.quote_id).pricing_option_id
    compact.state.reprice(product_id, option, fixed=fixed, floor=floor)
    with pytest.raises(SellerError) as refused:
        client.book_deal(idempotency_key="job-9:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert refused.value.code == "offer_changed" and said in str(refused.value)
    assert not compact.state.media_buys


def test_the_task_an_offer_is_bought_with_is_decided_by_its_quote_not_by_a_later_capabilities_read(
    compact, connect, monkeypatch
):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    # Capabilities unreadable when the booking step runs (a restarted worker, a seller hiccup): the line listed
    # from the offer feed is still bought with buy_products, never also with create_media_buy under its key.
    monkeypatch.setattr(SellerAdcpClient, "lifecycle_tools", lambda self: frozenset())
    deal = client.book_deal(idempotency_key="job-10:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert compact.state.media_buys[deal.deal_id].order.kind == "buy_products"


def test_a_seller_listing_offers_without_buy_products_is_bought_from_with_create_media_buy(
    compact, connect, monkeypatch
):
    monkeypatch.setattr(SellerAdcpClient, "lifecycle_tools", lambda self: frozenset({"list_products"}))
    client = connect(compact)
    assert client.list_products()[0].raw["feed_version"]
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    assert quote.quote_id.startswith("adcp1~")
    deal = client.book_deal(idempotency_key="job-11:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert compact.state.media_buys[deal.deal_id].order.kind == "create_media_buy"


def test_a_lost_answer_then_another_feed_change_never_makes_a_second_buy(compact, connect):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    compact.state.reprice("news-run-of-site", "cpm-auction", fixed=None, floor=Decimal("2.75"))
    key_ = "job-12:deal:1:" + quote.quote_id
    deal = client.book_deal(idempotency_key=key_, quote_id=quote.quote_id)  # its answer "lost"
    compact.state.reprice("news-run-of-site", "cpm-auction", fixed=None, floor=Decimal("2.8"))
    again = connect(compact)
    with pytest.raises(SellerError) as conflict:
        again.book_deal(idempotency_key=key_, quote_id=quote.quote_id)
    assert conflict.value.code == "idempotency_conflict" and not conflict.value.retryable
    assert list(compact.state.media_buys) == [deal.deal_id]  # one buy, whatever the attempts named


def test_a_conflict_while_the_feed_is_unchanged_is_retried_under_the_same_key_not_bought_again(
    compact, connect, monkeypatch
):
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))

    def busy(self, terms, quote_id, **kw):
        raise SellerError("buy_products: still working on it", status=400, code="conflict")

    monkeypatch.setattr(SellerAdcpClient, "_purchase", busy)
    with pytest.raises(SellerError) as conflict:
        client.book_deal(idempotency_key="job-13:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert conflict.value.code == "conflict" and conflict.value.retryable
    assert "has not changed" in conflict.value.message and not compact.state.media_buys


def test_a_purchase_answer_that_cannot_be_read_is_read_back_from_the_seller_never_dropped(
    compact, connect, monkeypatch
):
    import buyer.sellers.adcp_client as module

    def unreadable(data):
        raise SellerError("buy_products: a binding names no purchase", code="invalid_response")

    monkeypatch.setattr(module, "purchased", unreadable)
    client = connect(compact)
    quote = client.request_quote(quote_request(compact, "news-homepage-display", deal_type="PG"))
    deal = client.book_deal(idempotency_key="job-14:deal:1:" + quote.quote_id, quote_id=quote.quote_id)
    assert list(compact.state.media_buys) == [deal.deal_id] and deal.final_cpm == Decimal("18")


def _offer(product_id):
    return {
        "product_id": product_id,
        "name": product_id,
        "pricing_options": [
            {"pricing_option_id": "cpm", "pricing_model": "cpm", "currency": "USD", "fixed_price": 5.0}
        ],
    }


@pytest.mark.parametrize(
    "pages",
    [
        # cursors cycling A → B → A
        {None: ["p1"], "A": ["p2"], "B": ["p3"]},
        # ever-new cursors on pages that add nothing new
        {None: ["p1"], **{f"c{i}": ["p1"] for i in range(500)}},
    ],
)
def test_a_feed_whose_cursors_never_end_is_read_once_not_for_ever(monkeypatch, pages):
    calls = []

    def data(self, name, call):
        class Fake:
            def list_products(self, request):
                return request

        request = call(Fake())
        cursor = request.cursor
        calls.append(cursor)
        nxt = {None: "A", "A": "B", "B": "A"}.get(cursor) if "A" in pages else f"c{len(calls)}"
        return {
            "outcome": "listed",
            "products": [_offer(p) for p in pages[cursor]],
            "feed_version": "f1",
            "cache_scope": "public",
            "next_cursor": nxt,
        }

    monkeypatch.setattr(SellerAdcpClient, "_data", data)
    monkeypatch.setattr(SellerAdcpClient, "lifecycle_tools", lambda self: frozenset({"list_products"}))
    client = SellerAdcpClient("http://127.0.0.1:9", credential=TOKEN)
    products = client.list_products()
    assert len(calls) <= 4 and {p.product_id for p in products} <= {"p1", "p2", "p3"}
