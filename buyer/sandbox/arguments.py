"""What the sandbox sellers' command lines share (``python -m buyer.sandbox`` and ``python -m buyer.sandbox_adcp``):
the server's address and catalog, and the number checks of their knobs. No Django, like the sandboxes."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def add_server_arguments(parser: argparse.ArgumentParser, *, port: int, catalogs: Sequence[str]) -> None:
    """``--host`` (127.0.0.1 unless told otherwise: a sandbox must not be exposed by accident), ``--port`` and
    ``--catalog``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port to bind (default {port})")
    parser.add_argument("--catalog", choices=catalogs, default="default", help="seeded catalog to serve")
