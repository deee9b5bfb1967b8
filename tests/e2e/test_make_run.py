"""`make run` on a fresh clone: the embedded default (SQLite, no Redis) serves /health and books a brief."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.clock import processes_today
from tests.conftest import free_port

pytestmark = pytest.mark.stack

REPO = Path(__file__).resolve().parents[2]
# An environment variable every process of one `make run` inherits: how a test finds them all in /proc.
RUN_MARK = "BUYER_TEST_RUN"


def _make_run(cwd: Path, log_path: Path, port: int, sandbox_port: int, **env_vars: str) -> subprocess.Popen:
    """``make run`` in ``cwd`` on the embedded default, in a session of its own, its output in ``log_path``. It
    reuses this run's virtualenv (``-o`` marks it up to date); CI's own ``make install`` covers installing."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_", "REDIS_", "CELERY_", "PYTEST_", "DJANGO_"))
    }
    env.update(ENVIRONMENT="development", API_KEY="", SELLER_ENDPOINTS="", LOG_LEVEL="WARNING", **env_vars)
    venv = Path(sys.prefix)
    ports = [f"PORT={port}", f"SANDBOX_SELLER_PORT={sandbox_port}"]
    argv = ["make", "-o", f"{venv}/.installed", "run", f"VENV={venv}", *ports]
    log = open(log_path, "wb")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stack_run(tmp_path: Path, mark: str, port: int, sandbox_port: int) -> subprocess.Popen:
    """``make run`` from this checkout on a scratch SQLite database, its processes marked ``mark``."""
    return _make_run(
        REPO, tmp_path / f"{mark}.log", port, sandbox_port,
        DATABASE_URL=f"sqlite:///{tmp_path / 'run.sqlite3'}", BUYER_VAR_DIR=str(tmp_path / "var"), **{RUN_MARK: mark},
    )  # fmt: skip


def test_make_run_on_a_fresh_clone_serves_health_and_completes_a_brief(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    port, sandbox_port = free_port(), free_port()
    process = _make_run(clone, tmp_path / "make-run.log", port, sandbox_port)
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


# --- Stopping ------------------------------------------------------------------------------------------------


def _processes_marked(mark: str) -> list[str]:
    """The command lines of the processes whose environment carries ``RUN_MARK=mark`` (Linux /proc)."""
    found = []
    needle = f"{RUN_MARK}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # gone, or not ours to read
    return found


def _wait_serving(process: subprocess.Popen, port: int, mark: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, "make run exited"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200 and any(
                "celery" in line for line in _processes_marked(mark)
            ):
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "make run did not start"
        time.sleep(0.3)


def _gone_within(mark: str, seconds: float) -> float:
    started = time.monotonic()
    while (left := _processes_marked(mark)) and time.monotonic() - started < seconds:
        time.sleep(0.1)
    assert not left, f"left running after {seconds} s: {left}"
    return time.monotonic() - started


def _launcher_pid(mark: str) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
                if b"buyer.stack" in cmdline and f"{RUN_MARK}={mark}".encode() in (entry / "environ").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("no launcher process")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    "how",
    ["SIGTERM to make", "SIGKILL to make", "SIGKILL to the launcher"],
)
def test_make_run_stops_within_10_s_and_leaves_no_process_behind(tmp_path, how):
    mark = f"stop-{uuid.uuid4().hex[:8]}"
    port, sandbox_port = free_port(), free_port()
    process = _stack_run(tmp_path, mark, port, sandbox_port)
    try:
        _wait_serving(process, port, mark)
        if how == "SIGTERM to make":
            os.kill(process.pid, signal.SIGTERM)
        elif how == "SIGKILL to make":
            os.kill(process.pid, signal.SIGKILL)
        else:
            os.kill(_launcher_pid(mark), signal.SIGKILL)
        _gone_within(mark, 10)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        for line in _processes_marked(mark):  # never leave one behind, even when the test failed
            print("still running:", line)


def test_make_run_reports_a_port_in_use_before_starting_anything(tmp_path):
    mark = f"port-{uuid.uuid4().hex[:8]}"
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = _stack_run(tmp_path, mark, port, free_port())
        assert process.wait(timeout=120) != 0
    output = (tmp_path / f"{mark}.log").read_text()
    assert f"Port {port} on 127.0.0.1 is already in use" in output and "nothing was started" in output
    assert not [line for line in _processes_marked(mark) if "buyer" in line]
