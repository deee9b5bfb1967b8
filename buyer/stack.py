"""Start the whole product as separate processes: web (Granian), worker (Celery with beat, consuming the
booking and the pacing queue) and, when no seller is configured, the built-in sandbox seller. ``make run`` uses
it; so do the end-to-end tests and the benchmarks, so what they exercise is what users run.

    python -m buyer.stack [--port 8001] [--sandbox-port 8010] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from buyer.metrics.multiproc import metrics_dir_prepare

BASE_DIR = Path(__file__).resolve().parent.parent
# A stop gives the services this long to finish (a worker's warm shutdown, the web server's open requests), then
# kills them: the whole stack is down within 10 s (Docker's default stop timeout). An interrupted job step is
# taken up again by the sweeper; bookings are idempotent.
STOP_SECONDS = 5.0
PR_SET_PDEATHSIG = 1
REAPER_DONE = "done"  # the launcher stopped everything itself (buyer.reaper)


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    def start(self) -> None:
        stdout = open(self.log_path, "ab") if self.log_path else None  # noqa: SIM115 - lives as long as the process
        # Its own process group, so stopping it also stops what it forked (Celery's pool processes).
        self.process = subprocess.Popen(
            self.argv,
            cwd=BASE_DIR,
            env=self.env,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout else None,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, kill: bool = False, timeout: float = STOP_SECONDS) -> None:
        self.signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.wait(deadline=time.monotonic() + timeout)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the service's whole process group (it and what it forked)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signum)  # its own session: the group id is its pid

    def wait(self, *, deadline: float) -> None:
        """Wait for the service to exit until ``deadline`` (monotonic), then kill its group; either way no child
        it forked is left behind."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.signal(signal.SIGKILL)  # children that outlived a graceful stop (none should)


@dataclass
class Stack:
    web_url: str
    seller_url: str | None
    services: dict[str, Service] = field(default_factory=dict)
    log_dir: Path | None = None
    adcp_seller_url: str | None = None

    def start(self, *names: str, started: Callable[[Service], None] | None = None) -> None:
        """Start the services (all, or ``names``); ``started`` hears of each right after it starts."""
        for name in names or tuple(self.services):
            self.services[name].start()
            if started is not None:
                started(self.services[name])

    def stop(self, *names: str, kill: bool = False, timeout: float = STOP_SECONDS) -> None:
        """Stop the services at once (all signalled, then each waited for until one shared deadline)."""
        services = [self.services[name] for name in reversed(names or tuple(self.services))]
        for service in services:
            service.signal(signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for service in services:
            service.wait(deadline=deadline)

    def wait_healthy(self, timeout: float = 60, *, stopping: Callable[[], bool] = lambda: False) -> bool:
        """Wait for the web server (and the sandbox seller) to answer /health; False as soon as ``stopping()``
        says a stop was asked for meanwhile."""
        sellers = [url for url in (self.seller_url, self.adcp_seller_url) if url]
        urls = [self.web_url + "/health"] + [url + "/health" for url in sellers]
        deadline = time.monotonic() + timeout
        for url in urls:
            while True:
                if stopping():
                    return False
                dead = [s.name for s in self.services.values() if s.process is not None and not s.alive()]
                if dead:
                    raise RuntimeError(f"{', '.join(dead)} exited during start-up; see its log")
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} did not become healthy within {timeout:.0f} s")
                time.sleep(0.2)
        return True


def web_argv(*, port: int, workers: int, env: Mapping[str, str], host: str = "127.0.0.1") -> list[str]:
    """The web server's command: Granian on one port, the ASGI dispatcher (``buyer.asgi``) with its lifespan,
    which runs the MCP session manager and sends Django's requests to a thread pool."""
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",  # with lifespan ("asginl" is without)
        "buyer.asgi:application",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        env.get("LOG_LEVEL", "INFO").lower(),
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "5",
    ]


def worker_queues(env: Mapping[str, str]) -> tuple[str, str, str]:
    """The queues a worker consumes, booking first, named as the settings name them from the same variables."""
    steps = env.get("CELERY_QUEUE") or "buyer"
    return (env.get("CELERY_BOOKING_QUEUE") or f"{steps}-booking", steps, env.get("CELERY_PACING_QUEUE") or "pacing")


def build_stack(
    *,
    port: int = 8001,
    sandbox_port: int | None = 8010,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    sandbox_args: list[str] | None = None,
    web_workers: int = 1,
    adcp_sandbox_port: int | None = None,
    adcp_sandbox_args: list[str] | None = None,
) -> Stack:
    """Describe the processes; ``sandbox_port=None`` leaves sellers to ``SELLER_ENDPOINTS``. ``adcp_sandbox_port``
    adds the AdCP sandbox sales agent (orders approved after ``ADCP_SANDBOX_APPROVAL_DELAY`` seconds, 30 by
    default), seeded as an AdCP seller through ``ADCP_SELLER_ENDPOINTS``, which sends its task webhooks to the web
    process (``ADCP_WEBHOOK_URL``, unless set)."""
    python = sys.executable
    base_env = {**os.environ, **(env or {})}
    seller_url = None
    services: dict[str, Service] = {}

    def log(name: str) -> Path | None:
        return log_dir / f"{name}.log" if log_dir else None

    if sandbox_port is not None:
        seller_url = f"http://127.0.0.1:{sandbox_port}"
        if not base_env.get("SELLER_ENDPOINTS", "").strip():
            base_env["SELLER_ENDPOINTS"] = seller_url
        argv = [
            python,
            "-m",
            "buyer.sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(sandbox_port),
            *(sandbox_args or []),
        ]
        services["sandbox"] = Service("sandbox", argv, base_env, log("sandbox"))
    adcp_seller_url = None
    if adcp_sandbox_port is not None:
        adcp_seller_url = f"http://127.0.0.1:{adcp_sandbox_port}"
        if not base_env.get("ADCP_SELLER_ENDPOINTS", "").strip():
            base_env["ADCP_SELLER_ENDPOINTS"] = adcp_seller_url
        # The sandbox notifies this product's own web process of the orders it approves (signed webhooks).
        base_env.setdefault("ADCP_WEBHOOK_URL", f"http://127.0.0.1:{port}")
        delay = base_env.get("ADCP_SANDBOX_APPROVAL_DELAY", "30") or "30"
        argv = [python, "-m", "buyer.sandbox_adcp", "--host", "127.0.0.1", "--port", str(adcp_sandbox_port)]
        # AdCP 3.2's compact lifecycle too (list_products, buy_products): the buyer uses it where offered.
        argv += ["--approval-delay", delay, "--compact", "--log-level", "warning", *(adcp_sandbox_args or [])]
        services["sandbox-adcp"] = Service("sandbox-adcp", argv, base_env, log("sandbox-adcp"))
    services["worker"] = Service(
        "worker",
        [
            python,
            "-m",
            "celery",
            "-A",
            "buyer",
            "worker",
            "--beat",
            "--loglevel",
            base_env.get("LOG_LEVEL", "INFO"),
            "--concurrency",
            str(workers),
            # Booking, the other steps and pacing on their own queues; one worker consumes all three here,
            # booking first (on Redis the order given is the order taken).
            "--queues",
            ",".join(worker_queues(base_env)),
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"buyer-{port}@%h",
        ],
        base_env,
        log("worker"),
    )
    # The web workers' HTTP counters, summed by /metrics, in a directory of this server's (emptied first).
    web_env = metrics_dir_prepare(base_env, port=port)
    services["web"] = Service("web", web_argv(port=port, workers=web_workers, env=web_env), web_env, log("web"))
    return Stack(
        web_url=f"http://127.0.0.1:{port}",
        seller_url=seller_url,
        services=services,
        log_dir=log_dir,
        adcp_seller_url=adcp_seller_url,
    )


def ports_in_use(ports: list[int], host: str = "127.0.0.1") -> list[int]:
    """The ``ports`` something already listens on (probed as the servers bind: with SO_REUSEADDR)."""
    busy = []
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                busy.append(port)
    return busy


def die_with_parent() -> None:
    """On Linux, have the kernel send this process SIGTERM when its parent dies (``make`` killed, even with
    SIGKILL): the launcher then stops the stack as on Ctrl-C. Elsewhere nothing happens."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def start_reaper() -> subprocess.Popen:
    """``buyer.reaper``, in a session of its own, told each service's process group as it starts: whatever ends
    this launcher (SIGKILL included), the reaper stops what it started."""
    return subprocess.Popen(
        [sys.executable, "-m", "buyer.reaper"],
        cwd=BASE_DIR,
        stdin=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8001")))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_SELLER_PORT", "8010")))
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    parser.add_argument(
        "--adcp-sandbox-port",
        type=int,
        default=int(os.environ.get("ADCP_SANDBOX_PORT") or 0) or None,
        help="also run the AdCP sandbox sales agent on this port (ADCP_SANDBOX_PORT; off by default)",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "buyer.settings")
    # Reads .env and validates every variable before anything starts.
    from django.conf import settings

    use_sandbox = not settings.SELLER_ENDPOINTS and not settings.IAB_SERVER_URL_IS_SET
    stack = build_stack(
        port=args.port,
        sandbox_port=args.sandbox_port if use_sandbox else None,
        workers=args.workers,
        web_workers=settings.WEB_WORKERS,
        adcp_sandbox_port=args.adcp_sandbox_port,
    )
    ports = [args.port] + ([args.sandbox_port] if use_sandbox else [])
    ports += [args.adcp_sandbox_port] if args.adcp_sandbox_port else []
    busy = ports_in_use(ports)
    if busy:
        names = ", ".join(str(port) for port in busy)
        print(
            f"Port {names} on 127.0.0.1 is already in use (another `make run`?): nothing was started. Stop what "
            "listens there, or choose free ports: make run PORT=8002 SANDBOX_SELLER_PORT=8011",
            file=sys.stderr,
        )
        return 1
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    die_with_parent()
    reaper = start_reaper()

    def reaped(service: Service) -> None:
        assert reaper.stdin is not None and service.process is not None
        reaper.stdin.write(f"{service.process.pid}\n")
        reaper.stdin.flush()

    try:
        if stopping:  # asked to stop (the parent gone, Ctrl-C) before anything started
            return 0
        stack.start(started=reaped)
        if not stack.wait_healthy(stopping=lambda: stopping):
            return 0
        sellers = (
            f"{stack.seller_url} (built-in sandbox seller)" if use_sandbox else ", ".join(settings.SELLER_ENDPOINTS)
        )
        if stack.adcp_seller_url:
            sellers += f", {stack.adcp_seller_url} (AdCP sandbox sales agent)"
        print(
            f"\nMedia buyer agent on {stack.web_url}  (API docs {stack.web_url}/docs)\n"
            f"Sellers: {sellers}\nCtrl-C stops.\n",
            flush=True,
        )
        while not stopping:
            dead = [s.name for s in stack.services.values() if not s.alive()]
            if dead:
                print(f"{', '.join(dead)} stopped; shutting down.", file=sys.stderr)
                return 1
            time.sleep(0.2)
    finally:
        stack.stop()
        if reaper.stdin is not None:
            # Stopped cleanly: the reaper has nothing to do (a process group id, once free, could be reused). Killed,
            # this process closes the pipe without the word, and the reaper stops what it started.
            with contextlib.suppress(OSError):
                reaper.stdin.write(f"{REAPER_DONE}\n")
                reaper.stdin.flush()
            reaper.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            reaper.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
