"""Runs the three benchmarks, each on its own fresh scratch database and broker, and prints their figures and
a markdown table for the README's performance section, with the machine they ran on.

1. latency.py           -- POST /bookings (auto_approve) to ``completed``, N sequential briefs.
2. concurrent_briefs.py -- N briefs at once on 2 Celery worker processes: wall time, jobs/min, latency.
3. api_under_load.py    -- GET /health and GET /bookings under concurrent load with 10,000 seeded jobs.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/run_all.py
    .venv/bin/python bench/run_all.py          # a SQLite file and the embedded broker, in a temporary directory

Options: --briefs 20 --jobs 100 --seed-jobs 10000 --concurrency 32 --duration 15 --web-workers 1,2
--only latency,concurrent,api. Environment variables: see bench/common.py. Takes about 5 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` and `buyer` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import api_under_load, concurrent_briefs, latency
from bench.common import (
    ENGINES,
    handle_sigterm,
    load_average,
    log,
    machine_line,
    markdown_table,
    scratch_backends,
)

PARTS = ("latency", "concurrent", "api")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--briefs", type=int, default=20, help="(1) sequential briefs (default 20)")
    parser.add_argument("--jobs", type=int, default=100, help="(2) briefs submitted at once (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="(1, 2) Celery worker processes (default 2)")
    parser.add_argument("--seed-jobs", type=int, default=10_000, help="(3) jobs seeded (default 10000)")
    parser.add_argument("--concurrency", type=int, default=32, help="(3) concurrent clients (default 32)")
    parser.add_argument("--duration", type=float, default=15, help="(3) seconds per endpoint (default 15)")
    parser.add_argument("--web-workers", default="1,2", help="(3) uvicorn worker counts (default 1,2)")
    parser.add_argument("--engine", choices=ENGINES, default="raw", help="(3) load generator client (default raw)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}")
    args = parser.parse_args(argv)
    only = [part.strip() for part in args.only.split(",") if part.strip()]
    web_workers = tuple(int(n) for n in args.web_workers.split(",") if n.strip())
    if set(only) - set(PARTS) or not only:
        parser.error(f"--only takes a subset of {', '.join(PARTS)}")
    if not 1 <= args.briefs <= 1000 or not 1 <= args.jobs <= 2000 or not 1 <= args.seed_jobs <= 1_000_000:
        parser.error("--briefs within 1..1000, --jobs within 1..2000, --seed-jobs within 1..1000000")
    if not 1 <= args.concurrency <= 512 or not 1 <= args.duration <= 300 or not web_workers:
        parser.error("--concurrency within 1..512, --duration within 1..300, --web-workers not empty")
    handle_sigterm()

    started = time.perf_counter()
    rows: list[list[str]] = []
    reports: list[str] = []
    loads: list[str] = []
    machine = ""
    if "latency" in only:
        log("(1) latency")
        with scratch_backends("latency") as backends:
            loads.append(load_average())
            result = latency.run(backends, briefs=args.briefs, workers=args.workers)
            machine = machine_line(backends)
        rows += result.rows()
        reports.append(result.report())
    if "concurrent" in only:
        log("(2) concurrent briefs")
        with scratch_backends("concurrent") as backends:
            loads.append(load_average())
            concurrent = concurrent_briefs.run(backends, jobs=args.jobs, workers=args.workers)
            machine = machine_line(backends)
        rows += concurrent.rows()
        reports.append(concurrent.report())
    if "api" in only:
        log("(3) API under load")
        with scratch_backends("api") as backends:
            loads.append(load_average())
            api = api_under_load.run(
                backends,
                jobs=args.seed_jobs,
                web_workers=web_workers,
                concurrency=args.concurrency,
                duration=args.duration,
                engine=args.engine,
            )
            machine = machine_line(backends)
        rows += api.rows()
        reports.append(api.report())

    print("\n\n".join(reports))
    print()
    print(markdown_table(["Benchmark", "Setup", "Result"], rows))
    print()
    print(
        f"Machine: {machine}. 1-minute load average when each benchmark started: {', '.join(loads)}. "
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `bench/run_all.py` ({time.perf_counter() - started:.0f} s)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
