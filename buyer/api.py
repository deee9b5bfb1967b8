"""The root REST API. Every route needs an API key except the public ones: health, the docs, and the signed
webhooks of AdCP sellers."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Field, NinjaAPI, Schema, Status
from ninja.errors import AuthenticationError

from buyer.adcp_webhooks import router as adcp_webhooks_router
from buyer.apikeys.auth import read_auth
from buyer.errors import DomainError
from buyer.events.api import router as events_router
from buyer.health.checks import public_readiness
from buyer.openapi_errors import document_errors
from buyer.ratelimit import RateLimited
from buyer.sellers.api import router as sellers_router
from campaigns.api import router as bookings_router
from campaigns.briefs_api import router as briefs_router
from campaigns.deals_api import router as deals_router
from pacing.api import router as pacing_router


class BuyerAPI(NinjaAPI):
    """The REST API; its OpenAPI schema lists every error answer with its body (``buyer.openapi_errors``)."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None):
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        return document_errors(schema)


api = BuyerAPI(
    title="Media Buyer Agent API",
    version=settings.VERSION,
    description=(
        "Submit campaign briefs, review and approve recommendations priced by real seller quotes, and read "
        "the seller-issued deals. Authenticate with the `X-API-Key` header."
    ),
    auth=read_auth,
    docs_url="/docs",
    openapi_url="/openapi.json",
    urls_namespace="api",
)


@api.exception_handler(AuthenticationError)
def _unauthorised(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return api.create_response(request, {"detail": "Invalid or missing API key"}, status=401)


@api.exception_handler(DomainError)
def _domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    """The services' refusals (not found, wrong state, bad selection), mapped here once for every route."""
    return api.create_response(request, {"detail": str(exc)}, status=exc.http_status)


@api.exception_handler(RateLimited)
def _rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
    response = api.create_response(request, {"detail": str(exc)}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


class HealthOut(Schema):
    status: str
    version: str


@api.get("/health", auth=None, response=HealthOut, tags=["health"], summary="Liveness: the web process answers")
def health(request: HttpRequest):
    return {"status": "healthy", "version": settings.VERSION}


class ReadyOut(Schema):
    status: str = Field(description="ready, or unready when anything in `failed` is")
    failed: list[str] = Field(description="What is not healthy: database, broker, worker:<queue>, beat")
    checks: dict[str, dict] = Field(description="Each check: status, and its latency, heartbeat age or error")
    checked_at: datetime


@api.get(
    "/health/ready",
    auth=None,
    response={200: ReadyOut, 503: ReadyOut},
    tags=["health"],
    summary="Readiness: the database, the broker, a recent heartbeat from the workers of every queue and beat",
)
def ready(request: HttpRequest):
    report = public_readiness()
    return Status(200 if report["status"] == "ready" else 503, report)


@api.get(
    "/.well-known/jwks.json",
    auth=None,
    tags=["sellers"],
    summary="The buyer's public request-signing keys (RFC 9421), for AdCP sellers that verify signed orders",
)
def jwks(request: HttpRequest):
    """Every unretired key of ``manage.py adcp_signing_key``, newest first (the newest signs); empty without one."""
    from buyer.sellers.signing import jwks as published

    return published()


api.add_router("", bookings_router)
api.add_router("", deals_router)
api.add_router("", briefs_router)
api.add_router("", events_router)
api.add_router("", sellers_router)
api.add_router("", pacing_router)
api.add_router("", adcp_webhooks_router)
