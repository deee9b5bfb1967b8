"""`make run` on a fresh clone: the embedded default (SQLite, no Redis) serves /health and books a brief."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.clock import processes_today
from tests.conftest import free_port

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]


def test_make_run_on_a_fresh_clone_serves_health_and_completes_a_brief(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    venv = Path(sys.prefix)
    port, sandbox_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "PYTEST_", "DJANGO_"))
    }
    env.update(ENVIRONMENT="development", API_KEY="", SELLER_ENDPOINTS="", LOG_LEVEL="WARNING")
    # The test reuses this run's virtualenv (`-o` marks it up to date); CI's own run of `make install`
    # covers installing from the lock file.
    argv = [
        "make",
        "-o",
        f"{venv}/.installed",
        "run",
        f"VENV={venv}",
        f"PORT={port}",
        f"SANDBOX_SELLER_PORT={sandbox_port}",
    ]
    log = open(tmp_path / "make-run.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(argv, cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "make-run.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=2).json()["status"] == "healthy":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "make-run.log").read_text()
            time.sleep(0.5)

        start = processes_today() + timedelta(days=5)
        brief = {
            "name": "Fresh clone",
            "objectives": ["reach"],
            "budget": 40000,
            "start_date": start.isoformat(),
            "end_date": (start + timedelta(days=20)).isoformat(),
        }
        job_id = httpx.post(f"{base}/bookings", json={"brief": brief, "auto_approve": True}).json()["job_id"]
        deadline = time.monotonic() + 90
        while (job := httpx.get(f"{base}/bookings/{job_id}").json())["status"] not in {"completed", "failed"}:
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
        assert job["status"] == "completed", (job["failure_reason"], job["errors"])
        assert job["booked_lines"] and all(line["deal_id"] for line in job["booked_lines"])
        assert (clone / "ad_buyer.db").exists()
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
