"""Read-only admin views of delivery, pacing runs, alerts and proposals; decisions go through the pages or API."""

from __future__ import annotations

from django.contrib import admin

from campaigns.admin import ReadOnlyAdmin
from pacing.models import DealDelivery, PacingAlert, ReallocationMove, ReallocationProposal, SnapshotRun


@admin.register(DealDelivery)
class DealDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["deal", "impressions", "spend", "as_of", "seller_status", "checked_at", "error"]
    list_filter = ["seller_status"]
    search_fields = ["deal__deal_id"]


@admin.register(SnapshotRun)
class SnapshotRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "trigger", "status", "job", "as_of", "campaigns", "deals", "alerts_opened", "duration_ms"]
    list_filter = ["trigger", "status"]


@admin.register(PacingAlert)
class PacingAlertAdmin(ReadOnlyAdmin):
    list_display = ["job", "scope_key", "direction", "level", "peak_level", "deviation_pct", "opened_at", "resolved_at"]
    list_filter = ["level", "direction", "scope"]


class ReallocationMoveInline(admin.TabularInline):
    model = ReallocationMove
    fields = ("from_channel", "to_channel", "amount", "top_up_job")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(ReallocationProposal)
class ReallocationProposalAdmin(ReadOnlyAdmin):
    list_display = ["pk", "job", "status", "amount", "created_at", "decided_by", "decided_at"]
    list_filter = ["status"]
    inlines = [ReallocationMoveInline]
