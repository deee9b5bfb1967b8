"""AdCP orders under real worker kills: a live stack (web, Celery worker with beat, the IAB and the AdCP sandbox
sellers, each its own process) whose worker is SIGKILLed while it sends orders and while it polls the seller's
review tasks. Every approved line ends booked once: one media buy at the seller per AdCP deal, none twice."""

from __future__ import annotations

import time

import httpx

from tests.e2e.conftest import Api


def _wait_stage(api: Api, job_id: str, stage: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while (job := api.job(job_id))["stage"] != stage:
        assert job["status"] not in {"completed", "failed", "cancelled"}, job
        assert time.monotonic() < deadline, f"never reached {stage}: {job}"
        time.sleep(0.2)


def test_killing_the_worker_while_it_orders_and_polls_never_buys_twice(make_stack, brief):
    stack = make_stack(
        # Every AdCP task takes 1.5 s, so the worker is caught inside a create_media_buy or a get_task_status.
        adcp_sandbox_args=["--latency-ms", "1500"],
        ADCP_SANDBOX_APPROVAL_DELAY="6",
        ADCP_TASK_POLL_SECONDS="1",
        # Not preloaded: each restarted worker imports the client in the threads that first ask sellers.
        ADCP_PRELOAD="off",
        JOB_STEP_LEASE_SECONDS="60",
        SELLER_TIMEOUT_SECONDS="4",
    )
    api = Api(stack)
    job_id = api.submit({**brief, "channels": ["display", "ctv"]}, auto_approve=True)
    # Killed while it sends the orders…
    _wait_stage(api, job_id, "book")
    time.sleep(0.8)
    stack.stop("worker", kill=True)
    stack.start("worker")
    # …and twice while beat's poller asks the seller where the orders it reviews stand.
    _wait_stage(api, job_id, "await_seller", timeout=150)
    for _ in range(2):
        time.sleep(2.0)
        stack.stop("worker", kill=True)
        stack.start("worker")
    job = api.wait_for(job_id, "completed", "failed", timeout=180)
    assert job["status"] == "completed", (job["failure_reason"], job["errors"], job["stage"])
    adcp_deals = [line["deal_id"] for line in job["booked_lines"] if line["deal_id"].startswith("mb-")]
    tasks = httpx.get(f"{stack.adcp_seller_url}/_sandbox/tasks", timeout=10).json()["tasks"]
    bought = [t["media_buy_id"] for t in tasks if t["media_buy_id"]]
    # The seller booked each order once (its idempotency keys held through the kills), and each buy is one deal.
    assert adcp_deals, job
    assert sorted(adcp_deals) == sorted(bought), (adcp_deals, tasks)
    deal_ids = [line["deal_id"] for line in job["booked_lines"]]
    assert len(deal_ids) == len(set(deal_ids))
