"""Figure 1: latency of one brief, from ``POST /bookings`` with ``auto_approve: true`` to status ``completed``.

Starts a fresh stack (sandbox seller, web, a Celery worker with beat) on a scratch database, runs one warm-up
brief (not counted), then submits N briefs one after another. After each POST the job is polled with
``GET /bookings/{id}`` every 50 ms; its latency is the time from sending the POST to receiving the first
response that says ``completed``. Prints min / median / p95 / max, and the same from the server's own
timestamps (``created_at`` to the last ``updated_at``), which leaves out HTTP and the polling granularity.

    .venv/bin/python bench/latency.py [--briefs 20] [--workers 2] [--poll 0.05]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/latency.py

Database and broker follow DATABASE_URL / REDIS_URL as described in bench/common.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` and `buyer` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    Backends,
    Summary,
    api_client,
    handle_sigterm,
    log,
    machine_line,
    make_brief,
    markdown_table,
    parse_time,
    running_stack,
    scratch_backends,
    seconds,
    submit,
    wait_terminal,
)


@dataclass
class LatencyResult:
    briefs: int
    workers: int
    poll_interval: float
    database: str
    broker: str
    latencies: list[float] = field(default_factory=list)
    server_latencies: list[float] = field(default_factory=list)
    not_completed: dict[str, str] = field(default_factory=dict)
    warmup: float | None = None

    @property
    def summary(self) -> Summary:
        return Summary.of(self.latencies)

    def rows(self) -> list[list[str]]:
        s = self.summary
        return [
            [
                "Brief → `completed` (auto_approve), sequential",
                f"{self.briefs} briefs, {self.workers} Celery workers, poll every {self.poll_interval * 1000:.0f} ms;"
                f" {self.database}, {self.broker}",
                f"min {seconds(s.minimum)} · median {seconds(s.median)} · p95 {seconds(s.p95)} · "
                f"max {seconds(s.maximum)}"
                + (f" · {len(self.not_completed)} not completed" if self.not_completed else ""),
            ]
        ]

    def report(self) -> str:
        s, server = self.summary, Summary.of(self.server_latencies)
        lines = [
            f"Latency POST /bookings (auto_approve) -> completed, {self.briefs} sequential briefs "
            f"({self.database}; {self.broker}; {self.workers} Celery workers)",
            f"  client (poll {self.poll_interval * 1000:.0f} ms): min {seconds(s.minimum)}  median "
            f"{seconds(s.median)}  p95 {seconds(s.p95)}  max {seconds(s.maximum)}  (n={s.count})",
            f"  server created_at -> finished: min {seconds(server.minimum)}  median {seconds(server.median)}  "
            f"p95 {seconds(server.p95)}  max {seconds(server.maximum)}",
        ]
        if self.warmup is not None:
            lines.append(f"  warm-up brief (not counted): {seconds(self.warmup)}")
        for job_id, why in self.not_completed.items():
            lines.append(f"  NOT COMPLETED {job_id}: {why}")
        return "\n".join(lines)


def run(
    backends: Backends,
    *,
    briefs: int = 20,
    workers: int = 2,
    poll_interval: float = 0.05,
    job_timeout: float = 120,
    warmup: bool = True,
) -> LatencyResult:
    result = LatencyResult(briefs, workers, poll_interval, backends.database, backends.broker)
    with running_stack(backends, tag="latency", workers=workers) as stack, api_client(stack) as client:
        if warmup:
            started = time.perf_counter()
            job = wait_terminal(client, submit(client, make_brief(-1)), poll_interval=0.1, timeout=job_timeout)
            result.warmup = time.perf_counter() - started
            if job["status"] != "completed":
                raise RuntimeError(f"the warm-up brief ended {job['status']}: {job.get('failure_reason')}")
        for index in range(briefs):
            started = time.perf_counter()
            job_id = submit(client, make_brief(index))
            try:
                job = wait_terminal(client, job_id, poll_interval=poll_interval, timeout=job_timeout)
            except TimeoutError as exc:
                result.not_completed[job_id] = str(exc)
                continue
            took = time.perf_counter() - started
            if job["status"] != "completed":
                result.not_completed[job_id] = f"{job['status']}: {job.get('failure_reason')}"
                continue
            result.latencies.append(took)
            result.server_latencies.append(parse_time(job["updated_at"]) - parse_time(job["created_at"]))
            log(f"latency: brief {index + 1}/{briefs} completed in {took:.3f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--briefs", type=int, default=20, help="sequential briefs to time (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (default 2)")
    parser.add_argument("--poll", type=float, default=0.05, help="poll interval in seconds (default 0.05)")
    parser.add_argument("--job-timeout", type=float, default=120, help="give up on one job after this (s)")
    args = parser.parse_args(argv)
    if not 1 <= args.briefs <= 1000 or not 0.01 <= args.poll <= 5:
        parser.error("--briefs must be within 1..1000 and --poll within 0.01..5")
    handle_sigterm()
    with scratch_backends("latency") as backends:
        result = run(
            backends, briefs=args.briefs, workers=args.workers, poll_interval=args.poll, job_timeout=args.job_timeout
        )
        print(result.report())
        print()
        print(markdown_table(["Benchmark", "Setup", "Result"], result.rows()))
        print(f"\nMachine: {machine_line(backends)}")
    return 1 if result.not_completed else 0


if __name__ == "__main__":
    raise SystemExit(main())
