"""Which failures are retried, how long we wait, and what a broken or hostile response turns into."""

from __future__ import annotations

import httpx
import pytest

from buyer.sellers import rest
from buyer.sellers.errors import SellerError


def _ok_product(samples) -> httpx.Response:
    return httpx.Response(200, content=samples["product_get.json"].body)


# -- retries ---------------------------------------------------------------------------------------


def test_it_retries_on_503_then_succeeds(make_client, samples, sleeps):
    client, recorder = make_client(httpx.Response(503), httpx.Response(503), _ok_product(samples))

    product = client.get_product("prod-53e78a97")

    assert product.product_id == "prod-53e78a97"
    assert len(recorder.requests) == 3
    # Exponential with jitter: attempt n waits within [base * 2**n / 2, base * 2**n].
    assert len(sleeps) == 2
    assert 0.1 <= sleeps[0] <= 0.2
    assert 0.2 <= sleeps[1] <= 0.4


@pytest.mark.parametrize("status", [502, 504])
def test_it_retries_other_gateway_failures(make_client, samples, status):
    client, recorder = make_client(httpx.Response(status), _ok_product(samples))

    client.get_product("prod-53e78a97")

    assert len(recorder.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500])
def test_it_never_retries_a_definitive_answer(make_client, sleeps, status):
    client, recorder = make_client(httpx.Response(status, json={"detail": "no"}))

    with pytest.raises(SellerError) as caught:
        client.get_product("prod-x")

    assert caught.value.status == status
    assert caught.value.retryable is False
    assert len(recorder.requests) == 1
    assert sleeps == []


def test_it_gives_up_after_the_last_attempt_with_a_retryable_http_error(make_client):
    client, recorder = make_client(*[httpx.Response(503, json={"detail": "overloaded"})] * 3)

    with pytest.raises(SellerError) as caught:
        client.get_product("prod-x")

    assert len(recorder.requests) == 3
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (503, "http_503", True)
    assert "overloaded" in caught.value.message
    assert "3 attempts" in caught.value.message


def test_it_retries_a_timeout_then_raises_a_retryable_timeout_error(make_client, sleeps):
    client, recorder = make_client(*[httpx.ReadTimeout("slow")] * 3)

    with pytest.raises(SellerError) as caught:
        client.get_product("prod-x")

    assert len(recorder.requests) == 3
    assert len(sleeps) == 2
    assert caught.value.code == "timeout"
    assert caught.value.retryable is True
    assert caught.value.status is None


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadError("[Errno 104] Connection reset by peer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_it_retries_connection_failures_then_raises_connection_error(make_client, exc):
    client, recorder = make_client(exc, exc, exc)

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert len(recorder.requests) == 3
    assert (caught.value.code, caught.value.retryable) == ("connection_error", True)


def test_a_connection_failure_then_success_recovers(make_client, samples):
    client, recorder = make_client(httpx.ConnectError("refused"), _ok_product(samples))

    assert client.get_product("prod-53e78a97").name == "CTV Premium Streaming"
    assert len(recorder.requests) == 2


def test_it_does_not_retry_a_configuration_error(make_client):
    client, recorder = make_client(httpx.UnsupportedProtocol("ftp"))

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert len(recorder.requests) == 1
    assert (caught.value.code, caught.value.retryable) == ("transport_error", False)


def test_a_retried_post_replays_the_same_idempotency_key(make_client, samples):
    client, recorder = make_client(httpx.ReadTimeout("lost"), samples["deal_book.json"])

    deal = client.book_deal(idempotency_key="job-1:rec-2:book", quote_id="qt-ead80acf065f")

    assert deal.deal_id == "DEMO-B0412BC0DFFA"
    assert len(recorder.requests) == 2
    assert recorder.bodies[0] == recorder.bodies[1]
    assert recorder.bodies[0]["idempotency_key"] == "job-1:rec-2:book"


def test_zero_max_retries_means_one_attempt(make_client):
    client, recorder = make_client(httpx.Response(503), max_retries=0)

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert len(recorder.requests) == 1
    assert caught.value.retryable is True


def test_backoff_is_capped_at_five_seconds(make_client, sleeps):
    client, _ = make_client(*[httpx.Response(503)] * 5, max_retries=4, backoff_base=3.0)

    with pytest.raises(SellerError):
        client.get_deal("DEMO-1")

    assert len(sleeps) == 4
    assert all(s <= rest.MAX_BACKOFF_S for s in sleeps)
    assert sleeps[-1] >= rest.MAX_BACKOFF_S / 2


@pytest.mark.parametrize(("header", "expected"), [("2", 2.0), ("0.5", 0.5), ("120", 10.0)])
def test_it_honours_a_numeric_retry_after_capped_at_ten_seconds(make_client, samples, monkeypatch, header, expected):
    slept: list[float] = []
    monkeypatch.setattr(rest, "sleep", slept.append)
    client, _ = make_client(httpx.Response(503, headers={"Retry-After": header}), _ok_product(samples), sleep=None)

    client.get_product("prod-53e78a97")

    assert slept == [expected]


def test_a_date_retry_after_falls_back_to_backoff(make_client, samples, sleeps):
    client, _ = make_client(
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}), _ok_product(samples)
    )

    client.get_product("prod-53e78a97")

    assert len(sleeps) == 1
    assert 0.1 <= sleeps[0] <= 0.2


# -- garbage and hostile bodies --------------------------------------------------------------------


def test_a_non_json_success_is_an_invalid_response_with_a_short_message(make_client):
    body = "<html>" + "x" * 100_000 + "</html>"
    client, _ = make_client(httpx.Response(200, text=body))

    with pytest.raises(SellerError) as caught:
        client.get_product("prod-x")

    assert (caught.value.code, caught.value.status) == ("invalid_response", 200)
    assert caught.value.retryable is False
    assert len(str(caught.value)) < 300
    assert "<html>" in caught.value.message


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"products": "nope"},
        {"quote": {"quote_id": "qt-1"}},
        {"unrelated": True},
    ],
)
def test_json_of_the_wrong_shape_is_an_invalid_response(make_client, payload):
    client, _ = make_client(httpx.Response(200, json=payload))

    with pytest.raises(SellerError) as caught:
        client.get_quote("qt-1")

    assert (caught.value.code, caught.value.status) == ("invalid_response", 200)


def test_a_float_where_money_belongs_is_an_invalid_response(make_client, samples):
    quote = samples["quote_get.json"].json()
    quote["quote"]["pricing"]["final_cpm"] = 15.0
    client, _ = make_client(httpx.Response(200, json=quote))

    with pytest.raises(SellerError) as caught:
        client.get_quote("qt-ead80acf065f")

    assert caught.value.code == "invalid_response"
    assert "Money" in caught.value.message


def test_a_missing_field_names_the_field(make_client, samples):
    deal = samples["deal_get.json"].json()
    del deal["deal"]["terms"]["flight_start"]
    client, _ = make_client(httpx.Response(200, json=deal))

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-B0412BC0DFFA")

    assert "deal.terms.flight_start" in caught.value.message


def test_deeply_nested_json_is_an_invalid_response_not_a_crash(make_client):
    client, _ = make_client(httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000))

    with pytest.raises(SellerError) as caught:
        client.agent_card()

    assert caught.value.code == "invalid_response"


def test_an_oversized_body_is_abandoned(make_client):
    client, _ = make_client(httpx.Response(200, content=b'{"a": "' + b"x" * 5000 + b'"}'))
    client._http.max_response_bytes = 1000

    with pytest.raises(SellerError) as caught:
        client.agent_card()

    assert caught.value.code == "invalid_response"
    assert "exceeds 1000 bytes" in caught.value.message


def test_a_huge_error_message_is_capped(make_client):
    envelope = {"detail": {"error": "boom", "message": "m" * 1_000_000}}
    client, _ = make_client(httpx.Response(400, json=envelope))

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert caught.value.code == "boom"
    assert len(caught.value.message) <= rest.MAX_EXCERPT


def test_a_non_json_error_body_gets_an_http_status_code(make_client):
    client, _ = make_client(httpx.Response(404, text="<h1>Not Found</h1>\n" + "y" * 10_000))

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert (caught.value.code, caught.value.status) == ("http_404", 404)
    assert caught.value.message.startswith("<h1>Not Found</h1>")
    assert len(caught.value.message) <= rest.MAX_EXCERPT


def test_a_hostile_error_code_is_replaced_by_the_http_status(make_client):
    envelope = {"detail": {"error": "x" * 500 + "\n\x1b[31m", "message": "bad\x00thing"}}
    client, _ = make_client(httpx.Response(400, json=envelope))

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert caught.value.code == "http_400"
    assert caught.value.message == "bad thing"


def test_an_envelope_without_a_message_still_explains_itself(make_client):
    client, _ = make_client(httpx.Response(403, json={"detail": {"error": "forbidden_tier"}}))

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert (caught.value.code, caught.value.message) == ("forbidden_tier", "forbidden_tier")


def test_a_huge_pydantic_error_list_is_summarised(make_client):
    items = [{"loc": ["body", f"f{i}"], "msg": "Field required", "input": {}} for i in range(50)]
    client, _ = make_client(httpx.Response(422, json={"detail": items}))

    with pytest.raises(SellerError) as caught:
        client.get_deal("DEMO-1")

    assert caught.value.code == "validation_error"
    assert "body.f0: Field required" in caught.value.message
    assert "(+40 more)" in caught.value.message
