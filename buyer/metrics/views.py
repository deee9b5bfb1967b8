"""``GET /metrics``: Prometheus text for a key with the ``metrics`` (or ``admin``) scope, presented as
``X-API-Key`` or as ``Authorization: Bearer`` (what Prometheus's ``authorization`` setting sends)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_authenticate, api_key_presented
from buyer.metrics import http
from buyer.metrics.collect import StateCollector
from buyer.metrics.multiproc import multiprocess
from buyer.ratelimit import RateLimited, rate_limit_enforce


def exposition() -> bytes:
    """The HTTP counters (summed over the server's workers in multiprocess mode) and the state read now."""
    if multiprocess():
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)
        served = generate_latest(registry)
    else:
        served = generate_latest(http.REGISTRY)
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector())
    return served + generate_latest(state)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    principal = api_key_authenticate(api_key_presented(request.headers))
    if principal is None:
        unauthorized = JsonResponse({"detail": "Invalid or missing API key"}, status=401)
        unauthorized["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return unauthorized
    try:
        rate_limit_enforce(f"rest:{principal.api_key_id or principal.name}")
    except RateLimited as exc:
        limited = JsonResponse({"detail": str(exc)}, status=429)
        limited["Retry-After"] = str(exc.retry_after)
        return limited
    if not principal.has_scope(Scope.METRICS):
        return JsonResponse({"detail": "This API key lacks the 'metrics' scope"}, status=403)
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
