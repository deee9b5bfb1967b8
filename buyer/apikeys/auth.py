from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyHeader

from buyer.apikeys.models import Scope
from buyer.apikeys.services import Principal, api_key_authenticate
from buyer.ratelimit import rate_limit_enforce


class ApiKeyAuth(APIKeyHeader):
    """``X-API-Key`` header auth for the REST API: 401 without a valid key, 403 when it lacks ``scope``.

    Checked before the body is parsed, so a read-only key learns nothing from validation errors. Each key
    also has a per-minute rate limit (429 with Retry-After)."""

    param_name = "X-API-Key"

    def __init__(self, scope: Scope = Scope.READ) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        principal = api_key_authenticate(key)
        if principal is None:
            return None
        rate_limit_enforce(f"rest:{principal.api_key_id or principal.name}")
        if not principal.has_scope(self.scope):
            raise HttpError(403, f"This API key lacks the '{self.scope}' scope")
        return principal


read_auth = ApiKeyAuth(Scope.READ)
write_auth = ApiKeyAuth(Scope.WRITE)
