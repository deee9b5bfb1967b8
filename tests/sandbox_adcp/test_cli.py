"""``python -m buyer.sandbox_adcp`` as a real process on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from adcp.types import GetProductsRequest

from buyer.sandbox_adcp.__main__ import build_parser
from tests.conftest import free_port

from ._support import Clock, Seller

ROOT = Path(__file__).resolve().parents[2]


def test_the_parser_defaults_to_a_synchronous_seller_on_loopback():
    args = build_parser().parse_args([])
    assert (args.host, args.port, args.catalog) == ("127.0.0.1", 8020, "default")
    assert (args.approval_delay, args.input_required, args.stuck, args.malformed, args.latency_ms) == (
        0.0,
        False,
        False,
        False,
        0,
    )


@pytest.mark.parametrize("argv", [["--approval-delay", "-1"], ["--latency-ms", "-5"], ["--catalog", "nope"]])
def test_the_parser_refuses_bad_knobs(argv, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


def test_the_cli_serves_mcp_until_stopped():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}  # runs without Django settings
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "buyer.sandbox_adcp",
            "--port",
            str(port),
            "--catalog",
            "premium-video",
            "--approval-delay",
            "5",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        # Generous: importing the adcp server kit builds its whole pydantic type graph (15 s on a busy machine).
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            try:
                if httpx.get(f"{url}/health", timeout=1).json() == {"status": "healthy"}:
                    break
            except (httpx.TransportError, ValueError):
                pass
            assert time.monotonic() < deadline, "the sandbox did not become healthy"
            time.sleep(0.1)

        async def work(client):
            return await client.get_products(GetProductsRequest(buying_mode="wholesale"))

        result = Seller(app=None, url=url, clock=Clock()).run(work)
        assert result.success, result.error
        assert "ctv-live-sports" in {p.product_id for p in result.data.products}
    finally:
        proc.terminate()
        try:
            _, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
    assert b"asynchronous approvals" in stderr
    assert f"http://127.0.0.1:{port}/mcp".encode() in stderr


def test_each_cli_run_issues_ids_of_its_own(monkeypatch):
    from buyer.sandbox_adcp import __main__ as cli

    served = []
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **kw: served.append(app.state.sandbox))
    cli.main(["--port", "8020"])
    cli.main(["--port", "8020"])
    first, second = served
    assert first._next_id("mb").startswith("mb-") and first.id_prefix != second.id_prefix
    assert first._next_id("mb") != second._next_id("mb")
