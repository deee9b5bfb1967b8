"""Figure 2: N briefs (default 100) submitted at once, with auto_approve, on 2 Celery worker processes.

Starts a fresh stack (``workers=2``) on a scratch database, runs one warm-up brief (not counted), then sends
all N ``POST /bookings`` concurrently (asyncio + httpx, one connection each) and polls ``GET /bookings``
every 250 ms until every job is completed, failed or cancelled (bounded by ``--timeout``). Per-job latency is
from sending that job's POST to the job's last ``updated_at`` (the server's finish time); the wall time is
from the first POST to the last job finishing. Prints wall time, throughput (jobs/min), how many completed /
failed, per-job latency median / p95, and how long the POSTs themselves took to be accepted.

    .venv/bin/python bench/concurrent_briefs.py [--jobs 100] [--workers 2] [--timeout 600]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/concurrent_briefs.py

Database and broker follow DATABASE_URL / REDIS_URL as described in bench/common.py.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a file: make `bench` and `buyer` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    HEADERS,
    TERMINAL,
    Backends,
    ConnectionSampler,
    Summary,
    api_client,
    handle_sigterm,
    log,
    log_tail,
    machine_line,
    make_brief,
    markdown_table,
    millis,
    parse_time,
    running_stack,
    scratch_backends,
    seconds,
    submit,
    wait_terminal,
)

PAGE = 200


@dataclass
class ConcurrentResult:
    jobs: int
    workers: int
    database: str
    broker: str
    wall: float = float("nan")
    accept_wall: float = float("nan")
    accept_latencies: list[float] = field(default_factory=list)
    job_latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    peak_connections: int | None = None
    failure_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in TERMINAL)

    @property
    def per_minute(self) -> float:
        return self.finished / self.wall * 60 if self.wall > 0 else float("nan")

    def rows(self) -> list[list[str]]:
        latency = Summary.of(self.job_latencies)
        accept = Summary.of(self.accept_latencies)
        unfinished = self.jobs - self.finished - self.rejected
        outcome = f"{self.statuses['completed']} completed / {self.statuses['failed']} failed"
        if self.statuses["cancelled"]:
            outcome += f" / {self.statuses['cancelled']} cancelled"
        if unfinished:
            outcome += f" / {unfinished} unfinished"
        if self.rejected:
            outcome += f" / {self.rejected} POSTs refused"
        return [
            [
                f"{self.jobs} concurrent briefs (auto_approve)",
                f"{self.workers} Celery worker processes, 1 web (Granian) worker; {self.database}, {self.broker}",
                f"wall {seconds(self.wall)} · {self.per_minute:.0f} jobs/min · {outcome} · per-job latency "
                f"median {seconds(latency.median)}, p95 {seconds(latency.p95)} · all {self.jobs} POSTs accepted in "
                f"{seconds(self.accept_wall)} (POST p95 {millis(accept.p95)})"
                + (
                    f" · peak {self.peak_connections} PostgreSQL connections"
                    if self.peak_connections is not None
                    else ""
                ),
            ]
        ]

    def report(self) -> str:
        latency = Summary.of(self.job_latencies)
        accept = Summary.of(self.accept_latencies)
        lines = [
            f"{self.jobs} concurrent briefs, auto_approve, {self.workers} Celery worker processes "
            f"({self.database}; {self.broker})",
            f"  wall time {seconds(self.wall)}  throughput {self.per_minute:.1f} jobs/min",
            f"  outcome {dict(self.statuses)}  POSTs refused {self.rejected}",
            f"  per-job latency: min {seconds(latency.minimum)}  median {seconds(latency.median)}  "
            f"p95 {seconds(latency.p95)}  max {seconds(latency.maximum)}",
            f"  POST /bookings accepted: all within {seconds(self.accept_wall)}; each median "
            f"{millis(accept.median)}  p95 {millis(accept.p95)}  max {millis(accept.maximum)}",
        ]
        if self.peak_connections is not None:
            lines.append(f"  peak connections to the database (web + worker): {self.peak_connections}")
        lines += [f"  failure x{n}: {reason}" for reason, n in self.failure_reasons.most_common(5)]
        return "\n".join(lines)


async def _submit_all(web_url: str, jobs: int) -> list[tuple[float, float, str | None]]:
    """POST every brief at once; per brief: (sent at epoch, seconds to answer, job id or None if refused)."""
    limits = httpx.Limits(max_connections=jobs, max_keepalive_connections=jobs)
    async with httpx.AsyncClient(base_url=web_url, headers=HEADERS, timeout=120, limits=limits) as client:

        async def one(index: int) -> tuple[float, float, str | None]:
            sent, started = time.time(), time.perf_counter()
            try:
                response = await client.post("/bookings", json={"brief": make_brief(index), "auto_approve": True})
            except httpx.HTTPError as exc:
                log(f"POST {index} failed: {exc!r}")
                return sent, time.perf_counter() - started, None
            took = time.perf_counter() - started
            if response.status_code != 202:
                log(f"POST {index} answered {response.status_code}: {response.text[:200]}")
                return sent, took, None
            return sent, took, response.json()["job_id"]

        return await asyncio.gather(*(one(i) for i in range(jobs)))


def _statuses(client: httpx.Client, wanted: set[str]) -> dict[str, str]:
    """Status of every job in ``wanted``, read from the list endpoint a page at a time."""
    found: dict[str, str] = {}
    for offset in range(0, 100 * PAGE, PAGE):  # bounded: at most 100 pages
        page = client.get("/bookings", params={"limit": PAGE, "offset": offset})
        page.raise_for_status()
        jobs = page.json()["jobs"]
        found.update({j["job_id"]: j["status"] for j in jobs if j["job_id"] in wanted})
        if len(jobs) < PAGE or len(found) == len(wanted):
            break
    return found


def _wait_all(client: httpx.Client, wanted: set[str], *, timeout: float, poll_interval: float) -> None:
    """Poll the list endpoint until every job in ``wanted`` is terminal, or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while time.monotonic() < deadline:
        statuses = _statuses(client, wanted)
        done = sum(1 for s in statuses.values() if s in TERMINAL)
        if done == len(wanted):
            return
        if time.monotonic() - last_report > 5:
            log(f"concurrent: {done}/{len(wanted)} finished; {dict(Counter(statuses.values()))}")
            last_report = time.monotonic()
        time.sleep(poll_interval)
    log(f"concurrent: gave up after {timeout:.0f} s")


def run(
    backends: Backends, *, jobs: int = 100, workers: int = 2, timeout: float = 600, poll_interval: float = 0.25
) -> ConcurrentResult:
    result = ConcurrentResult(jobs, workers, backends.database, backends.broker)
    with running_stack(backends, tag="concurrent", workers=workers) as stack, api_client(stack) as client:
        warm = wait_terminal(client, submit(client, make_brief(-1)), poll_interval=0.1, timeout=120)
        if warm["status"] != "completed":
            raise RuntimeError(f"the warm-up brief ended {warm['status']}: {warm.get('failure_reason')}")

        log(f"concurrent: submitting {jobs} briefs at once")
        with ConnectionSampler(backends, max_seconds=timeout + 60) as connections:
            first_sent = time.time()
            submitted = asyncio.run(_submit_all(stack.web_url, jobs))
            result.accept_wall = max(sent + took for sent, took, _ in submitted) - first_sent
            result.accept_latencies = [took for _, took, job_id in submitted if job_id]
            sent_at = {job_id: sent for sent, _, job_id in submitted if job_id}
            result.rejected = jobs - len(sent_at)
            if result.rejected:
                log(f"concurrent: {result.rejected} POSTs refused; end of the web log:\n{log_tail(stack, 'web')}")
            _wait_all(client, set(sent_at), timeout=timeout, poll_interval=poll_interval)
        result.peak_connections = connections.peak

        finished_at: list[float] = []
        for job_id in sent_at:
            job: dict[str, Any] = client.get(f"/bookings/{job_id}").json()
            result.statuses[job["status"]] += 1
            if job["status"] in TERMINAL:
                finished = parse_time(job["updated_at"])
                finished_at.append(finished)
                result.job_latencies.append(finished - sent_at[job_id])
            if job["status"] != "completed" and job.get("failure_reason"):
                result.failure_reasons[job["failure_reason"][:200]] += 1
        if finished_at:
            result.wall = max(finished_at) - first_sent
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100, help="briefs submitted at once (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=600, help="give up waiting after this (s, default 600)")
    args = parser.parse_args(argv)
    if not 1 <= args.jobs <= 2000:
        parser.error("--jobs must be within 1..2000")
    handle_sigterm()
    with scratch_backends("concurrent") as backends:
        result = run(backends, jobs=args.jobs, workers=args.workers, timeout=args.timeout)
        print(result.report())
        print()
        print(markdown_table(["Benchmark", "Setup", "Result"], result.rows()))
        print(f"\nMachine: {machine_line(backends)}")
    return 0 if result.statuses["completed"] == args.jobs else 1


if __name__ == "__main__":
    raise SystemExit(main())
