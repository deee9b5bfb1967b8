from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from buyer.llm.models import LlmCall


@admin.register(LlmCall)
class LlmCallAdmin(admin.ModelAdmin):
    """Read-only: the ledger is written by the LLM gateway alone."""

    list_display = [
        "created_at",
        "agent_role",
        "requested_model",
        "served_model",
        "outcome",
        "input_tokens",
        "output_tokens",
        "cost_micros",
        "latency_ms",
        "job",
    ]
    list_filter = ["outcome", "agent_role", "served_model"]
    search_fields = ["agent_role", "requested_model", "served_model", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["job__campaign"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LlmCall | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LlmCall | None = None) -> bool:
        return False
