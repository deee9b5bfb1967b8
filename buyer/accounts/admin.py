from __future__ import annotations

from django.contrib import admin

from buyer.accounts.models import Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "time_zone"]
    list_filter = ["role"]
    search_fields = ["user__username", "user__email"]
