"""The web process under wrk, as the performance issue measures it: ``wrk -t2 -c32 -d10s --latency`` on
127.0.0.1 against the stack that ``make run`` starts (Granian, the ASGI dispatcher, Django in threads), with
10,000 jobs in the database and the rate limit lifted for the load generator.

Routes: ``GET /health``; ``GET /bookings?limit=20``; ``GET /bookings/{id}`` of a job with 10 recommendations
and 10 deals; the dashboard's jobs page (a signed-in media buyer, 16 connections); MCP ``tools/call
list_bookings`` over Streamable HTTP. Also the web process group's idle RSS and its start-up to healthy.
Each route gets a warm-up of 3 s first. Prints a line per route and a Markdown table for the README.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/web_load.py [--jobs 10000] [--duration 10] [--web-workers 2]

Needs ``wrk`` (Debian: ``apt-get install wrk``). Database and broker follow DATABASE_URL / REDIS_URL as
described in bench/common.py (a scratch database, created and dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a file: make `bench` and `buyer` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_under_load import django_setup, seed_jobs
from bench.common import (
    API_KEY,
    HEADERS,
    Backends,
    handle_sigterm,
    log,
    machine_line,
    markdown_table,
    running_stack,
    scratch_backends,
    service_pgid,
)

PASSWORD = "bench-password-not-a-secret"
MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "list_bookings", "arguments": {}}}


@dataclass
class WrkResult:
    route: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str, *, route: str, connections: int, duration: float, headers: dict[str, str], body: str = ""
) -> WrkResult:
    """One wrk run (after a warm-up of 3 s), parsed."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration:.0f}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    script = None
    if body:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)  # noqa: SIM115 - removed below
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n')
        script.close()
        args += ["-s", script.name]
    try:
        warm = [*args[:3], "-d3s", *args[4:]]
        subprocess.run([*warm, url], capture_output=True, text=True, timeout=60, check=False)
        out = subprocess.run([*args, url], capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    finally:
        if script is not None:
            os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return WrkResult(route, connections, rps, p50, p99, non_2xx, errors)


def seed_detail_job(backends: Backends) -> str:
    """A job with 10 recommendations and 10 booked deals; returns its id."""
    django_setup(backends)
    from django.db import connections

    from campaigns.models import BookedDeal, BookingJob, Campaign, Recommendation

    campaign = Campaign.objects.create(
        name="Detail bench", budget_micros=100_000 * 1_000_000, start_date="2030-01-01", end_date="2030-01-31"
    )
    job = BookingJob.objects.create(campaign=campaign, status="completed", stage="done", progress=1.0)
    for n in range(10):
        line = Recommendation.objects.create(
            job=job, seller_name="Bench seller", seller_url="http://127.0.0.1:1", product_id=f"prod-{n}",
            product_name=f"Product {n}", channel="branding", inventory_type="display", deal_type="PD",
            impressions=100_000, base_cpm_micros=10_000_000, cpm_micros=10_000_000, cost_micros=1_000 * 1_000_000,
            status="booked", priority=n + 1, quote_id=f"qt-{n}",
        )  # fmt: skip
        BookedDeal.objects.create(
            job=job, recommendation=line, deal_id=f"BENCH-{n:04d}", product_id=line.product_id,
            product_name=line.product_name, channel="branding", deal_type="PD", impressions=100_000,
            cpm_micros=10_000_000, cost_micros=1_000 * 1_000_000, flight_start="2030-01-01", flight_end="2030-01-31",
        )  # fmt: skip
    connections.close_all()
    return str(job.pk)


def media_buyer_cookie(web_url: str, backends: Backends) -> str:
    """Sign a media buyer in through the login page; returns the Cookie header value."""
    django_setup(backends)
    from django.db import connections

    from buyer.accounts.models import Role
    from buyer.accounts.services import user_create

    user_create(username="bench", email="bench@example.com", password=PASSWORD, role=Role.MEDIA_BUYER)
    connections.close_all()
    with httpx.Client(base_url=web_url, timeout=30, follow_redirects=True) as client:
        client.get("/app/login/")
        token = client.cookies["csrftoken"]
        answer = client.post(
            "/app/login/", data={"username": "bench", "password": PASSWORD, "csrfmiddlewaretoken": token}
        )
        if "/app/login/" in str(answer.url):
            raise RuntimeError("the bench user could not sign in")
        return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


@dataclass
class Memory:
    """A process group's resident memory, in MiB: the sum of RSS (shared pages counted in every process), the
    sum of PSS (shared pages split between the processes that share them) and the largest single process."""

    rss: float
    pss: float
    largest: float
    processes: int

    def describe(self) -> str:
        return (
            f"{self.rss:.0f} MiB RSS summed over {self.processes} processes (PSS {self.pss:.0f} MiB); "
            f"largest process {self.largest:.0f} MiB"
        )


def group_memory(pgid: int) -> Memory:
    """Resident memory of every process in a process group (the server and its workers)."""
    rss, pss, sizes = 0, 0, []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            status = (entry / "status").read_text()
            rollup = (entry / "smaps_rollup").read_text()
        except (OSError, ProcessLookupError):
            continue
        resident = re.search(r"VmRSS:\s+(\d+) kB", status)
        proportional = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
        sizes.append(int(resident.group(1)) if resident else 0)
        pss += int(proportional.group(1)) if proportional else 0
    rss = sum(sizes)
    return Memory(rss=rss / 1024, pss=pss / 1024, largest=max(sizes, default=0) / 1024, processes=len(sizes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs to seed (default 10000)")
    parser.add_argument("--duration", type=float, default=10, help="seconds per route (default 10)")
    parser.add_argument("--web-workers", type=int, default=2, help="Granian worker processes (default 2)")
    parser.add_argument(
        "--only", default="", help="comma-separated words; run only the routes whose name holds one (e.g. bookings,mcp)"
    )
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        parser.error("needs wrk: apt-get install wrk")
    if not 1 <= args.jobs <= 1_000_000 or not 1 <= args.duration <= 120 or not 1 <= args.web_workers <= 16:
        parser.error("--jobs within 1..1000000, --duration within 1..120, --web-workers within 1..16")
    handle_sigterm()
    results: list[WrkResult] = []
    with scratch_backends("http") as backends:
        log(f"http: seeding {args.jobs:,} jobs")
        seed_jobs(backends, args.jobs)
        detail = seed_detail_job(backends)
        started = time.perf_counter()
        with running_stack(backends, tag="http", web_workers=args.web_workers) as stack:
            healthy_after = time.perf_counter() - started
            time.sleep(3)
            memory = group_memory(service_pgid(stack, "web"))
            log(f"http: healthy after {healthy_after:.2f} s; web idle memory: {memory.describe()}")
            cookie = media_buyer_cookie(stack.web_url, backends)
            mcp_headers = {
                **HEADERS,
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            }
            runs = [
                ("GET /health", "/health", 32, {}, ""),
                ("GET /bookings?limit=20", "/bookings?limit=20", 32, HEADERS, ""),
                ("GET /bookings/{id} (10 lines, 10 deals)", f"/bookings/{detail}", 32, HEADERS, ""),
                ("Dashboard jobs page (signed in)", "/app/", 16, {"Cookie": cookie}, ""),
                ("MCP tools/call list_bookings", "/mcp", 32, mcp_headers, json.dumps(MCP_CALL)),
            ]
            wanted = [word.strip().lower() for word in args.only.split(",") if word.strip()]
            runs = [run for run in runs if not wanted or any(word in run[0].lower() for word in wanted)]
            for route, path, connections, headers, body in runs:
                result = wrk(
                    stack.web_url + path, route=route, connections=connections, duration=args.duration,
                    headers=headers, body=body,
                )  # fmt: skip
                results.append(result)
                log(
                    f"http: {route}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                    f"non-2xx {result.non_2xx}, socket errors {result.errors}"
                )
        print()
        print(
            markdown_table(
                ["Route", "Load", "Result"],
                [
                    [
                        r.route,
                        f"wrk -t2 -c{r.connections} -d{args.duration:.0f}s, {args.web_workers} web workers",
                        f"{r.rps:,.0f} req/s · p50 {r.p50_ms:.1f} ms · p99 {r.p99_ms:.1f} ms"
                        + (f" · {r.non_2xx} non-2xx" if r.non_2xx else "")
                        + (f" · {r.errors} socket errors" if r.errors else ""),
                    ]
                    for r in results
                ]
                + [
                    ["Web start-up to healthy", "the whole stack started at once", f"{healthy_after:.2f} s"],
                    ["Web idle memory", f"{args.web_workers} workers and the server process", memory.describe()],
                ],
            )
        )
        print(f"\nMachine: {machine_line(backends)}; {args.jobs:,} jobs in the database; API key {API_KEY[:6]}…")
    return 1 if any(r.non_2xx or r.errors for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
