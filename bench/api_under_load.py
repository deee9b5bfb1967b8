"""Figure 3: ``GET /health``, ``GET /bookings?limit=20`` and ``GET /bookings?status=awaiting_approval`` under
concurrent load, with 10,000 jobs in the database.

Seeds the scratch database directly through the Django ORM in this process (``bulk_create`` of Campaign and
BookingJob rows in batches; statuses mixed: completed 55 %, awaiting_approval 20 %, failed 12 %, cancelled 8 %,
running 5 %; ``created_at`` spread over 90 days; then ``ANALYZE`` on PostgreSQL). Running jobs carry a lease a
day long and awaiting ones an approval window in the future, so the sweeper leaves them alone and the worker
stays idle. Then, for each web (Granian) worker count in ``--web-workers`` (default 1 and 2), starts the stack and
drives each endpoint with ``--concurrency`` clients (default 32) back to back for ``--duration`` seconds
(default 15, after a 2 s warm-up), capped at ``--max-requests`` per endpoint. Prints requests/s (successful),
median and p95 latency, and the error count. The load generator runs on the same machine, on 127.0.0.1; by
default it is a minimal asyncio HTTP/1.1 client (``--engine httpx`` uses httpx.AsyncClient, which on a small
machine becomes the bottleneck itself), and a last run against a no-op ASGI app shows its ceiling.

    .venv/bin/python bench/api_under_load.py [--jobs 10000] [--concurrency 32] [--duration 15] [--web-workers 1,2]
        [--engine raw|httpx]
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/api_under_load.py

Database and broker follow DATABASE_URL / REDIS_URL as described in bench/common.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a file: make `bench` and `buyer` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    ENGINES,
    HEADERS,
    Backends,
    ConnectionSampler,
    LoadResult,
    calibrate,
    handle_sigterm,
    log,
    machine_line,
    markdown_table,
    millis,
    process_group_cpu,
    run_load,
    running_stack,
    scratch_backends,
    service_pgid,
)

STATUS_MIX = {"completed": 55, "awaiting_approval": 20, "failed": 12, "cancelled": 8, "running": 5}
STAGE_OF = {
    "completed": "done",
    "failed": "done",
    "cancelled": "done",
    "awaiting_approval": "approval",
    "running": "book",
}
ENDPOINTS = ("/health", "/bookings?limit=20", "/bookings?status=awaiting_approval&limit=20")
CHANNELS = ["branding", "ctv", "performance", "mobile_app", "social", "display", "video", "native"]


@dataclass
class ApiLoadResult:
    database: str
    broker: str
    concurrency: int
    duration: float
    seeded: Counter[str] = field(default_factory=Counter)
    engine: str = "raw"
    seed_seconds: float = 0.0
    runs: list[tuple[int, str, LoadResult]] = field(default_factory=list)
    calibration: LoadResult | None = None

    def rows(self) -> list[list[str]]:
        rows = []
        for web_workers, path, load in self.runs:
            s = load.summary
            rows.append(
                [
                    f"`GET {path}`, {sum(self.seeded.values()):,} jobs in the database",
                    f"{self.concurrency} concurrent clients x {self.duration:.0f} s, {web_workers} Granian "
                    f"worker{'s' if web_workers > 1 else ''}; {self.database}",
                    f"{load.rps:,.0f} req/s · median {millis(s.median)} · p95 {millis(s.p95)} · {load.errors} errors"
                    f" · web CPU {millis(load.server_cpu_per_request)}/req",
                ]
            )
        if self.calibration is not None:
            s = self.calibration.summary
            rows.append(
                [
                    "Load generator ceiling: no-op ASGI app",
                    f"same clients and machine, 1 uvicorn worker, {self.engine} HTTP/1.1 client",
                    f"{self.calibration.rps:,.0f} req/s · median {millis(s.median)} · p95 {millis(s.p95)}",
                ]
            )
        return rows

    def report(self) -> str:
        total = sum(self.seeded.values())
        lines = [
            f"API under load: {total:,} jobs seeded in {self.seed_seconds:.1f} s ({dict(self.seeded)}); "
            f"{self.concurrency} clients x {self.duration:.0f} s per endpoint ({self.database}; {self.broker})",
        ]
        for web_workers, path, load in self.runs:
            s = load.summary
            lines.append(
                f"  web_workers={web_workers}  GET {path:<46} {load.rps:8.1f} req/s  median {millis(s.median):>9}  "
                f"p95 {millis(s.p95):>9}  max {millis(s.maximum):>9}  errors {load.errors}  "
                f"web CPU {millis(load.server_cpu_per_request)}/req  peak DB connections {load.peak_connections}  "
                f"(n={load.ok}, load generator used {load.generator_cpu:.0%} of a core)"
            )
            if load.errors:
                lines.append(f"      outcomes {dict(load.outcomes)}")
        if self.calibration is not None:
            c = self.calibration
            lines.append(
                f"  generator ceiling ({c.engine} client vs a no-op ASGI app): {c.rps:.1f} req/s  median "
                f"{millis(c.summary.median)}  p95 {millis(c.summary.p95)}  "
                f"(generator used {c.generator_cpu:.0%} of a core)"
            )
        return "\n".join(lines)


# --- Seeding -----------------------------------------------------------------------------------------------


def django_setup(backends: Backends) -> None:
    """Point this process's Django at the scratch database (and nothing else) and set it up."""
    os.environ["DATABASE_URL"] = backends.database_url
    os.environ["BUYER_VAR_DIR"] = str(backends.workdir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")
    import django
    from django.conf import settings

    django.setup()
    configured = settings.DATABASES["default"]["NAME"]
    expected = backends.database_url.rsplit("/", 1)[-1]
    if not str(configured).endswith(expected):
        raise RuntimeError(f"Django points at {configured!r}, not the scratch database {expected!r}; not seeding")


@contextlib.contextmanager
def explicit_timestamps(*models: Any) -> Iterator[None]:
    """Let bulk_create keep the given created_at / updated_at instead of stamping 'now' on every row."""
    saved = []
    for model in models:
        for field_ in model._meta.concrete_fields:
            if getattr(field_, "auto_now", False) or getattr(field_, "auto_now_add", False):
                saved.append((field_, field_.auto_now, field_.auto_now_add))
                field_.auto_now = field_.auto_now_add = False
    try:
        yield
    finally:
        for field_, auto_now, auto_now_add in saved:
            field_.auto_now, field_.auto_now_add = auto_now, auto_now_add


def seed_jobs(backends: Backends, count: int, *, batch_size: int = 1000, seed: int = 42) -> Counter[str]:
    """Insert ``count`` campaigns with one job each, statuses mixed, in batches; returns jobs per status."""
    django_setup(backends)
    from django.db import connection, connections, transaction
    from django.utils import timezone

    from campaigns.models import BookingJob, Campaign

    rng = random.Random(seed)
    statuses, weights = list(STATUS_MIX), list(STATUS_MIX.values())
    now = timezone.now()
    seeded: Counter[str] = Counter()
    with explicit_timestamps(Campaign, BookingJob):
        for start in range(0, count, batch_size):
            campaigns, jobs = [], []
            for index in range(start, min(count, start + batch_size)):
                created = now - timedelta(seconds=rng.uniform(60, 90 * 86400))
                status = rng.choices(statuses, weights)[0]
                flight_start = created.date() + timedelta(days=rng.randrange(7, 60))
                channels = rng.sample(CHANNELS, rng.randrange(1, 4))
                budget = rng.randrange(5_000, 500_000)
                brief = {
                    "name": f"Seeded campaign {index}",
                    "objectives": ["brand awareness", "reach"],
                    "budget": budget,
                    "start_date": flight_start.isoformat(),
                    "end_date": (flight_start + timedelta(days=30)).isoformat(),
                    "channels": channels,
                }
                campaign = Campaign(
                    name=brief["name"],
                    objectives=brief["objectives"],
                    budget_micros=budget * 1_000_000,
                    start_date=flight_start,
                    end_date=flight_start + timedelta(days=30),
                    target_audience={"age": "25-54", "geo": ["US"]},
                    kpis={"max_cpm_usd": 45},
                    channels=channels,
                    brief=brief,
                    created_at=created,
                )
                finished = created + timedelta(seconds=rng.uniform(0.5, 30))
                terminal = status in {"completed", "failed", "cancelled"}
                jobs.append(
                    BookingJob(
                        campaign=campaign,
                        status=status,
                        stage=STAGE_OF[status],
                        auto_approve=rng.random() < 0.3,
                        progress={"completed": 1.0, "awaiting_approval": 0.85, "running": 0.9}.get(status, 0.35),
                        failure_reason={"failed": "No seller returned a usable quote.", "cancelled": "Cancelled."}.get(
                            status, ""
                        ),
                        # Keeps the sweeper away: a live lease, an approval window that has not expired.
                        lease_expires_at=now + timedelta(days=1) if status == "running" else None,
                        approval_expires_at=now + timedelta(hours=72) if status == "awaiting_approval" else None,
                        created_at=created,
                        updated_at=finished if terminal else now,
                        finished_at=finished if terminal else None,
                    )
                )
                campaigns.append(campaign)
                seeded[status] += 1
            with transaction.atomic():
                Campaign.objects.bulk_create(campaigns)
                BookingJob.objects.bulk_create(jobs)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Campaign._meta.db_table}, {BookingJob._meta.db_table}")
    connections.close_all()
    return seeded


# --- Load --------------------------------------------------------------------------------------------------


def _check(web_url: str, seeded: Counter[str]) -> None:
    """The API sees the seeded jobs (a wrong database would make the figures meaningless)."""
    with httpx.Client(base_url=web_url, headers=HEADERS, timeout=30) as client:
        total = client.get("/bookings", params={"limit": 20}).json()["total"]
        waiting = client.get("/bookings", params={"limit": 20, "status": "awaiting_approval"}).json()["total"]
    if total != sum(seeded.values()) or waiting != seeded["awaiting_approval"]:
        raise RuntimeError(f"GET /bookings sees {total} jobs ({waiting} awaiting approval); seeded {dict(seeded)}")


def run(
    backends: Backends,
    *,
    jobs: int = 10_000,
    web_workers: tuple[int, ...] = (1, 2),
    concurrency: int = 32,
    duration: float = 15,
    warmup: float = 2,
    max_requests: int = 300_000,
    engine: str = "raw",
    calibrate_generator: bool = True,
) -> ApiLoadResult:
    result = ApiLoadResult(backends.database, backends.broker, concurrency, duration, engine)
    log(f"api: seeding {jobs:,} jobs")
    started = time.perf_counter()
    result.seeded = seed_jobs(backends, jobs)
    result.seed_seconds = time.perf_counter() - started
    log(f"api: seeded in {result.seed_seconds:.1f} s: {dict(result.seeded)}")
    for count in web_workers:
        with running_stack(backends, tag=f"api-{count}", web_workers=count) as stack:
            _check(stack.web_url, result.seeded)
            for path in ENDPOINTS:
                url = stack.web_url + path
                run_load(url, concurrency=concurrency, duration=warmup, max_requests=max_requests, engine=engine)
                web = service_pgid(stack, "web")
                cpu = process_group_cpu(web)
                with ConnectionSampler(backends, interval=0.1, max_seconds=duration + 30) as connections:
                    load = run_load(
                        url, concurrency=concurrency, duration=duration, max_requests=max_requests, engine=engine
                    )
                load.server_cpu = process_group_cpu(web) - cpu
                load.peak_connections = connections.peak
                result.runs.append((count, path, load))
                log(
                    f"api: web_workers={count} GET {path}: {load.rps:.0f} req/s, "
                    f"p95 {millis(load.summary.p95)}, {load.errors} errors"
                )
    if calibrate_generator:
        result.calibration = calibrate(concurrency=concurrency, duration=min(duration, 5), engine=engine)
        log(f"api: load generator ceiling {result.calibration.rps:.0f} req/s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs to seed (default 10000)")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--duration", type=float, default=15, help="seconds per endpoint (default 15)")
    parser.add_argument("--max-requests", type=int, default=300_000, help="cap per endpoint (default 300000)")
    parser.add_argument("--web-workers", default="1,2", help="Granian worker counts to try (default 1,2)")
    parser.add_argument("--engine", choices=ENGINES, default="raw", help="load generator HTTP client (default raw)")
    parser.add_argument("--no-calibrate", action="store_true", help="skip the generator's no-op ceiling run")
    args = parser.parse_args(argv)
    web_workers = tuple(int(n) for n in args.web_workers.split(",") if n.strip())
    if not 1 <= args.jobs <= 1_000_000 or not 1 <= args.concurrency <= 512 or not 1 <= args.duration <= 300:
        parser.error("--jobs within 1..1000000, --concurrency within 1..512, --duration within 1..300")
    if not web_workers or not all(1 <= n <= 16 for n in web_workers):
        parser.error("--web-workers: comma-separated counts within 1..16")
    handle_sigterm()
    with scratch_backends("api") as backends:
        result = run(
            backends,
            jobs=args.jobs,
            web_workers=web_workers,
            concurrency=args.concurrency,
            duration=args.duration,
            max_requests=args.max_requests,
            engine=args.engine,
            calibrate_generator=not args.no_calibrate,
        )
        print(result.report())
        print()
        print(markdown_table(["Benchmark", "Setup", "Result"], result.rows()))
        print(f"\nMachine: {machine_line(backends)}")
    return 1 if any(load.errors for _, _, load in result.runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
