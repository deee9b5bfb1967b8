from __future__ import annotations

from django.contrib import admin

from buyer.sellers.models import Seller


@admin.register(Seller)
class SellerAdmin(admin.ModelAdmin):
    list_display = ["name", "base_url", "protocol", "enabled", "seeded_from_env", "updated_at"]
    list_filter = ["enabled", "protocol"]
    search_fields = ["name", "base_url"]
