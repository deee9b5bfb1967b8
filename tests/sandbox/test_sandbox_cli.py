"""``python -m buyer.sandbox`` as a real process on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from buyer.sandbox.__main__ import build_parser, main

from ._support import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_healthy(base_url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sandbox exited early with {proc.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0).json() == {"status": "healthy"}:
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError("sandbox did not become healthy in time")


def test_cli_serves_until_stopped() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}  # runs without Django settings
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buyer.sandbox",
            "--port",
            str(port),
            "--catalog",
            "performance",
            "--seller-id",
            "cli-seller",
            "--api-key",
            "cli-key:agency",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base_url, proc)
        products = httpx.get(f"{base_url}/products", timeout=5).json()["products"]
        assert {p["ext"]["inventory_type"] for p in products} <= {"display", "native", "mobile_app"}
        card = httpx.get(f"{base_url}/.well-known/agent.json", timeout=5).json()
        assert card["url"] == base_url
        pid = next(p["product_id"] for p in products if "PD" in p["ext"]["deal_types"])
        quote = httpx.post(
            f"{base_url}/api/v1/quotes",
            json={"idempotency_key": "cli-1", "product_id": pid, "deal_type": "PD", "impressions": 1_000_000},
            headers={"Authorization": "Bearer cli-key"},
            timeout=5,
        ).json()["quote"]
        assert quote["buyer_tier"] == "agency"
        assert quote["seller_id"] == "cli-seller"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, stderr = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    # uvicorn shuts down gracefully, then re-raises the signal it caught: -SIGTERM is a clean stop.
    assert proc.returncode in (0, -signal.SIGTERM), stderr.decode(errors="replace")
    assert b"cli-key" not in stderr  # API keys are secrets: never printed


def test_cli_defaults_and_argument_checks() -> None:
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.catalog, args.api_keys) == ("127.0.0.1", 8010, "default", [])
    args = build_parser().parse_args(["--api-key", "a:b:seat", "--api-key", "k2:advertiser", "--failure-rate", "0.5"])
    assert args.api_keys == [("a:b", "seat"), ("k2", "advertiser")]
    assert args.failure_rate == 0.5
    for bad in (["--api-key", "nokey"], ["--api-key", "k:gold"], ["--failure-rate", "2"], ["--catalog", "x"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(bad)
    assert build_parser().parse_args(["--overbook-pct", "20"]).overbook_pct == 20.0
    with pytest.raises(SystemExit):
        main(["--overprice-pct", "5000"])  # refused before it serves


def test_the_sandbox_package_does_not_import_django() -> None:
    package = ROOT / "buyer" / "sandbox"
    for source in package.glob("*.py"):
        text = source.read_text()
        assert "import django" not in text and "from django" not in text, source.name
