"""SellerRestClient against the captured seller responses: what it sends, what it parses."""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from buyer.sellers.client import SellerRestClient
from buyer.sellers.errors import SellerError
from buyer.sellers.types import BuyerIdentity, QuoteRequest

SECRET = "sk-live-7f3a9c1e5b2d4a6f8e0c"


def _quote_request(**overrides: object) -> QuoteRequest:
    fields: dict[str, object] = {
        "idempotency_key": "job-1:rec-2:quote",
        "product_id": "prod-53e78a97",
        "deal_type": "PG",
        "impressions": 2_000_000,
        "flight_start": date(2026, 12, 1),
        "flight_end": date(2026, 12, 31),
    }
    fields.update(overrides)
    return QuoteRequest(**fields)  # type: ignore[arg-type]


def _products_page(samples, start: int, stop: int, *, total: int | None = 13) -> httpx.Response:
    products = samples["products.json"].json()["products"][start:stop]
    body: dict[str, object] = {"products": products, "limit": stop - start, "offset": start}
    if total is not None:
        body["total_count"] = total
    return httpx.Response(200, json=body)


# -- catalog ---------------------------------------------------------------------------------------


def test_it_parses_the_captured_catalog_with_exact_prices(make_client, samples):
    client, recorder = make_client(samples["products.json"])

    products = client.list_products()

    assert len(products) == 13
    assert recorder.requests[0].url.params == httpx.QueryParams({"limit": "100", "offset": "0"})
    by_id = {p.product_id: p for p in products}
    display = by_id["prod-91ddc363"]
    assert display.name == "Premium Display - Homepage"
    assert display.base_cpm == Decimal("15.000000")
    assert isinstance(display.base_cpm, Decimal)
    assert display.floor_cpm == Decimal("10.0")
    assert display.inventory_type == "display"
    assert display.deal_types == ("PG", "PD")
    assert display.available_impressions == 5_000_000
    assert display.minimum_impressions == 10_000
    assert display.raw["content_targeting"] == {"section": ["homepage"]}
    assert {p.inventory_type for p in products} == {
        "display",
        "video",
        "ctv",
        "mobile_app",
        "native",
        "linear_tv",
        "dooh",
    }


def test_it_keeps_price_on_request_products_unpriced(make_client, samples):
    client, _ = make_client(samples["products.json"])

    dooh = next(p for p in client.list_products() if p.inventory_type == "dooh")

    assert dooh.product_id == "prod-f114d7a7"
    assert dooh.base_cpm is None
    assert dooh.floor_cpm is None


def test_it_follows_limit_offset_paging_across_two_pages(make_client, samples):
    client, recorder = make_client(_products_page(samples, 0, 7), _products_page(samples, 7, 13))

    products = client.list_products(page_size=7)

    assert len(products) == 13
    assert [r.url.params["offset"] for r in recorder.requests] == ["0", "7"]
    assert [r.url.params["limit"] for r in recorder.requests] == ["7", "7"]


def test_it_stops_paging_on_an_empty_page_when_total_count_is_absent(make_client, samples):
    client, recorder = make_client(
        _products_page(samples, 0, 10, total=None),
        _products_page(samples, 10, 13, total=None),
        _products_page(samples, 13, 13, total=None),
    )

    assert len(client.list_products(page_size=10)) == 13
    assert len(recorder.requests) == 3


def test_it_stops_at_max_products(make_client, samples):
    client, recorder = make_client(_products_page(samples, 0, 5))

    products = client.list_products(page_size=100, max_products=5)

    assert len(products) == 5
    assert recorder.requests[0].url.params["limit"] == "5"


def test_it_stops_when_the_seller_ignores_offset(make_client, samples):
    client, recorder = make_client(_products_page(samples, 0, 5), _products_page(samples, 0, 5))

    assert len(client.list_products(page_size=5)) == 5
    assert len(recorder.requests) == 2


def test_it_skips_a_malformed_catalog_entry_but_keeps_the_rest(make_client, samples, caplog):
    products = samples["products.json"].json()["products"][:3]
    products[1] = {**products[1], "base_price": 8.0}  # a bare float where Money belongs
    client, _ = make_client(httpx.Response(200, json={"products": products, "total_count": 3}))

    with caplog.at_level(logging.WARNING, logger="buyer.sellers"):
        parsed = client.list_products()

    assert [p.product_id for p in parsed] == ["prod-91ddc363", "prod-15ba2543"]
    assert "skipped 1 malformed" in caplog.text


def test_it_gets_one_product(make_client, samples):
    client, recorder = make_client(samples["product_get.json"])

    product = client.get_product("prod-53e78a97")

    assert recorder.requests[0].url.path == "/products/prod-53e78a97"
    assert product.name == "CTV Premium Streaming"
    assert product.base_cpm == Decimal(35)
    assert product.floor_cpm == Decimal("28.0")
    assert product.ad_formats == ("ctv",)
    assert product.delivery_type == "Guaranteed"
    assert product.raw == samples["product_get.json"].json()


def test_it_quotes_identifiers_so_they_cannot_escape_their_path_segment(make_client):
    client, recorder = make_client(httpx.Response(404, json={"detail": "Product not found"}))

    with pytest.raises(SellerError):
        client.get_product("../auth/api-keys")
    assert recorder.requests[0].url.raw_path == b"/products/..%2Fauth%2Fapi-keys"

    with pytest.raises(ValueError):
        client.get_product("..")


# -- quote, book -----------------------------------------------------------------------------------


def test_it_requests_a_quote_with_money_target_cpm_and_iso_dates(make_client, samples):
    client, recorder = make_client(samples["quote_with_apikey.json"], credential=SECRET)
    identity = BuyerIdentity(seat_id="seat-1", advertiser_id="adv-9")

    quote = client.request_quote(_quote_request(target_cpm=Decimal("30.50"), buyer_identity=identity))

    assert recorder.bodies[0] == {
        "idempotency_key": "job-1:rec-2:quote",
        "product_id": "prod-53e78a97",
        "deal_type": "PG",
        "impressions": 2_000_000,
        "flight_start": "2026-12-01",
        "flight_end": "2026-12-31",
        "media_type": "digital",
        "target_cpm": {"amount_micros": 30_500_000, "currency": "USD"},
        "buyer_identity": {"seat_id": "seat-1", "advertiser_id": "adv-9"},
    }
    assert quote.quote_id == "qt-5ed5b2432458"
    assert quote.final_cpm == Decimal("29.75")
    assert quote.base_cpm == Decimal(35)
    assert quote.tier_discount_pct == Decimal(15)
    assert quote.volume_discount_pct == Decimal(0)
    assert quote.buyer_tier == "advertiser"
    assert quote.deal_type == "PG"
    assert quote.status == "available"
    assert quote.product_id == "prod-53e78a97"
    assert quote.impressions == 2_000_000
    assert (quote.flight_start, quote.flight_end) == (date(2026, 12, 1), date(2026, 12, 31))
    assert quote.guaranteed is True
    assert quote.expires_at == datetime(2026, 11, 24, 15, 11, 59, 588921, tzinfo=UTC)
    assert quote.expires_at.utcoffset().total_seconds() == 0
    assert quote.seller_id == "seller-premium-pub-001"
    assert "Advertiser tier" in quote.rationale


def test_it_sends_neither_identity_nor_target_cpm_when_absent(make_client, samples):
    client, recorder = make_client(samples["quote_pd.json"])

    quote = client.request_quote(_quote_request(product_id="prod-91ddc363", deal_type="PD", impressions=500_000))

    assert "buyer_identity" not in recorder.bodies[0]
    assert "target_cpm" not in recorder.bodies[0]
    assert quote.final_cpm == Decimal(15)
    assert quote.guaranteed is False


def test_it_drops_an_empty_buyer_identity(make_client, samples):
    client, recorder = make_client(samples["quote_pd.json"])

    client.request_quote(_quote_request(buyer_identity=BuyerIdentity()))

    assert "buyer_identity" not in recorder.bodies[0]


def test_it_refuses_a_float_price_before_sending(make_client):
    client, recorder = make_client()

    with pytest.raises(TypeError):
        client.request_quote(_quote_request(target_cpm=12.5))
    assert recorder.requests == []


def test_it_gets_a_quote(make_client, samples):
    client, recorder = make_client(samples["quote_get.json"])

    quote = client.get_quote("qt-ead80acf065f")

    assert recorder.requests[0].url.path == "/api/v1/quotes/qt-ead80acf065f"
    assert quote.quote_id == "qt-ead80acf065f"
    assert quote.raw["availability"]["inventory_available"] is True


def test_it_books_a_deal_from_a_quote(make_client, samples):
    client, recorder = make_client(samples["deal_book.json"])

    deal = client.book_deal(idempotency_key="job-1:rec-2:book", quote_id="qt-ead80acf065f", notes="Q4")

    assert recorder.bodies[0] == {
        "idempotency_key": "job-1:rec-2:book",
        "quote_id": "qt-ead80acf065f",
        "notes": "Q4",
    }
    assert deal.deal_id == "DEMO-B0412BC0DFFA"
    assert deal.status == "proposed"
    assert deal.quote_id == "qt-ead80acf065f"
    assert deal.product_id == "prod-91ddc363"
    assert deal.final_cpm == Decimal(15)
    assert deal.impressions == 500_000
    assert deal.expires_at == datetime(2026, 12, 23, 15, 11, 15, 82658, tzinfo=UTC)
    assert set(deal.activation_instructions) == {"ttd", "dv360", "xandr"}
    assert deal.openrtb_params["bidfloor"] == {"amount_micros": 15_000_000, "currency": "USD"}


def test_a_negotiated_deal_carries_the_agreed_price(make_client, samples):
    client, _ = make_client(samples["nego2_book.json"])

    deal = client.book_deal(
        idempotency_key="k", quote_id="qt-b5c86d3cecd6", buyer_identity=BuyerIdentity(agency_id="ag")
    )

    assert deal.final_cpm == Decimal(29)
    assert deal.raw["pricing"]["base_cpm"] == {"amount_micros": 35_000_000, "currency": "USD"}


def test_it_gets_a_deal(make_client, samples):
    client, recorder = make_client(samples["deal_get.json"])

    deal = client.get_deal("DEMO-B0412BC0DFFA")

    assert recorder.requests[0].url.path == "/api/v1/deals/DEMO-B0412BC0DFFA"
    assert deal.deal_type == "PD"
    assert deal.flight_end == date(2026, 12, 31)


def test_booking_a_booked_quote_again_is_a_409_quote_already_booked(make_client, samples):
    client, recorder = make_client(samples["deal_book_again_newkey.json"])

    with pytest.raises(SellerError) as caught:
        client.book_deal(idempotency_key="new-key", quote_id="qt-ead80acf065f")

    assert caught.value.status == 409
    assert caught.value.code == "quote_already_booked"
    assert caught.value.message == "Quote status is 'booked', expected 'available'."
    assert caught.value.retryable is False
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("name", "call", "status", "code"),
    [
        ("deal_book_badquote.json", "book", 404, "quote_not_found"),
        ("quote_bad_product.json", "quote", 404, "product_not_found"),
        ("quote_pg_noimps.json", "quote", 400, "pg_requires_impressions"),
    ],
)
def test_it_surfaces_the_sellers_error_code(make_client, samples, name, call, status, code):
    client, _ = make_client(samples[name])

    with pytest.raises(SellerError) as caught:
        if call == "book":
            client.book_deal(idempotency_key="k", quote_id="qt-nope")
        else:
            client.request_quote(_quote_request())

    assert (caught.value.status, caught.value.code) == (status, code)


def test_it_lists_the_fields_of_a_pydantic_422(make_client, samples):
    client, _ = make_client(samples["quote_legacy_float.json"])

    with pytest.raises(SellerError) as caught:
        client.request_quote(_quote_request())

    assert caught.value.status == 422
    assert caught.value.code == "validation_error"
    assert "body.target_cpm: Input should be a valid dictionary" in caught.value.message
    assert "body.idempotency_key: Field required" in caught.value.message
    assert "12.5" not in caught.value.message  # the echoed ``input`` is noise


# -- negotiation -----------------------------------------------------------------------------------


def test_it_opens_a_negotiation_by_quote(make_client, samples):
    client, recorder = make_client(samples["nego2_open.json"])

    rnd = client.negotiate(
        idempotency_key="k-m1", action="counter", quote_id="qt-b5c86d3cecd6", buyer_price=Decimal(25)
    )

    assert recorder.bodies[0] == {
        "idempotency_key": "k-m1",
        "action": "counter",
        "quote_id": "qt-b5c86d3cecd6",
        "buyer_price": {"amount_micros": 25_000_000, "currency": "USD"},
    }
    assert rnd.negotiation_id == "neg-ad8f2c38"
    assert rnd.status == "active"
    assert rnd.round_number == 1
    assert rnd.buyer_price == Decimal(25)
    assert rnd.seller_price == Decimal(28)
    assert rnd.action == "counter"
    assert rnd.rounds_remaining == 2
    assert "floor price" in rnd.rationale


def test_it_continues_a_negotiation_by_its_quote_id_only(make_client, samples):
    client, recorder = make_client(samples["nego2_round2_by_quote.json"])

    rnd = client.negotiate(
        idempotency_key="k-m2",
        action="counter",
        quote_id="qt-b5c86d3cecd6",
        buyer_price=Decimal(29),
        round_number=2,
        rationale="meet in the middle",
    )

    body = recorder.bodies[0]
    assert body["quote_id"] == "qt-b5c86d3cecd6"
    assert "negotiation_id" not in body  # the reference answers 404 "Proposal not found" to one
    assert body["round_number"] == 2
    assert body["rationale"] == "meet in the middle"
    assert rnd.status == "accepted"
    assert rnd.seller_price == Decimal(29)


def test_a_plain_text_detail_becomes_the_error_message(make_client, samples):
    client, recorder = make_client(samples["nego_round2.json"])

    with pytest.raises(SellerError) as caught:
        client.negotiate(idempotency_key="k", action="counter", quote_id="q", buyer_price=Decimal(10))

    assert caught.value.status == 404
    assert caught.value.code == "http_404"
    assert caught.value.message == "Proposal not found"
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("name", "status", "code", "fragment"),
    [
        ("nego2_after_accept.json", 400, "http_400", "Negotiation is accepted, cannot counter"),
        ("nego2_key_conflict.json", 409, "idempotency_conflict", "already used"),
        ("nego_missing_price.json", 422, "validation_error", "body: Value error, action 'counter'"),
    ],
)
def test_it_parses_negotiation_error_envelopes(make_client, samples, name, status, code, fragment):
    client, _ = make_client(samples[name])

    with pytest.raises(SellerError) as caught:
        client.negotiate(idempotency_key="k", action="accept", quote_id="q")

    assert (caught.value.status, caught.value.code) == (status, code)
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("action", "price"), [("counter", None), ("final_offer", None), ("reject", Decimal(1)), ("haggle", None)]
)
def test_it_refuses_an_impossible_negotiation_message_before_sending(make_client, action, price):
    client, recorder = make_client()

    with pytest.raises(ValueError):
        client.negotiate(idempotency_key="k", action=action, quote_id="q", buyer_price=price)
    assert recorder.requests == []


# -- performance, media kit, discovery -------------------------------------------------------------


def test_it_reads_the_reference_sellers_placeholder_performance(make_client):
    placeholder = {
        "deal_id": "DEMO-1",
        "impressions_available": 1_000_000,
        "impressions_served": 0,
        "fill_rate": 0.0,
        "win_rate": 0.0,
        "avg_cpm_actual": 0.0,
        "delivery_pacing": "not_started",
        "last_updated": "2026-11-23T15:11:15.000000Z",
    }
    client, recorder = make_client(httpx.Response(200, json=placeholder))

    perf = client.deal_performance("DEMO-1")

    assert recorder.requests[0].url.path == "/api/v1/deals/DEMO-1/performance"
    assert (perf.deal_id, perf.impressions_delivered, perf.spend) == ("DEMO-1", 0, Decimal(0))
    assert perf.raw["delivery_pacing"] == "not_started"


@pytest.mark.parametrize(
    ("payload", "impressions", "spend"),
    [
        (
            {"impressions_delivered": 1000, "spend": {"amount_micros": 12_500_000, "currency": "USD"}},
            1000,
            "12.5",
        ),
        ({"impressions_delivered": 1000, "spend": 12.5}, 1000, "12.5"),
        ({"impressions_delivered": 1000.0}, 1000, "0"),
        ({"impressions_served": 4000, "avg_cpm_actual": 12.5}, 4000, "50.00"),
    ],
)
def test_it_reads_performance_as_money_or_legacy_float(make_client, payload, impressions, spend):
    client, _ = make_client(httpx.Response(200, json=payload))

    perf = client.deal_performance("DEMO-1")

    assert perf.deal_id == "DEMO-1"
    assert perf.impressions_delivered == impressions
    assert perf.spend == Decimal(spend)


def test_it_reads_the_time_and_the_sellers_own_delivery_words(make_client):
    client, _ = make_client(
        httpx.Response(
            200,
            json={
                "impressions_delivered": 10,
                "spend": {"amount_micros": 150_000, "currency": "USD"},
                "as_of": "2026-12-05T10:00:00Z",
                "status": "MakeGood_Pending",
                "delivery_pacing": "behind",
            },
        )
    )

    perf = client.deal_performance("DEMO-1")

    assert perf.as_of == datetime(2026, 12, 5, 10, tzinfo=UTC)
    assert (perf.status, perf.delivery_pacing) == ("makegood_pending", "behind")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"impressions_delivered": -5, "spend": {"amount_micros": 0, "currency": "USD"}},
        {"impressions_delivered": 5, "spend": {"amount_micros": -1, "currency": "USD"}},
        {"impressions_served": 5, "avg_cpm_actual": -2.0},
        {"impressions_delivered": "lots"},
        {"impressions_delivered": 1.5},
        {"impressions_delivered": True},
        {"impressions_delivered": 5, "as_of": "yesterday"},
        {"impressions_delivered": 5, "spend": {"amount_micros": 1, "currency": "EUR"}},
    ],
)
def test_a_reading_that_is_garbage_or_negative_is_an_invalid_response(make_client, payload):
    client, _ = make_client(httpx.Response(200, json=payload))

    with pytest.raises(SellerError) as raised:
        client.deal_performance("DEMO-1")

    assert raised.value.code == "invalid_response"


def test_it_returns_the_media_kit_as_parsed_json(make_client, samples):
    client, recorder = make_client(
        samples["media_kit.json"],
        samples["media_kit_packages.json"],
        httpx.Response(200, json={"package_id": "pkg-1", "name": "Sports"}),
        httpx.Response(200, json={"results": [{"package_id": "pkg-1"}, "junk"]}),
    )

    assert client.media_kit() == samples["media_kit.json"].json()
    assert client.media_kit_packages() == []
    assert client.media_kit_package("pkg-1") == {"package_id": "pkg-1", "name": "Sports"}
    assert client.media_kit_search("sports", buyer_tier="agency") == [{"package_id": "pkg-1"}]
    assert recorder.requests[2].url.path == "/media-kit/packages/pkg-1"
    assert recorder.requests[3].method == "POST"
    assert recorder.bodies[3] == {"query": "sports", "buyer_tier": "agency"}


def test_the_captured_empty_media_kit_search_is_an_empty_list(make_client, samples):
    client, _ = make_client(samples["media_kit_search.json"])

    assert client.media_kit_search("nothing") == []


def test_it_reads_the_agent_card_and_health(make_client, samples):
    client, _ = make_client(samples["agent_card.json"], samples["health.json"])

    card = client.agent_card()

    assert card["version"] == "2.4.2"
    assert "dooh" in card["inventory_types"]
    assert client.health() is True


def test_health_is_false_without_retrying_when_the_seller_is_down(make_client):
    client, recorder = make_client(httpx.ConnectError("refused"))

    assert client.health() is False
    assert len(recorder.requests) == 1


def test_health_is_false_when_the_seller_reports_trouble(make_client):
    client, _ = make_client(httpx.Response(200, json={"status": "degraded"}))

    assert client.health() is False


# -- identity and secrecy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "header", "value"),
    [("api_key", "x-api-key", SECRET), ("bearer", "authorization", f"Bearer {SECRET}")],
)
def test_it_sends_the_credential_in_the_schemes_header(make_client, samples, scheme, header, value):
    client, recorder = make_client(samples["health.json"], credential=SECRET, credential_scheme=scheme)

    client.health()

    headers = recorder.requests[0].headers
    assert headers[header] == value
    other = "authorization" if header == "x-api-key" else "x-api-key"
    assert other not in headers
    assert "media-buyer-agent" in headers["user-agent"]


def test_it_sends_no_credential_header_without_a_credential(make_client, samples):
    client, recorder = make_client(samples["health.json"])

    client.health()

    assert "x-api-key" not in recorder.requests[0].headers
    assert "authorization" not in recorder.requests[0].headers


def test_it_rejects_an_unknown_credential_scheme_without_echoing_the_credential():
    with pytest.raises(ValueError) as caught:
        SellerRestClient("http://seller.test", credential=SECRET, credential_scheme="basic")

    assert SECRET not in str(caught.value)


def test_the_credential_never_appears_in_repr_errors_or_logs(make_client, caplog):
    echo = {"detail": {"error": "invalid_api_key", "message": f"API key {SECRET} is not valid"}}
    client, _ = make_client(
        httpx.Response(401, json=echo),
        httpx.Response(200, content=f"<html>{SECRET}</html>".encode()),
        *[httpx.Response(503, text=f"upstream rejected {SECRET}")] * 3,
        credential=SECRET,
    )

    with caplog.at_level(logging.DEBUG):
        errors = []
        for _ in range(3):
            with pytest.raises(SellerError) as caught:
                client.get_deal("DEMO-1")
            errors.append(caught.value)

    assert [e.code for e in errors] == ["invalid_api_key", "invalid_response", "http_503"]
    for error in errors:
        assert SECRET not in str(error)
        assert SECRET not in repr(error)
        assert SECRET not in error.message
    assert "***" in errors[0].message
    assert SECRET not in repr(client)
    assert "'***'" in repr(client)
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(vars(client), default=repr)
    assert SECRET not in json.dumps(vars(client._http), default=repr)
