"""The fault knobs a buyer's error handling is tested against: malformed answers and latency."""

from __future__ import annotations

import time

from adcp.types import GetAdcpCapabilitiesRequest, GetMediaBuysRequest, GetProductsRequest

from ._support import buy_request, package, status_request


def test_malformed_products_fail_the_clients_schema_validation(make_seller):
    seller = make_seller(malformed=True)

    async def work(client):
        return await client.get_products(GetProductsRequest(buying_mode="wholesale"))

    result = seller.run(work)
    assert not result.success
    assert result.data is None
    assert "pricing_options" in result.error and "required" in result.error


def test_a_malformed_media_buy_fails_validation_yet_was_booked(make_seller):
    seller = make_seller(malformed=True)

    async def work(client):
        return await client.create_media_buy(
            buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000))
        )

    result = seller.run(work)
    assert not result.success
    assert "not of type 'integer'" in result.error
    assert list(seller.state.media_buys) == ["mb-00001"]  # the buyer cannot tell: it must reconcile by reading back

    async def read(client):
        return await client.get_media_buys(GetMediaBuysRequest())

    assert not seller.run(read).success


def test_a_malformed_task_status_fails_validation(make_seller):
    seller = make_seller(malformed=True, approval_delay=60)
    seller.state.approval_delay = 60

    async def submit(client):
        return await client.create_media_buy(
            buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 1_000))
        )

    assert not seller.run(submit).success  # the submitted envelope lost its task_id
    [task_id] = seller.state.tasks

    async def poll(client):
        return await client.get_task_status(status_request(task_id))

    result = seller.run(poll)
    assert not result.success
    assert "in_progress" in result.error or "task_type" in result.error


def test_capabilities_stay_valid_so_a_buyer_can_still_connect(make_seller):
    seller = make_seller(malformed=True)

    async def work(client):
        return await client.get_adcp_capabilities(GetAdcpCapabilitiesRequest())

    assert seller.run(work).success


def test_latency_delays_every_task(make_seller):
    seller = make_seller(latency_ms=300)

    async def work(client):
        await client.get_adcp_capabilities(GetAdcpCapabilitiesRequest())
        started = time.monotonic()
        result = await client.get_products(GetProductsRequest(buying_mode="wholesale"))
        return result, time.monotonic() - started

    result, elapsed = seller.run(work)
    assert result.success
    assert elapsed >= 0.3  # a lower bound only: a loaded machine is slower, never faster
