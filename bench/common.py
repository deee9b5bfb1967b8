"""Shared helpers for the benchmarks: a scratch database and broker, a stack of real processes on them,
briefs, percentiles, a bounded async HTTP load generator and a description of the machine.

Environment (all optional):

    DATABASE_URL   postgresql://postgres@127.0.0.1:5432/postgres -- the benchmarks drop and recreate a scratch
                   database (BENCH_DATABASE, default ``bench_buyer``) on that server and never touch the one
                   named in the URL. Unset: a SQLite file in a temporary directory.
    REDIS_URL      redis://127.0.0.1:6379/0 -- the broker is database BENCH_REDIS_DB (default 9) of that server,
                   flushed first. Unset: the embedded broker (kombu's SQLAlchemy transport on a SQLite file).
    DATABASE_POOL  passed through to the processes (psycopg's connection pool on PostgreSQL).
    BENCH_KEEP=1   keep the scratch database and the temporary directory (process logs) afterwards.

Everything listens on and talks to 127.0.0.1; database and Redis hosts must be loopback too.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

BASE_DIR = Path(__file__).resolve().parent.parent
if str(BASE_DIR) not in sys.path:
    sys.path.insert(0, str(BASE_DIR))

from buyer.stack import Service, Stack, build_stack  # noqa: E402

API_KEY = f"bench-{secrets.token_urlsafe(16)}"
HEADERS = {"X-API-Key": API_KEY}
TERMINAL = frozenset({"completed", "failed", "cancelled"})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
SCRATCH_DATABASE = os.environ.get("BENCH_DATABASE", "bench_buyer")
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "9"))
KEEP = os.environ.get("BENCH_KEEP", "").lower() in {"1", "true", "yes"}
# Read once: the seeding benchmark later points os.environ["DATABASE_URL"] at the scratch database itself.
CONFIGURED_DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
CONFIGURED_REDIS_URL = os.environ.get("REDIS_URL", "").strip()


def log(message: str) -> None:
    """Progress goes to stderr, so stdout carries only the figures."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- Scratch database and broker ---------------------------------------------------------------------------


@dataclass
class Backends:
    """Where a benchmark's processes keep their state, and how to describe it in a report."""

    workdir: Path
    database_url: str
    database: str
    broker: str
    broker_env: dict[str, str]
    admin_database_url: str | None = None
    redis_url: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.admin_database_url is not None

    def process_env(self) -> dict[str, str]:
        """What every process of the stack (and ``migrate``) needs to use these backends."""
        return {"DATABASE_URL": self.database_url, "BUYER_VAR_DIR": str(self.workdir), **self.broker_env}

    def teardown(self) -> None:
        """Drop the scratch database and empty the broker's Redis database."""
        if self.admin_database_url:
            _drop_postgres(self.admin_database_url, SCRATCH_DATABASE)
        if self.redis_url:
            import redis

            with contextlib.closing(redis.Redis.from_url(self.redis_url)) as client:
                client.flushdb()


def _require_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname
    if host is not None and host not in LOOPBACK:
        raise SystemExit(f"{what} must point at 127.0.0.1: the benchmarks stay on this machine (got {host!r}).")


def _libpq_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def _drop_postgres(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _recreate_postgres(admin_url: str, name: str) -> tuple[str, str]:
    """Drop and create the scratch database; returns its URL and the server version."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(admin_url)
    if parts.path.lstrip("/") == name:
        raise SystemExit(f"DATABASE_URL names the scratch database {name!r} itself; point it at another (postgres).")
    with psycopg.connect(_libpq_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        row = conn.execute("SHOW server_version").fetchone()
    version = str(row[0]).split()[0] if row else "?"
    return urlunsplit(parts._replace(path="/" + name)), version


def prepare_backends(workdir: Path) -> Backends:
    """A fresh, migrated scratch database and an empty broker, chosen from DATABASE_URL / REDIS_URL."""
    pool = os.environ.get("DATABASE_POOL", "").lower() in {"1", "true", "yes", "on"}
    admin_url: str | None = None
    if CONFIGURED_DATABASE_URL.startswith(("postgres://", "postgresql://", "pgsql://", "psql://")):
        _require_loopback(CONFIGURED_DATABASE_URL, "DATABASE_URL")
        admin_url = CONFIGURED_DATABASE_URL
        database_url, version = _recreate_postgres(admin_url, SCRATCH_DATABASE)
        database = f"PostgreSQL {version}" + (" (psycopg pool)" if pool else "")
    elif CONFIGURED_DATABASE_URL and not CONFIGURED_DATABASE_URL.startswith("sqlite"):
        raise SystemExit(f"DATABASE_URL must be postgresql://... or unset, got {CONFIGURED_DATABASE_URL!r}.")
    else:
        database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        database = f"SQLite {sqlite3.sqlite_version} (WAL)"

    redis_url: str | None = None
    if CONFIGURED_REDIS_URL:
        import redis

        _require_loopback(CONFIGURED_REDIS_URL, "REDIS_URL")
        redis_url = urlunsplit(urlsplit(CONFIGURED_REDIS_URL)._replace(path=f"/{REDIS_DB}", query=""))
        with contextlib.closing(redis.Redis.from_url(redis_url, socket_timeout=10)) as client:
            client.flushdb()
            version = client.info("server")["redis_version"]
        broker_env = {"REDIS_URL": redis_url}
        broker = f"Redis {version}"
    else:
        broker_env = {"CELERY_BROKER_URL": f"sqla+sqlite:///{workdir / 'broker.sqlite3'}"}
        broker = "embedded (kombu SQLAlchemy transport on SQLite)"

    backends = Backends(workdir, database_url, database, broker, broker_env, admin_url, redis_url)
    migrate(backends)
    return backends


def migrate(backends: Backends) -> None:
    env = {**os.environ, **backends.process_env()}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=300,
    )


@contextlib.contextmanager
def scratch_backends(name: str) -> Iterator[Backends]:
    """A temporary directory and fresh backends; both are removed afterwards unless BENCH_KEEP=1 or it failed."""
    workdir = Path(tempfile.mkdtemp(prefix=f"buyer-bench-{name}-"))
    succeeded = False
    try:
        backends = prepare_backends(workdir)
        try:
            yield backends
            succeeded = True
        finally:
            if not KEEP:
                with deferred_interrupts():
                    backends.teardown()
    finally:
        if succeeded and not KEEP:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"files and process logs kept in {workdir}")


class ConnectionSampler:
    """Peak number of server connections to the scratch database, sampled in a thread every ``interval`` s
    for at most ``max_seconds`` (PostgreSQL only; ``peak`` stays None elsewhere)."""

    def __init__(self, backends: Backends, *, interval: float = 0.05, max_seconds: float = 900) -> None:
        self.backends, self.interval, self.max_seconds = backends, interval, max_seconds
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        import psycopg

        assert self.backends.admin_database_url is not None
        deadline = time.monotonic() + self.max_seconds
        with psycopg.connect(_libpq_url(self.backends.admin_database_url), autocommit=True) as conn:
            while not self._stop.is_set() and time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (SCRATCH_DATABASE,)
                ).fetchone()
                self.peak = max(self.peak or 0, int(row[0]) if row else 0)
                self._stop.wait(self.interval)

    def __enter__(self) -> ConnectionSampler:
        if self.backends.is_postgres:
            self._thread = threading.Thread(target=self._run, name="pg-connections", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def log_tail(stack: Stack, name: str, chars: int = 4000) -> str:
    if stack.log_dir is None:
        return ""
    path = stack.log_dir / f"{name}.log"
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


# --- The stack ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ignore Ctrl-C / SIGTERM while cleaning up, so a second interrupt cannot leave processes behind."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def handle_sigterm() -> None:
    """SIGTERM behaves like Ctrl-C, so every ``finally`` that stops processes still runs."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def stop_stack(stack: Stack) -> None:
    """Stop every process of the stack (each in its own process group), whatever happens to the others."""
    with deferred_interrupts():
        for service in reversed(list(stack.services.values())):
            try:
                service.stop()
            except Exception as exc:
                log(f"stopping {service.name} failed ({exc!r}); killing it")
                with contextlib.suppress(Exception):
                    service.stop(kill=True)


def _log_tails(log_dir: Path, chars: int = 3000) -> str:
    return "\n".join(
        f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}" for path in sorted(log_dir.glob("*.log"))
    )


@contextlib.contextmanager
def running_stack(
    backends: Backends,
    *,
    tag: str,
    workers: int = 2,
    web_workers: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Sandbox seller, web (Granian) and a Celery worker with beat on ``backends``; stopped on exit."""
    log_dir = backends.workdir / f"logs-{tag}"
    log_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **backends.process_env(),
        "BUYER_VAR_DIR": str(backends.workdir / tag),
        "CELERY_QUEUE": f"bench-{uuid.uuid4().hex[:10]}",
        "ENVIRONMENT": "testing",
        "API_KEY": API_KEY,
        # The load generator is one key sending thousands of requests a minute: measure, don't throttle.
        "API_RATE_LIMIT_PER_MINUTE": "0",
        "LOG_LEVEL": "INFO",
        # Empty: build_stack points the buyer at the sandbox seller it starts.
        "SELLER_ENDPOINTS": "",
        **(env or {}),
    }
    stack = build_stack(
        port=free_port(),
        sandbox_port=free_port(),
        workers=workers,
        web_workers=web_workers,
        env=full_env,
        log_dir=log_dir,
    )
    try:
        stack.start()
        try:
            stack.wait_healthy(timeout=90)
        except Exception:
            log("the stack did not start:\n" + _log_tails(log_dir))
            raise
        yield stack
    finally:
        stop_stack(stack)


def api_client(stack: Stack, *, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=stack.web_url, headers=HEADERS, timeout=timeout)


def make_brief(index: int = 0) -> dict[str, Any]:
    """The e2e tests' brief (tests/e2e/conftest.py), with a flight starting a week from today."""
    start = datetime.now(UTC).date() + timedelta(days=7)
    return {
        "name": f"Bench brief {index}",
        "objectives": ["brand awareness", "reach", "video views"],
        "budget": 75000,
        "start_date": start.isoformat(),
        "end_date": (start + timedelta(days=45)).isoformat(),
        "target_audience": {"age": "25-54", "geo": ["US"], "interests": ["technology"]},
        "kpis": {"viewability": 70, "max_cpm_usd": 45},
        "channels": ["branding", "ctv", "performance"],
    }


def submit(client: httpx.Client, brief: dict[str, Any], *, auto_approve: bool = True) -> str:
    response = client.post("/bookings", json={"brief": brief, "auto_approve": auto_approve})
    if response.status_code != 202:
        raise RuntimeError(f"POST /bookings answered {response.status_code}: {response.text[:500]}")
    return response.json()["job_id"]


def wait_terminal(
    client: httpx.Client, job_id: str, *, poll_interval: float = 0.05, timeout: float = 120
) -> dict[str, Any]:
    """Poll ``GET /bookings/{id}`` until the job is completed, failed or cancelled; TimeoutError past ``timeout``."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / max(poll_interval, 0.001)) + 2):
        response = client.get(f"/bookings/{job_id}")
        response.raise_for_status()
        job = response.json()
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            break
        time.sleep(poll_interval)
    raise TimeoutError(f"job {job_id} not finished after {timeout:.0f} s")


def parse_time(value: str) -> float:
    """An API timestamp as epoch seconds."""
    return datetime.fromisoformat(value).timestamp()


# --- Statistics --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), interpolating linearly between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Summary:
    count: int
    minimum: float
    median: float
    p95: float
    maximum: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan)
        return cls(len(values), min(values), percentile(values, 50), percentile(values, 95), max(values))


def seconds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} s"


def millis(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 1000:.1f} ms"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- Load generator ----------------------------------------------------------------------------------------
#
# Two engines. "raw" (the default) speaks HTTP/1.1 over asyncio streams, one keep-alive connection per client.
# "httpx" uses one httpx.AsyncClient per client (a single shared pool degrades badly with concurrency,
# encode/httpx#3215); on a small machine it costs ~2 ms of CPU per request, so it saturates a core of its
# own at a few hundred requests per second and measures itself rather than the server. ``calibrate`` gives
# the ceiling of either engine against a no-op ASGI app.

ENGINES = ("raw", "httpx")


@dataclass
class LoadResult:
    url: str
    engine: str
    concurrency: int
    elapsed: float
    latencies: list[float]
    errors: int
    outcomes: Counter[str] = field(default_factory=Counter)
    client_cpu: float = 0.0
    # CPU seconds the server's processes used during the run, when the caller measured it.
    server_cpu: float = math.nan
    peak_connections: int | None = None

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else math.nan

    @property
    def generator_cpu(self) -> float:
        """CPU the load generator itself used, as a fraction of one core."""
        return self.client_cpu / self.elapsed if self.elapsed else math.nan

    @property
    def server_cpu_per_request(self) -> float:
        return self.server_cpu / self.ok if self.ok else math.nan

    @property
    def summary(self) -> Summary:
        return Summary.of(self.latencies)


class _RawConnection:
    """A minimal HTTP/1.1 keep-alive GET client: Content-Length, chunked or read-to-close bodies."""

    def __init__(self, host: str, port: int, target: str, headers: dict[str, str]) -> None:
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head[:-4].split(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for line in header_lines:
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        if chunked:
            for _ in range(1_000_000):
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length is not None:
            await self.reader.readexactly(length)
        else:
            await self.reader.read()
            close = True
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _load(
    url: str,
    *,
    engine: str,
    concurrency: int,
    duration: float,
    max_requests: int,
    timeout: float,
    headers: dict[str, str],
) -> LoadResult:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    issued = errors = 0
    deadline = time.monotonic() + duration

    async def one_client() -> None:
        nonlocal issued, errors
        raw = _RawConnection(parts.hostname or "127.0.0.1", parts.port or 80, target, headers)
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        client = httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits) if engine == "httpx" else None
        try:
            while issued < max_requests and time.monotonic() < deadline:
                issued += 1
                started = time.perf_counter()
                try:
                    if client is None:
                        status = await asyncio.wait_for(raw.get(), timeout)
                    else:
                        status = (await client.get(url)).status_code
                except (OSError, EOFError, ValueError, IndexError, asyncio.LimitOverrunError, httpx.HTTPError) as exc:
                    errors += 1
                    outcomes[type(exc).__name__] += 1
                    await raw.close()
                    continue
                took = time.perf_counter() - started
                outcomes[str(status)] += 1
                if status == 200:
                    latencies.append(took)
                else:
                    errors += 1
        finally:
            await raw.close()
            if client is not None:
                await client.aclose()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return LoadResult(url, engine, concurrency, elapsed, latencies, errors, outcomes, cpu)


def run_load(
    url: str,
    *,
    concurrency: int = 32,
    duration: float = 15,
    max_requests: int = 300_000,
    timeout: float = 10,
    engine: str = "raw",
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """``concurrency`` clients GET ``url`` back to back until ``duration`` seconds or ``max_requests`` in all.

    Latency counts successful (200) responses only; anything else, including transport errors, is an error."""
    if urlsplit(url).hostname not in LOOPBACK:
        raise ValueError("the load generator only targets 127.0.0.1")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    return asyncio.run(
        _load(
            url,
            engine=engine,
            concurrency=concurrency,
            duration=duration,
            max_requests=max_requests,
            timeout=timeout,
            headers=headers if headers is not None else HEADERS,
        )
    )


async def noop_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that answers every request with a tiny JSON body: the load generator's yardstick."""
    if scope["type"] != "http":
        return
    body = b'{"status":"healthy"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def calibrate(*, concurrency: int, duration: float, engine: str = "raw") -> LoadResult:
    """The generator against ``noop_app`` in its own uvicorn process: an upper bound for any figure here."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "bench.common:noop_app", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--no-access-log", "--log-level", "warning", "--lifespan", "off"]
    server = Service("noop", argv, dict(os.environ))
    server.start()
    try:
        for _ in range(100):  # up to 10 s
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        return run_load(f"http://127.0.0.1:{port}/", concurrency=concurrency, duration=duration, engine=engine)
    finally:
        with deferred_interrupts():
            server.stop()


def process_group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def service_pgid(stack: Stack, name: str) -> int:
    process = stack.services[name].process
    if process is None:
        raise RuntimeError(f"{name} is not running")
    return os.getpgid(process.pid)


# --- The machine -------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _ram_gib() -> float:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return math.nan


def machine_line(backends: Backends) -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{_cpu_model()}, {cores} cores, {_ram_gib():.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; database {backends.database}; broker {backends.broker}"
    )


def load_average() -> str:
    """The 1-minute load average, to tell a quiet machine from a busy one when reading the figures."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"
