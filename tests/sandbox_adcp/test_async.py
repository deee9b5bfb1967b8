"""Asynchronous approvals: ``submitted`` with a task id, polled with get_task_status until the buy exists.

Time passes by moving the sandbox clock; nothing here sleeps.
"""

from __future__ import annotations

from datetime import timedelta

from adcp.types import CreateMediaBuyResponse1, GetMediaBuysRequest

from ._support import buy_request, package, status_request

DELAY = 3600.0


def submit(seller, request=None, **kw):
    request = request or buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 5_000))

    async def work(client):
        return await client.create_media_buy(request)

    result = seller.run(work, **kw)
    assert result.success, result.error
    return result


def poll(seller, task_id, **kw):
    async def work(client):
        return await client.get_task_status(status_request(task_id))

    result = seller.run(work, **kw)
    assert result.success, result.error
    return result.data


def media_buys(seller):
    async def work(client):
        return await client.get_media_buys(GetMediaBuysRequest())

    return seller.run(work).data.media_buys


def test_a_buy_is_submitted_then_completes_once_the_clock_passes_the_delay(make_seller):
    seller = make_seller(approval_delay=DELAY)
    submitted_at = seller.clock.now
    result = submit(seller)

    assert result.data.status.value == "submitted"
    task_id = result.data.task_id
    assert task_id == "task-00001"
    assert result.data.message
    first = poll(seller, task_id)
    assert (first.status.value, first.task_type.value, first.protocol.value) == (
        "submitted",
        "create_media_buy",
        "media-buy",
    )
    assert first.result is None
    assert media_buys(seller) == []

    seller.clock.advance(seconds=DELAY - 1)
    assert poll(seller, task_id).status.value == "working"
    assert media_buys(seller) == []

    seller.clock.advance(seconds=2)
    done = poll(seller, task_id)
    assert done.status.value == "completed"
    assert done.completed_at == submitted_at + timedelta(seconds=DELAY)
    buy = CreateMediaBuyResponse1.model_validate(done.result)
    assert buy.media_buy_id == "mb-00001"
    assert buy.media_buy_status.value == "active"
    assert buy.confirmed_at == submitted_at + timedelta(seconds=DELAY)
    assert [p.product_id for p in buy.packages] == ["news-homepage-display"]

    [read_back] = media_buys(seller)
    assert read_back.media_buy_id == buy.media_buy_id
    assert read_back.created_at == submitted_at
    assert read_back.confirmed_at == buy.confirmed_at


def test_the_buy_exists_once_the_delay_has_passed_even_if_nobody_polled(make_seller):
    seller = make_seller(approval_delay=DELAY)
    submit(seller)
    seller.clock.advance(seconds=DELAY)
    assert [b.media_buy_id for b in media_buys(seller)] == ["mb-00001"]


def test_a_replayed_submission_returns_the_same_task(make_seller):
    seller = make_seller(approval_delay=DELAY)
    request = buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 5_000))
    first = submit(seller, request)
    seller.clock.advance(seconds=DELAY)
    again = submit(seller, request)

    assert again.replayed is True
    assert again.data.task_id == first.data.task_id
    assert len(seller.state.tasks) == 1
    assert poll(seller, first.data.task_id).status.value == "completed"
    assert len(seller.state.media_buys) == 1


def test_a_refusal_is_synchronous_even_when_approvals_are_not(make_seller):
    seller = make_seller(approval_delay=DELAY)

    async def work(client):
        return await client.create_media_buy(
            buy_request(seller.clock, package("news-homepage-display", "cpm-fixed", 0))
        )

    result = seller.run(work)
    assert result.adcp_error["code"] == "BUDGET_TOO_LOW"
    assert seller.state.tasks == {}


def test_input_required_carries_its_message_until_the_seller_approves(make_seller):
    seller = make_seller(input_required=True, approval_delay=60)
    task_id = submit(seller).data.task_id

    waiting = poll(seller, task_id)
    assert waiting.status.value == "input-required"
    assert waiting.message.startswith("Manual approval at the seller")
    assert f"/_sandbox/tasks/{task_id}/approve" in waiting.message
    seller.clock.advance(days=2)
    assert poll(seller, task_id).status.value == "input-required"  # time alone does not resolve it

    approved = seller.control(f"/_sandbox/tasks/{task_id}/approve")
    assert approved.status_code == 200
    assert approved.json()["status"] == "working"
    assert poll(seller, task_id).status.value == "working"
    seller.clock.advance(seconds=60)
    done = poll(seller, task_id)
    assert done.status.value == "completed"
    assert CreateMediaBuyResponse1.model_validate(done.result).media_buy_id == "mb-00001"
    assert seller.control(f"/_sandbox/tasks/{task_id}/approve").status_code == 409


def test_the_input_message_is_configurable(make_seller):
    seller = make_seller(input_required=True, input_message="Creatives pending: upload them before launch.")
    task_id = submit(seller).data.task_id
    assert poll(seller, task_id).message == "Creatives pending: upload them before launch."


def test_a_rejected_order_fails_with_the_sellers_reason(make_seller):
    seller = make_seller(input_required=True)
    task_id = submit(seller).data.task_id

    response = seller.control(f"/_sandbox/tasks/{task_id}/reject", {"reason": "alcohol ads not accepted"})
    assert response.status_code == 200
    rejected = poll(seller, task_id)
    assert rejected.status.value == "rejected"
    assert rejected.error.code == "POLICY_VIOLATION"
    assert "alcohol ads not accepted" in rejected.error.message
    assert rejected.result == {
        "errors": [{"code": "POLICY_VIOLATION", "message": rejected.error.message, "recovery": "terminal"}]
    }
    assert media_buys(seller) == []


def test_a_stuck_task_never_leaves_working(make_seller):
    seller = make_seller(stuck=True)
    task_id = submit(seller).data.task_id
    seller.clock.advance(seconds=1)
    assert poll(seller, task_id).status.value == "working"
    seller.clock.advance(days=30)
    stuck = poll(seller, task_id)
    assert stuck.status.value == "working"
    assert stuck.completed_at is None
    assert media_buys(seller) == []


def test_a_task_is_private_to_its_caller(make_seller):
    seller = make_seller(approval_delay=DELAY)
    task_id = submit(seller, token="buyer-a").data.task_id

    async def work(client):
        return await client.get_task_status(status_request(task_id))

    theirs = seller.run(work, token="buyer-b")
    assert not theirs.success
    assert theirs.adcp_error["code"] == "REFERENCE_NOT_FOUND"
    unknown = seller.run(lambda client: client.get_task_status(status_request("task-99999")), token="buyer-a")
    assert unknown.adcp_error["code"] == "REFERENCE_NOT_FOUND"


def test_the_control_routes_list_tasks_and_refuse_unknown_ones(make_seller):
    seller = make_seller(approval_delay=DELAY)
    task_id = submit(seller).data.task_id
    listed = seller.control("/_sandbox/tasks").json()["tasks"]
    assert [(t["task_id"], t["status"]) for t in listed] == [(task_id, "submitted")]
    assert seller.control("/_sandbox/tasks/task-99999/approve").status_code == 404
    assert seller.control(f"/_sandbox/tasks/{task_id}/approve").status_code == 409  # not waiting for input
    assert seller.control("/health").json() == {"status": "healthy"}


def test_no_delay_and_no_input_books_synchronously(make_seller):
    seller = make_seller(approval_delay=0.0)
    result = submit(seller)
    assert result.data.media_buy_id == "mb-00001"
    assert seller.state.tasks == {}
