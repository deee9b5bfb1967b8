"""Preloading the AdCP client in a worker's parent process (``buyer.celery``), so forked children share it."""

from __future__ import annotations

import gc
import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError

logger = logging.getLogger("buyer.sellers")


def adcp_preload_wanted() -> bool:
    """``ADCP_PRELOAD``: ``on``, ``off``, or ``auto`` (the default): on when an AdCP seller is enabled or seeded."""
    mode = settings.ADCP_PRELOAD
    if mode != "auto":
        return mode == "on"
    if settings.ADCP_SELLER_ENDPOINTS:
        return True
    from buyer.sellers.models import Protocol, Seller

    try:
        return (
            Seller.objects.filter(enabled=True, protocol=Protocol.ADCP).exists()
            or Seller.objects.filter(enabled=True, protocol=Protocol.AUTO, discovered_protocol=Protocol.ADCP).exists()
        )
    except DatabaseError:  # no database yet: the children import it on first use instead
        return False


_ready = False
_ready_lock = threading.Lock()


def adcp_ready() -> None:
    """Import the client and build its models once per process, one thread at a time, before any AdCP client is
    made. The library patches its models on first use, and two threads doing it at once (research asks several
    sellers in parallel) fail with ``RuntimeError: forward compatibility: … lost its …`` — seen in a worker that
    had not preloaded it (an AdCP seller added after the worker started, or ``ADCP_PRELOAD=off``)."""
    global _ready
    if _ready:
        return
    with _ready_lock:
        if not _ready:
            _build_models()
            _ready = True


def preload_adcp() -> None:
    """Import the client and build the request and response models it uses (the library builds them lazily),
    then freeze the collector's view of them so the children's collections do not touch (copy) those pages."""
    started = time.perf_counter()
    adcp_ready()
    gc.collect()
    gc.freeze()
    logger.info("AdCP client preloaded for the worker's children in %.1f s", time.perf_counter() - started)


def _build_models() -> None:
    import adcp.types as types

    import buyer.sellers.adcp_client  # noqa: F401 - imported for its side effect: the modules loaded

    for name in (
        "GetProductsRequest",
        "GetProductsResponse",
        "CreateMediaBuyRequest",
        "CreateMediaBuyResponse",
        "GetMediaBuysRequest",
        "GetMediaBuysResponse",
        "GetMediaBuyDeliveryRequest",
        "GetMediaBuyDeliveryResponse",
        "GetTaskStatusRequest",
        "GetTaskStatusResponse",
        "GetAdcpCapabilitiesRequest",
        "GetAdcpCapabilitiesResponse",
        "UpdateMediaBuyRequest",
        "UpdateMediaBuyResponse",
    ):
        getattr(types, name, None)
