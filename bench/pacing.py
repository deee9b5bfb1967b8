"""Pacing benchmarks: a snapshot run over many active campaigns, and reading delivery from several sellers.

1. snapshot -- CAMPAIGNS campaigns x DEALS deals (default 10,000 x 5), every deal with a delivery reading, then
   timed pacing runs (``snapshot_take``: deal, channel and campaign rows in SQL, alerts, proposals). The first
   run opens the alerts, the next ones update them: both are reported.
2. ingest   -- READ_DEALS deals (default 50,000) booked at SELLERS sandbox sellers (default 5), then one
   scheduled delivery read through real Celery worker processes on the pacing queue: deals per second and the
   peak number of PostgreSQL connections.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/pacing.py [--campaigns 10000 --deals 5 --read-deals 50000 --sellers 5]

Scratch database and broker as in bench/common.py; everything on 127.0.0.1, every loop bounded.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a file: make `bench` and `buyer` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.api_under_load import django_setup
from bench.common import (
    BASE_DIR,
    ConnectionSampler,
    Service,
    free_port,
    handle_sigterm,
    load_average,
    log,
    machine_line,
    markdown_table,
    scratch_backends,
)

CHANNELS = ("branding", "ctv", "mobile_app", "performance", "social")
PACES = (0.6, 0.85, 1.0, 1.0, 1.0, 1.15, 1.4)  # some deals off pace, most on it


@dataclass
class SnapshotResult:
    campaigns: int
    deals: int
    runs: list[dict] = field(default_factory=list)
    database: str = ""

    def rows(self) -> list[list[str]]:
        first, later = self.runs[0], self.runs[1:]
        steady = min(r["seconds"] for r in later) if later else first["seconds"]
        return [
            [
                f"Pacing snapshot, {self.campaigns:,} active campaigns x {self.deals // self.campaigns} deals",
                f"one run: deal, channel and campaign rows in SQL, alerts, proposals; {self.database}",
                f"first run {first['seconds']:.2f} s ({first['rows']:,} rows, {first['alerts']:,} alerts opened, "
                f"{first['proposals']:,} proposals) · next runs {steady:.2f} s",
            ]
        ]


@dataclass
class IngestResult:
    deals: int
    sellers: int
    seconds: float
    stored: int
    failed: int
    peak_connections: int | None
    workers: int
    database: str = ""

    def rows(self) -> list[list[str]]:
        connections = f" · peak {self.peak_connections} PostgreSQL connections" if self.peak_connections else ""
        return [
            [
                f"Delivery read, {self.deals:,} deals at {self.sellers} sandbox sellers",
                f"{self.workers} Celery worker processes on the pacing queue; {self.database}",
                f"{self.seconds:.1f} s · {self.deals / self.seconds:,.0f} deals/s · {self.stored:,} stored, "
                f"{self.failed:,} failed{connections}",
            ]
        ]


# --- 1. snapshot -------------------------------------------------------------------------------------------


def seed_campaigns(campaigns: int, deals_per: int, *, seed: int = 7) -> int:
    """Completed jobs with booked deals and a delivery reading each, mid-flight; returns the deal count."""
    from django.db import connection, transaction
    from django.utils import timezone

    from buyer.sellers.models import Seller
    from campaigns.models import BookedDeal, BookingJob, Campaign, DealStatus, JobStage, JobStatus, Recommendation
    from pacing.models import DealDelivery

    rng = random.Random(seed)
    now = timezone.now()
    seller = Seller.objects.create(name="Bench seller", base_url=f"http://127.0.0.1:9/{uuid.uuid4().hex}")
    made = 0
    for start in range(0, campaigns, 500):
        batch = range(start, min(campaigns, start + 500))
        camps, jobs, recs, deals, deliveries = [], [], [], [], []
        for index in batch:
            flight_start = (now - timedelta(days=rng.randrange(1, 29))).date()
            flight_end = flight_start + timedelta(days=29)
            cost = rng.randrange(1_000, 50_000) * 1_000_000
            channels = [CHANNELS[i % len(CHANNELS)] for i in range(deals_per)]
            campaign = Campaign(
                name=f"Bench campaign {index}",
                objectives=["reach"],
                budget_micros=cost * deals_per,
                start_date=flight_start,
                end_date=flight_end,
                channels=sorted(set(channels)),
                brief={},
            )
            job = BookingJob(
                campaign=campaign,
                status=JobStatus.COMPLETED,
                stage=JobStage.DONE,
                progress=1.0,
                budget_allocations={
                    c: {"channel": c, "budget": str(cost // 1_000_000 * channels.count(c))} for c in set(channels)
                },
            )
            camps.append(campaign)
            jobs.append(job)
            elapsed = (now - datetime.combine(flight_start, datetime.min.time(), tzinfo=UTC)) / timedelta(days=30)
            for n, channel in enumerate(channels):
                rec = Recommendation(
                    job=job,
                    seller=seller,
                    seller_name=seller.name,
                    seller_url=seller.base_url,
                    product_id=f"p-{index}-{n}",
                    product_name="Bench product",
                    channel=channel,
                    inventory_type="display",
                    deal_type="PD",
                    impressions=cost // 10_000,
                    base_cpm_micros=10_000_000,
                    cpm_micros=10_000_000,
                    cost_micros=cost,
                    quote_id=f"q-{index}-{n}",
                    priority=n + 1,
                    rationale="bench",
                    status="booked",
                )
                recs.append(rec)
                deal = BookedDeal(
                    recommendation=rec,
                    job=job,
                    seller=seller,
                    seller_url=seller.base_url,
                    deal_id=f"BENCH-{index}-{n}",
                    quote_id=rec.quote_id,
                    product_id=rec.product_id,
                    product_name=rec.product_name,
                    channel=channel,
                    deal_type="PD",
                    impressions=rec.impressions,
                    cpm_micros=rec.cpm_micros,
                    cost_micros=cost,
                    flight_start=flight_start,
                    flight_end=flight_end,
                    status=DealStatus.DELIVERING,
                )
                deals.append(deal)
                spend = int(cost * min(elapsed, 1) * rng.choice(PACES))
                deliveries.append(
                    DealDelivery(deal=deal, impressions=spend // 10_000, spend_micros=spend, as_of=now, checked_at=now)
                )
        with transaction.atomic():
            Campaign.objects.bulk_create(camps)
            BookingJob.objects.bulk_create(jobs)
            Recommendation.objects.bulk_create(recs)
            BookedDeal.objects.bulk_create(deals)
            DealDelivery.objects.bulk_create(deliveries)
        made += len(deals)
        if start % 2500 == 0:
            log(f"  seeded {start + len(batch):,} campaigns")
    # Booked before their flights (auto_now_add stamped them now, which would put every deal in its grace period
    # and leave the alert and reallocation phases nothing to do).
    BookedDeal.objects.filter(deal_id__startswith="BENCH-").update(booked_at=now - timedelta(days=30))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return made


def run_snapshot(backends, *, campaigns: int, deals_per: int, runs: int = 3) -> SnapshotResult:  # type: ignore[no-untyped-def]
    django_setup(backends)
    from pacing.models import PacingSnapshot
    from pacing.snapshots import snapshot_run_create, snapshot_take

    deals = seed_campaigns(campaigns, deals_per)
    result = SnapshotResult(campaigns, deals, database=backends.database)
    for number in range(runs):
        run = snapshot_run_create()
        started = time.perf_counter()
        run = snapshot_take(run=run)
        seconds = time.perf_counter() - started
        rows = PacingSnapshot.objects.filter(run=run).count()
        result.runs.append({"seconds": seconds, "rows": rows, "alerts": run.alerts_opened, "proposals": run.proposals})
        log(f"  run {number + 1}: {seconds:.2f} s, {rows:,} rows, {run.alerts_opened:,} alerts opened")
    return result


# --- 2. ingest ---------------------------------------------------------------------------------------------


def _sandbox(port: int, log_dir: Path) -> Service:
    argv = [sys.executable, "-m", "buyer.sandbox", "--port", str(port), "--log-level", "warning"]
    argv += ["--delivery-profile", "*=on_pace"]
    service = Service(f"sandbox-{port}", argv, {}, log_dir / f"sandbox-{port}.log")
    import os

    service.env = dict(os.environ)
    return service


def _book_at(url: str, count: int, start: datetime) -> list[tuple[str, str, int]]:
    """``count`` deals at one sandbox over HTTP: (deal id, product id, impressions)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        products = client.get("/products", params={"limit": 500}).json()["products"]
    product = next(p for p in products if p["base_price"] and "PD" in p["ext"]["deal_types"])
    impressions = max(product["ext"]["minimum_impressions"], 100_000)
    body = {
        "product_id": product["product_id"],
        "deal_type": "PD",
        "impressions": impressions,
        "flight_start": start.date().isoformat(),
        "flight_end": (start.date() + timedelta(days=29)).isoformat(),
    }

    def post(client: httpx.Client, path: str, payload: dict) -> dict:
        # Idempotency keys make a retry safe; a kept-alive connection the server closed is worth one.
        for attempt in range(3):
            try:
                return client.post(path, json=payload).json()
            except httpx.TransportError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def book(index: int, client: httpx.Client) -> tuple[str, str, int]:
        quote = post(client, "/api/v1/quotes", {**body, "idempotency_key": f"q-{index}"})["quote"]
        deal = post(client, "/api/v1/deals", {"idempotency_key": f"d-{index}", "quote_id": quote["quote_id"]})
        return deal["deal"]["deal_id"], product["product_id"], impressions

    clients = [httpx.Client(base_url=url, timeout=30) for _ in range(8)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda i: book(i, clients[i % 8]), range(count)))
    finally:
        for client in clients:
            client.close()


def run_ingest(backends, *, deals: int, sellers: int, workers: int = 2) -> IngestResult:  # type: ignore[no-untyped-def]
    import os

    os.environ.update(backends.broker_env)  # this process sends the first task to the workers' broker
    django_setup(backends)
    from django.db import transaction
    from django.utils import timezone

    from buyer.celery import app
    from buyer.sellers.models import Seller
    from campaigns.models import BookedDeal, BookingJob, Campaign, DealStatus, JobStage, JobStatus, Recommendation
    from pacing.models import DealDelivery

    log_dir = backends.workdir / "logs-ingest"
    log_dir.mkdir(parents=True, exist_ok=True)
    sandboxes = [_sandbox(free_port(), log_dir) for _ in range(sellers)]
    queue = f"bench-pacing-{uuid.uuid4().hex[:8]}"
    env = {**backends.process_env(), "CELERY_PACING_QUEUE": queue, "LOG_LEVEL": "WARNING", "ENVIRONMENT": "testing"}
    import os

    worker = Service(
        "worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "buyer",
            "worker",
            "-Q",
            queue,
            "--concurrency",
            str(workers),
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        {**os.environ, **env},
        log_dir / "worker.log",
    )
    try:
        for sandbox in sandboxes:
            sandbox.start()
        urls = [f"http://127.0.0.1:{s.argv[s.argv.index('--port') + 1]}" for s in sandboxes]
        for url in urls:
            for _ in range(100):
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
        start = timezone.now() - timedelta(days=5)
        per_seller = deals // sellers
        log(f"  booking {per_seller * sellers:,} deals at {sellers} sandbox sellers")
        booked = {}
        with ThreadPoolExecutor(max_workers=sellers) as pool:
            for url, made in zip(urls, pool.map(lambda u: _book_at(u, per_seller, start), urls), strict=True):
                booked[url] = made
        for url, made in booked.items():
            seller = Seller.objects.create(name=url, base_url=url, max_concurrency=8)
            campaign = Campaign.objects.create(
                name=f"Bench {url}",
                objectives=["reach"],
                budget_micros=10**15,
                start_date=start.date(),
                end_date=start.date() + timedelta(days=29),
                brief={},
            )
            job = BookingJob.objects.create(campaign=campaign, status=JobStatus.COMPLETED, stage=JobStage.DONE)
            for offset in range(0, len(made), 2000):
                recs, rows = [], []
                for deal_id, product_id, impressions in made[offset : offset + 2000]:
                    rec = Recommendation(
                        job=job,
                        seller=seller,
                        seller_name=url,
                        seller_url=url,
                        product_id=deal_id,
                        product_name="Bench",
                        channel="branding",
                        inventory_type="display",
                        deal_type="PD",
                        impressions=impressions,
                        base_cpm_micros=10_000_000,
                        cpm_micros=10_000_000,
                        cost_micros=impressions * 10_000,
                        quote_id=deal_id,
                        priority=1,
                        rationale="bench",
                        status="booked",
                    )
                    recs.append(rec)
                    rows.append(
                        BookedDeal(
                            recommendation=rec,
                            job=job,
                            seller=seller,
                            seller_url=url,
                            deal_id=deal_id,
                            quote_id=deal_id,
                            product_id=product_id,
                            product_name="Bench",
                            channel="branding",
                            deal_type="PD",
                            impressions=impressions,
                            cpm_micros=10_000_000,
                            cost_micros=impressions * 10_000,
                            flight_start=start.date(),
                            flight_end=start.date() + timedelta(days=29),
                            status=DealStatus.BOOKED,
                        )
                    )
                with transaction.atomic():
                    Recommendation.objects.bulk_create(recs)
                    BookedDeal.objects.bulk_create(rows)
        total = BookedDeal.objects.count()
        worker.start()
        time.sleep(3)  # let the worker connect before the clock starts
        log(f"  reading delivery of {total:,} deals")
        began = timezone.now()
        started = time.perf_counter()
        with ConnectionSampler(backends) as sampler:
            app.send_task("pacing.tasks.read_delivery", queue=queue)
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                done = DealDelivery.objects.filter(checked_at__gte=began).count()
                if done >= total:
                    break
                if not worker.alive():
                    raise RuntimeError("the worker exited; see " + str(log_dir / "worker.log"))
                time.sleep(0.25)
            seconds = time.perf_counter() - started
        stored = DealDelivery.objects.filter(checked_at__gte=began, error="").count()
        failed = DealDelivery.objects.filter(checked_at__gte=began).exclude(error="").count()
        return IngestResult(total, sellers, seconds, stored, failed, sampler.peak, workers, backends.database)
    finally:
        worker.stop()
        for sandbox in sandboxes:
            sandbox.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--campaigns", type=int, default=10_000)
    parser.add_argument("--deals", type=int, default=5, help="deals per campaign (default 5)")
    parser.add_argument("--read-deals", type=int, default=50_000)
    parser.add_argument("--sellers", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", default="snapshot,ingest")
    args = parser.parse_args(argv)
    if not 1 <= args.campaigns <= 200_000 or not 1 <= args.deals <= 20 or not 1 <= args.read_deals <= 500_000:
        parser.error("--campaigns within 1..200000, --deals within 1..20, --read-deals within 1..500000")
    if not 1 <= args.sellers <= 20 or not 1 <= args.workers <= 16:
        parser.error("--sellers within 1..20, --workers within 1..16")
    handle_sigterm()
    parts = [part.strip() for part in args.only.split(",") if part.strip()]
    if set(parts) - {"snapshot", "ingest"} or not parts:
        parser.error("--only takes snapshot, ingest or both")
    if len(parts) > 1:
        # Django is set up once per process, on one scratch database: each part runs in its own process.
        import subprocess

        for part in parts:
            rest = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--only")]
            subprocess.run([sys.executable, __file__, *rest, "--only", part], check=True, cwd=BASE_DIR)
        return 0
    rows: list[list[str]] = []
    with scratch_backends(f"pacing-{parts[0]}") as backends:
        load = load_average()
        if parts[0] == "snapshot":
            log("(1) pacing snapshot")
            rows += run_snapshot(backends, campaigns=args.campaigns, deals_per=args.deals).rows()
        else:
            log("(2) delivery ingestion")
            rows += run_ingest(backends, deals=args.read_deals, sellers=args.sellers, workers=args.workers).rows()
        machine = machine_line(backends)
        from django.db import connections

        connections.close_all()  # before the scratch database is dropped
    print(markdown_table(["Benchmark", "Setup", "Result"], rows))
    print(f"\nMachine: {machine}. 1-minute load average at start: {load}. Measured {datetime.now(UTC):%Y-%m-%d}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
