"""Command line: ``python -m buyer.sandbox --host 127.0.0.1 --port 8010 [options]``.

Serves one sandbox seller with uvicorn. It binds to 127.0.0.1 unless told otherwise: the sandbox has no
authentication worth the name and must not be exposed by accident.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from buyer.sandbox.app import API_KEY_TIERS, create_app
from buyer.sandbox.arguments import add_server_arguments, non_negative_int
from buyer.sandbox.catalog import CATALOG_NAMES
from buyer.sandbox.delivery import PROFILE_NAMES, parse_profile
from buyer.sandbox.mcp import MCP_DIALECTS
from buyer.words import count


def _api_key(value: str) -> tuple[str, str]:
    """``KEY:TIER`` → (key, tier). The tier is the part after the last colon, so keys may contain colons."""
    key, sep, tier = value.rpartition(":")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY:TIER")
    if tier not in API_KEY_TIERS:
        raise argparse.ArgumentTypeError(f"tier must be one of {', '.join(API_KEY_TIERS)}")
    return key, tier


def _delivery_profile(value: str) -> tuple[str, str]:
    """``TARGET=PROFILE`` → (target, profile text), the profile checked now so a typo stops start-up."""
    target, sep, profile = value.partition("=")
    if not sep or not target.strip():
        raise argparse.ArgumentTypeError("expected TARGET=PROFILE, e.g. *=under:0.7")
    try:
        parse_profile(profile)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return target.strip(), profile.strip()


def _failure_rate(value: str) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return rate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m buyer.sandbox",
        description="Run a sandbox seller agent speaking the IAB seller agent REST protocol.",
    )
    add_server_arguments(parser, port=8010, catalogs=CATALOG_NAMES)
    parser.add_argument("--seller-id", default=None, help="seller id (default: the catalog's own)")
    parser.add_argument("--latency-ms", type=non_negative_int, default=0, help="delay before every response")
    parser.add_argument(
        "--failure-rate", type=_failure_rate, default=0.0, help="fraction of requests answered 503 (0..1)"
    )
    parser.add_argument(
        "--garbage", action="store_true", help="answer /products and /api/v1/quotes with a non-JSON body"
    )
    parser.add_argument(
        "--api-key",
        dest="api_keys",
        action="append",
        type=_api_key,
        default=[],
        metavar="KEY:TIER",
        help=f"accept KEY as a buyer of TIER ({'|'.join(API_KEY_TIERS)}); repeatable",
    )
    parser.add_argument(
        "--delivery-profile",
        dest="delivery_profiles",
        action="append",
        type=_delivery_profile,
        default=[],
        metavar="TARGET=PROFILE",
        help="how deals deliver: TARGET is * (every deal) or a product id; PROFILE one of "
        f"{', '.join(PROFILE_NAMES)}, under/over/on_pace with an optional pace (under:0.6); repeatable",
    )
    parser.add_argument(
        "--mcp-dialect",
        choices=MCP_DIALECTS,
        default="sandbox",
        help="reference: MCP tools answer exactly as the reference seller's (legacy words, no booking tool)",
    )
    parser.add_argument(
        "--overbook-pct",
        type=float,
        default=0.0,
        help="misbehave: book this many percent more impressions than quoted (a buyer should hold such deals)",
    )
    parser.add_argument(
        "--overprice-pct",
        type=float,
        default=0.0,
        help="misbehave: book at a CPM this many percent above the agreed price",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the failure sequence and of scatter delivery")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        app = create_app(
            catalog=args.catalog,
            seller_id=args.seller_id,
            latency_ms=args.latency_ms,
            failure_rate=args.failure_rate,
            garbage=args.garbage,
            api_keys=dict(args.api_keys),
            seed=args.seed,
            delivery_profiles=dict(args.delivery_profiles),
            mcp_dialect=args.mcp_dialect,
            overbook_pct=args.overbook_pct,
            overprice_pct=args.overprice_pct,
        )
    except ValueError as exc:  # a profile for a product this catalog does not have, a drift out of range
        parser.error(str(exc))
    # Keys are secrets: report how many were configured, never which.
    print(
        f"sandbox seller {app.state.sandbox.catalog.seller_id!r} (catalog {args.catalog}, "
        f"{count(len(args.api_keys), 'API key')}) on http://{args.host}:{args.port}",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
