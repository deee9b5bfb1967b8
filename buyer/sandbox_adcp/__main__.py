"""Command line: ``python -m buyer.sandbox_adcp --host 127.0.0.1 --port 8020 [options]``.

Serves one AdCP sandbox seller with uvicorn, MCP at ``/mcp``. It binds to 127.0.0.1 unless told otherwise: the
sandbox authenticates nobody and must not be exposed by accident.
"""

from __future__ import annotations

import argparse
import json
import secrets
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn

from buyer.sandbox.arguments import add_server_arguments, non_negative_float, non_negative_int
from buyer.sandbox_adcp.app import MCP_PATH, create_app
from buyer.sandbox_adcp.catalog import CATALOG_NAMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m buyer.sandbox_adcp",
        description="Run a sandbox AdCP sales agent (media-buy tasks over MCP) with mock inventory.",
    )
    add_server_arguments(parser, port=8020, catalogs=CATALOG_NAMES)
    parser.add_argument(
        "--approval-delay",
        type=non_negative_float,
        default=0.0,
        metavar="SECONDS",
        help="answer create_media_buy 'submitted' and complete the task after SECONDS (0: book at once)",
    )
    parser.add_argument(
        "--input-required",
        action="store_true",
        help="hold every order in input-required until POST /_sandbox/tasks/{id}/approve",
    )
    parser.add_argument("--stuck", action="store_true", help="misbehave: tasks never leave 'working'")
    parser.add_argument("--malformed", action="store_true", help="misbehave: answers fail the AdCP schemas")
    parser.add_argument("--latency-ms", type=non_negative_int, default=0, help="delay before every task")
    parser.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="a Host header MCP accepts besides 127.0.0.1/localhost (DNS-rebinding protection); repeatable",
    )
    parser.add_argument(
        "--webhook-interval",
        type=non_negative_float,
        default=1.0,
        metavar="SECONDS",
        help="send the task webhooks buyers asked for this often (0: only on POST /_sandbox/webhooks/send)",
    )
    parser.add_argument(
        "--require-signatures",
        metavar="JWKS_FILE",
        type=Path,
        help="demand RFC 9421 signed create/update_media_buy by a key of this JWKS "
        "(the buyer's: python manage.py adcp_signing_key jwks > buyer-jwks.json)",
    )
    parser.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="serve https with this certificate (and --tls-key)"
    )
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PEM",
        help="demand mutual TLS: a client certificate issued by this CA (with --tls-cert)",
    )
    parser.add_argument(
        "--compact",
        action="store_true",
        help="also offer AdCP 3.2's compact lifecycle: list_products (a versioned offer feed) and buy_products",
    )
    parser.add_argument(
        "--legacy-formats",
        action="store_true",
        help="answer as an AdCP 3.1 seller with its own creative agent: products name formats only by id, "
        "defined by list_creative_formats",
    )
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None) or (args.tls_client_ca and args.tls_cert is None):
        parser.error("--tls-cert and --tls-key go together, and --tls-client-ca needs them")
    tls_options: dict[str, Any] = {}
    if args.tls_cert is not None:
        tls_options = {"ssl_certfile": str(args.tls_cert), "ssl_keyfile": str(args.tls_key)}
        if args.tls_client_ca is not None:
            tls_options |= {"ssl_ca_certs": str(args.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    signed_by = None
    if args.require_signatures is not None:
        try:
            signed_by = {"buyer": json.loads(args.require_signatures.read_text())}
        except (OSError, ValueError) as exc:
            parser.error(f"--require-signatures: cannot read a JWKS from {args.require_signatures}: {exc}")
    app = create_app(
        signed_by=signed_by,
        catalog=args.catalog,
        approval_delay=args.approval_delay,
        input_required=args.input_required,
        stuck=args.stuck,
        malformed=args.malformed,
        latency_ms=args.latency_ms,
        allowed_hosts=args.allowed_hosts,
        # Ids unique to this run (mb-3f9a1c-00001): a restarted sandbox must not reissue a recorded buy's id.
        id_prefix=secrets.token_hex(3) + "-",
        webhook_interval=args.webhook_interval,
        compact=args.compact,
        legacy_formats=args.legacy_formats,
    )
    mode = "synchronous" if not app.state.sandbox.asynchronous else "asynchronous approvals"
    if args.compact:
        mode += ", compact lifecycle"
    print(
        f"sandbox AdCP seller {app.state.sandbox.catalog.seller_name!r} ({mode}) "
        f"on {'https' if tls_options else 'http'}://{args.host}:{args.port}{MCP_PATH}"
        + (" (mutual TLS)" if "ssl_ca_certs" in tls_options else ""),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **tls_options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
