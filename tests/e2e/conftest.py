"""A live stack per test: the sandbox seller, the web server and a Celery worker, each its own process,
on the test database and the configured broker (Redis when REDIS_URL is set, else the embedded one)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from buyer.stack import Stack, build_stack
from tests.conftest import free_port

API_KEY = "e2e-test-key"


def database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgresql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def broker_env(tmp_path: Path) -> dict[str, str]:
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        return {"CELERY_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"}
    import redis

    # One Redis database per xdist worker, emptied first, so parallel test processes never share queues.
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0) + 1
    url = redis_url.rsplit("/", 1)[0] + f"/{index}" if redis_url.count("/") >= 3 else f"{redis_url}/{index}"
    redis.Redis.from_url(url).flushdb()
    return {"REDIS_URL": url}


@pytest.fixture
def make_stack(transactional_db, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def factory(
        *,
        sandbox_args: list[str] | None = None,
        web_workers: int = 1,
        adcp_sandbox_args: list[str] | None = None,
        **env: str,
    ) -> Stack:
        """The stack; with ``adcp_sandbox_args`` (a list, maybe empty) the AdCP sandbox seller too."""
        (tmp_path / "logs").mkdir(exist_ok=True)
        full_env = {
            "DATABASE_URL": database_url(),
            "BUYER_VAR_DIR": str(tmp_path),
            "CELERY_QUEUE": f"e2e-{uuid.uuid4().hex[:8]}",
            "CELERY_PACING_QUEUE": f"e2e-pacing-{uuid.uuid4().hex[:8]}",
            "ENVIRONMENT": "testing",
            "API_KEY": API_KEY,
            "LOG_LEVEL": "INFO",
            "JOB_STEP_LEASE_SECONDS": "15",
            "JOB_STALL_SECONDS": "10",
            "JOB_SWEEP_INTERVAL_SECONDS": "2",
            # One seller call at worst 3 s: within the 15 s lease's step limit (the settings check they fit).
            "SELLER_TIMEOUT_SECONDS": "3",
            "SELLER_MAX_RETRIES": "0",
            **broker_env(tmp_path),
            **env,
        }
        stack = build_stack(
            port=free_port(),
            sandbox_port=free_port(),
            workers=2,
            env=full_env,
            log_dir=tmp_path / "logs",
            sandbox_args=sandbox_args,
            web_workers=web_workers,
            adcp_sandbox_port=free_port() if adcp_sandbox_args is not None else None,
            adcp_sandbox_args=adcp_sandbox_args,
        )
        stacks.append(stack)
        stack.start()
        try:
            stack.wait_healthy(timeout=60)
        except Exception:
            stack.stop(kill=True)
            raise AssertionError(_logs(tmp_path / "logs")) from None
        return stack

    yield factory
    for stack in stacks:
        stack.stop()


def _logs(log_dir: Path) -> str:
    parts = []
    for path in sorted(log_dir.glob("*.log")):
        parts.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-4000:])
    return "\n".join(parts)


class Api:
    """A small client for the buyer's REST API in these tests."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.http = httpx.Client(base_url=stack.web_url, headers={"X-API-Key": API_KEY}, timeout=20)

    def submit(self, brief: dict, *, auto_approve: bool = False) -> str:
        response = self.http.post("/bookings", json={"brief": brief, "auto_approve": auto_approve})
        assert response.status_code == 202, response.text
        return response.json()["job_id"]

    def job(self, job_id: str) -> dict:
        response = self.http.get(f"/bookings/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, job_id: str, *statuses: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                logs = _logs(self.stack.log_dir) if self.stack.log_dir else ""
                raise AssertionError(f"job stuck in {job['status']}: {job}\n{logs}")
            time.sleep(0.3)


@pytest.fixture
def brief() -> dict:
    from datetime import timedelta

    from tests.clock import processes_today

    start = processes_today() + timedelta(days=7)
    return {
        "name": "Q1 Brand Awareness",
        "objectives": ["brand awareness", "reach", "video views"],
        "budget": 75000,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=45)).isoformat(),
        "target_audience": {"age": "25-54", "geo": ["US"], "interests": ["technology"]},
        "kpis": {"viewability": 70, "max_cpm_usd": 45},
        "channels": ["branding", "ctv", "performance"],
    }
