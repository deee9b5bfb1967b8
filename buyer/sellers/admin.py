from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from buyer.sellers import registry, services
from buyer.sellers.forms import SellerAdminForm
from buyer.sellers.models import BreakerState, Seller
from buyer.sellers.selectors import seller_list_for_admin
from buyer.words import count

# A connection test runs in the admin's request; each probe is bounded by the seller's timeout.
MAX_CONNECTION_TESTS = 10

_BREAKER_COLOURS = {
    BreakerState.CLOSED: "#2e7d32",
    BreakerState.HALF_OPEN: "#ef6c00",
    BreakerState.OPEN: "#c62828",
}


class CredentialFilter(admin.SimpleListFilter):
    title = "credential"
    parameter_name = "credential"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("set", "set"), ("not_set", "not set")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Seller]) -> QuerySet[Seller]:
        if self.value() == "set":
            return queryset.exclude(credential_ciphertext="")
        if self.value() == "not_set":
            return queryset.filter(credential_ciphertext="")
        return queryset


@admin.register(Seller)
class SellerAdmin(admin.ModelAdmin):
    form = SellerAdminForm
    list_display = [
        "name",
        "base_url",
        "protocol_label",
        "enabled",
        "trust_level",
        "identity_summary",
        "last_success_at",
        "error_rate_pct",
        "latency",
        "breaker",
    ]
    list_display_links = ["name"]
    list_filter = ["enabled", "protocol", "trust_level", "breaker_state", "credential_scheme", CredentialFilter]
    search_fields = ["name", "base_url", "notes", "seat_id", "agency_id", "advertiser_id"]
    actions = ["test_connection", "reset_breaker"]
    readonly_fields = [
        "credential_status",
        "discovered_protocol",
        "protocol_discovered_at",
        "seeded_from_env",
        "breaker",
        "breaker_opened_at",
        "consecutive_failures",
        "last_success_at",
        "last_failure_at",
        "last_error",
        "calls_total",
        "errors_total",
        "error_rate_pct",
        "latency",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "enabled", "trust_level", "notes"]}),
        (
            "Protocol",
            {"fields": ["protocol", "mcp_transport", "discovered_protocol", "protocol_discovered_at"]},
        ),
        ("Limits", {"fields": ["timeout_seconds", "max_concurrency"]}),
        (
            "Credential",
            {
                "fields": ["credential_scheme", "credential_status", "credential", "clear_credential"],
                "description": "Stored encrypted. It is sent to this seller only and is never shown again.",
            },
        ),
        (
            "Buyer identity",
            {
                "fields": ["seat_id", "agency_id", "advertiser_id", "dsp_platform"],
                "description": "Sent as buyer_identity; tiered prices need the credential as well.",
            },
        ),
        (
            "Request signing and mutual TLS",
            {
                "fields": ["sign_requests", "tls_client_cert", "tls_client_key", "clear_tls_client_key", "tls_ca"],
                "description": "AdCP sellers that demand them. The client key is stored encrypted, never shown again.",
            },
        ),
        (
            "Health",
            {
                "fields": [
                    "breaker",
                    "breaker_opened_at",
                    "consecutive_failures",
                    "last_success_at",
                    "last_failure_at",
                    "last_error",
                    "calls_total",
                    "errors_total",
                    "error_rate_pct",
                    "latency",
                ]
            },
        ),
        ("Record", {"fields": ["seeded_from_env", "created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def formfield_for_dbfield(self, db_field: models.Field, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")  # Django 6's default, explicit here
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Seller]:
        return seller_list_for_admin()

    def save_model(self, request: HttpRequest, obj: Seller, form: SellerAdminForm, change: bool) -> None:
        services.seller_save_settings(seller=obj, changed_fields=form.changed_settings, created=not change)

    # -- columns -----------------------------------------------------------------------------------

    @admin.display(description="protocol", ordering="protocol")
    def protocol_label(self, seller: Seller) -> str:
        if seller.protocol == "auto":
            return f"auto → {seller.discovered_protocol}" if seller.discovered_protocol else "auto (not yet known)"
        return seller.get_protocol_display()

    @admin.display(description="identity")
    def identity_summary(self, seller: Seller) -> str:
        identity = seller.buyer_identity()
        parts = [f"{k.removesuffix('_id')} {v}" for k, v in (identity.as_wire() or {}).items()] if identity else []
        summary = ", ".join(parts) or "no identity"
        return f"{summary}; {'key set' if seller.has_credential else 'no key (public tier)'}"

    @admin.display(description="credential")
    def credential_status(self, seller: Seller) -> str:
        return "set" if seller.has_credential else "not set"

    @admin.display(description="error rate", ordering="error_rate")
    def error_rate_pct(self, seller: Seller) -> str:
        return f"{seller.error_rate * 100:.1f} %" if seller.calls_total else "—"

    @admin.display(description="latency", ordering="latency_ms")
    def latency(self, seller: Seller) -> str:
        return f"{seller.latency_ms:,.0f} ms" if seller.latency_ms is not None else "—"

    @admin.display(description="breaker", ordering="breaker_state")
    def breaker(self, seller: Seller) -> str:
        colour = _BREAKER_COLOURS.get(BreakerState(seller.breaker_state), "#555")
        return format_html(
            '<span style="color:#fff;background:{};padding:1px 7px;border-radius:9px;white-space:nowrap">{}</span>',
            colour,
            seller.get_breaker_state_display(),
        )

    # -- actions -----------------------------------------------------------------------------------

    @admin.action(description="Reset breaker of selected sellers")
    def reset_breaker(self, request: HttpRequest, queryset: QuerySet[Seller]) -> None:
        sellers = list(queryset)
        for seller in sellers:
            services.seller_reset_breaker(seller=seller)
        self.message_user(request, f"Breaker reset for {count(len(sellers), 'seller')}.", messages.SUCCESS)

    @admin.action(description="Test connection to selected sellers")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Seller]) -> None:
        sellers = list(queryset[: MAX_CONNECTION_TESTS + 1])
        if len(sellers) > MAX_CONNECTION_TESTS:
            self.message_user(
                request, f"Select at most {MAX_CONNECTION_TESTS} sellers to test at once.", messages.WARNING
            )
            return
        levels = {"success": messages.SUCCESS, "warning": messages.WARNING, "error": messages.ERROR}
        for seller in sellers:
            level, message = registry.connection_test(seller)
            self.message_user(request, message, levels[level])
