"""fetch_catalogs: every seller in parallel, one seller's failure reported, never raised."""

from __future__ import annotations

import threading

import httpx

from buyer.sellers.client import SellerRestClient, fetch_catalogs
from buyer.sellers.errors import SellerError


class _ExplodingClient(SellerRestClient):
    def list_products(self, *, page_size: int = 100, max_products: int = 2000):
        raise RuntimeError("bug in a seller adapter")


def test_one_failing_seller_does_not_cost_the_others_their_catalog(make_client, samples):
    good, _ = make_client(samples["products.json"])
    down, down_recorder = make_client(*[httpx.ConnectError("refused")] * 3)
    rejecting, _ = make_client(httpx.Response(401, json={"detail": {"error": "bad_key", "message": "no"}}))

    results = fetch_catalogs({"good": good, "down": down, "rejecting": rejecting})

    assert list(results) == ["good", "down", "rejecting"]
    assert isinstance(results["good"], list)
    assert len(results["good"]) == 13
    assert isinstance(results["down"], SellerError)
    assert results["down"].code == "connection_error"
    assert len(down_recorder.requests) == 3
    assert isinstance(results["rejecting"], SellerError)
    assert (results["rejecting"].status, results["rejecting"].code) == (401, "bad_key")


def test_an_unexpected_exception_is_reported_as_an_error(samples):
    with _ExplodingClient("http://seller.test", transport=httpx.MockTransport(lambda r: httpx.Response(500))) as c:
        results = fetch_catalogs({"broken": c})

    assert isinstance(results["broken"], SellerError)
    assert results["broken"].code == "unexpected_error"


def test_sellers_are_fetched_in_parallel(make_client, samples):
    # Both handlers wait for each other: this only completes if the two fetches overlap in time.
    barrier = threading.Barrier(2, timeout=5)
    body = samples["products.json"].body

    def meet_then_answer(request: httpx.Request) -> httpx.Response:
        barrier.wait()
        return httpx.Response(200, content=body)

    a, _ = make_client(meet_then_answer)
    b, _ = make_client(meet_then_answer)

    results = fetch_catalogs({"a": a, "b": b}, max_workers=2)

    assert all(isinstance(r, list) and len(r) == 13 for r in results.values())


def test_no_sellers_no_work():
    assert fetch_catalogs({}) == {}
