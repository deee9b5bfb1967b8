"""Read-mostly admin views of jobs, recommendations and deals. Money moves only through the services."""

from __future__ import annotations

from django.contrib import admin

from buyer.sellers.money import micros_to_decimal
from campaigns.models import BookedDeal, BookingJob, Campaign, DealTransition, Recommendation


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RecommendationInline(admin.TabularInline):
    model = Recommendation
    fields = (
        "priority",
        "product_name",
        "seller_name",
        "channel",
        "impressions",
        "cpm",
        "cost",
        "buyer_tier",
        "status",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="CPM")
    def cpm(self, obj: Recommendation) -> str:
        return f"${obj.cpm:,.2f}"

    @admin.display(description="Cost")
    def cost(self, obj: Recommendation) -> str:
        return f"${obj.cost:,.2f}"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BookingJob)
class BookingJobAdmin(ReadOnlyAdmin):
    list_display = ["campaign", "status", "stage", "progress", "auto_approve", "created_at", "updated_at"]
    list_filter = ["status", "stage", "auto_approve"]
    search_fields = ["id", "campaign__name"]
    list_select_related = ["campaign"]
    readonly_fields = [f.name for f in BookingJob._meta.fields]
    inlines = [RecommendationInline]


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdmin):
    list_display = ["name", "budget_display", "start_date", "end_date", "created_at"]
    search_fields = ["name"]
    readonly_fields = [f.name for f in Campaign._meta.fields]

    @admin.display(description="Budget")
    def budget_display(self, obj: Campaign) -> str:
        return f"${obj.budget:,.2f}"


@admin.register(Recommendation)
class RecommendationAdmin(ReadOnlyAdmin):
    list_display = ["product_name", "seller_name", "channel", "deal_type", "impressions", "buyer_tier", "status", "job"]
    list_filter = ["status", "channel", "buyer_tier"]
    search_fields = ["product_id", "product_name", "seller_name", "quote_id"]
    list_select_related = ["job__campaign"]
    readonly_fields = [f.name for f in Recommendation._meta.fields]


class DealTransitionInline(admin.TabularInline):
    model = DealTransition
    fields = ("at", "from_status", "to_status", "reason")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BookedDeal)
class BookedDealAdmin(ReadOnlyAdmin):
    list_display = [
        "deal_id",
        "product_name",
        "channel",
        "deal_type",
        "impressions",
        "cost_display",
        "buyer_tier",
        "status",
        "booked_at",
    ]
    list_filter = ["status", "channel", "deal_type", "buyer_tier"]
    search_fields = ["deal_id", "quote_id", "product_id", "product_name"]
    readonly_fields = [f.name for f in BookedDeal._meta.fields]
    inlines = [DealTransitionInline]

    @admin.display(description="Cost")
    def cost_display(self, obj: BookedDeal) -> str:
        return f"${micros_to_decimal(obj.cost_micros):,.2f}"
