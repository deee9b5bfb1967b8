from __future__ import annotations

from django.contrib import admin

from buyer.apikeys.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "digest", "created_at", "last_used_at", "created_by"]
    search_fields = ["name", "prefix"]

    def has_add_permission(self, request) -> bool:
        # Keys are created with `manage.py create_api_key` (or the dashboard), which shows the secret once.
        return False
