"""Setup, health and configuration as the MCP foundation tools report them. Deterministic: no model calls.

Health checks function, not just that a process exists (``buyer.health.checks``, the same as readiness): the
database answers a query, the Celery broker accepts a connection, and the workers of every queue wrote a heartbeat
recently (on every broker, the embedded one included).

Nothing here reports a secret: no API key, seller credential, ``SECRET_KEY``, model key or connection URL
(error details are exception class names only, since driver messages may quote a URL).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from buyer.apikeys.services import auth_is_configured
from buyer.events.selectors import event_list
from buyer.health.checks import HEALTHY, UNHEALTHY, UNKNOWN, broker_transport, heartbeats, timed
from buyer.health.checks import broker as check_broker
from buyer.health.checks import database as check_database
from buyer.llm.mode import llm_mode
from buyer.sellers.api import _public_url as public_url
from buyer.sellers.models import BreakerState
from buyer.sellers.selectors import seller_list_enabled, seller_list_for_admin
from buyer.sellers.services import configured_endpoints

logger = logging.getLogger(__name__)

DEGRADED = "degraded"


def _seller_endpoints() -> tuple[list[str], int]:
    """Enabled sellers' addresses plus configured ones not seeded yet (public form), and open breakers."""
    enabled = list(seller_list_enabled().only("base_url", "breaker_state"))
    known = set(seller_list_for_admin().values_list("base_url", flat=True))
    urls = [s.base_url for s in enabled] + [url for url in configured_endpoints() if url not in known]
    open_breakers = sum(1 for s in enabled if s.breaker_state == BreakerState.OPEN)
    return [public_url(url) for url in dict.fromkeys(urls)], open_breakers


def _sellers() -> dict[str, Any]:
    try:
        endpoints, open_breakers = _seller_endpoints()
    except DatabaseError as exc:
        return {"status": UNKNOWN, "endpoint_count": 0, "error": type(exc).__name__}
    return {
        "status": "configured" if endpoints else "not_configured",
        "endpoint_count": len(endpoints),
        "open_breakers": open_breakers,
    }


def _event_bus() -> dict[str, Any]:
    # Events are rows written in the transaction of the change they report: the bus works when its table does.
    try:
        event_list().only("pk").first()
    except DatabaseError as exc:
        return {"status": UNHEALTHY, "backend": "database", "error": type(exc).__name__}
    return {"status": HEALTHY, "backend": "database"}


def _worker(*, database_ok: bool) -> dict[str, Any]:
    """The workers, by their heartbeats: healthy when the workers of every queue wrote one recently."""
    queues = {
        role.removeprefix("worker:"): check
        for role, check in heartbeats(database_ok=database_ok).items()
        if role.startswith("worker:")
    }
    statuses = {check["status"] for check in queues.values()}
    status = UNKNOWN if UNKNOWN in statuses else HEALTHY if statuses == {HEALTHY} else UNHEALTHY
    workers = sorted({check["hostname"] for check in queues.values() if check["status"] == HEALTHY})
    stale = sorted(queue for queue, check in queues.items() if check["status"] == UNHEALTHY)
    return {
        "status": status,
        "method": f"heartbeats (fresh within {settings.HEALTH_HEARTBEAT_STALE_SECONDS} s)",
        "workers": workers,
        "queues": queues,
        **({"detail": f"no recent heartbeat for: {', '.join(stale)}"} if stale else {}),
    }


def health_report() -> dict[str, Any]:
    database = timed(check_database)
    broker = check_broker()
    services = {
        "database": database,
        "seller_connections": _sellers(),
        "event_bus": _event_bus(),
        "broker": broker,
        "worker": _worker(database_ok=database["status"] == HEALTHY),
    }
    if database["status"] != HEALTHY or broker["status"] != HEALTHY:
        status = UNHEALTHY  # nothing can be stored or run
    elif (
        services["event_bus"]["status"] != HEALTHY
        or services["worker"]["status"] == UNHEALTHY
        or services["seller_connections"]["status"] != "configured"
        or services["seller_connections"].get("open_breakers")
    ):
        status = DEGRADED
    else:
        status = HEALTHY
    return {"status": status, "version": settings.VERSION, "checked_at": timezone.now(), "services": services}


def setup_status() -> dict[str, Any]:
    database_ok = check_database()["status"] == HEALTHY
    sellers = _sellers()
    try:
        api_key_configured = auth_is_configured()
    except DatabaseError:
        api_key_configured = bool(settings.API_KEY)
    checks = {
        "seller_endpoints_configured": sellers["status"] == "configured",
        "database_accessible": database_ok,
        "api_key_configured": api_key_configured,
        "llm_configured": llm_mode().active,
    }
    next_steps = []
    if not checks["database_accessible"]:
        next_steps.append("Check DATABASE_URL and run `python manage.py migrate`.")
    if not checks["seller_endpoints_configured"]:
        next_steps.append("Set SELLER_ENDPOINTS (comma-separated seller URLs) or add a seller in the admin.")
    if not checks["api_key_configured"]:
        next_steps.append("Create an API key (`manage.py create_api_key NAME --scope read --scope write`).")
    return {
        "setup_complete": checks["seller_endpoints_configured"] and checks["database_accessible"],
        "checks": checks,
        "seller_endpoint_count": sellers["endpoint_count"],
        # Without a model the deterministic policies decide: a model key is optional.
        "llm_required": False,
        "decisions_by": llm_mode().label,
        "llm_mode": llm_mode().why,
        "next_steps": next_steps,
    }


def public_config() -> dict[str, Any]:
    """The effective configuration an operator may see; never a secret or a connection string."""
    try:
        endpoints, _ = _seller_endpoints()
    except DatabaseError:
        endpoints = [public_url(url) for url in configured_endpoints()]
    return {
        "environment": settings.ENVIRONMENT,
        "version": settings.VERSION,
        "log_level": settings.LOG_LEVEL,
        "seller_endpoints": endpoints,
        "database": {"engine": settings.DATABASE_ENGINE},
        "broker": {"transport": broker_transport(), "queue": settings.CELERY_TASK_DEFAULT_QUEUE},
        "llm": {
            "configured": llm_mode().active,
            "mode": settings.LLM_MODE,
            "decisions_by": llm_mode().label,
            "why": llm_mode().why,
            "models": {
                "default": settings.DEFAULT_LLM_MODEL,
                "manager": settings.MANAGER_LLM_MODEL,
                "fallback": settings.LLM_FALLBACK_MODEL,
            },
            "temperature": settings.LLM_TEMPERATURE,
            "max_tokens": settings.LLM_MAX_TOKENS,
            "caps": {
                "agent_max_steps": settings.CREW_MAX_ITERATIONS,
                "agent_max_usd": str(settings.LLM_AGENT_MAX_USD),
                "job_max_usd": str(settings.LLM_JOB_MAX_USD),
                "daily_max_usd": str(settings.LLM_DAILY_MAX_USD),
            },
        },
        "agent": {
            "crew_max_iterations": settings.CREW_MAX_ITERATIONS,
            "crew_memory_enabled": settings.CREW_MEMORY_ENABLED,
            "crew_verbose": settings.CREW_VERBOSE,
        },
        "cors_allowed_origins": list(settings.CORS_ALLOWED_ORIGINS),
        "mcp_allowed_origins": list(settings.MCP_ALLOWED_ORIGINS),
        "api": {"rate_limit_per_minute": settings.API_RATE_LIMIT_PER_MINUTE},
        "sellers": {
            "timeout_seconds": settings.SELLER_TIMEOUT_SECONDS,
            "max_retries": settings.SELLER_MAX_RETRIES,
            "max_parallel": settings.SELLER_MAX_PARALLEL,
        },
        "jobs": {
            "step_lease_seconds": settings.JOB_STEP_LEASE_SECONDS,
            "stall_seconds": settings.JOB_STALL_SECONDS,
            "max_attempts": settings.JOB_MAX_ATTEMPTS,
            "approval_ttl_hours": settings.APPROVAL_TTL_HOURS,
        },
    }
