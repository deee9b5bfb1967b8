"""LLM usage page for admins: the ledger the gateway writes, per day and per job."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from buyer.accounts.roles import admin_required
from buyer.llm import selectors
from buyer.llm.mode import llm_mode

DAYS = 30
TOP_JOBS = 50


@admin_required
def usage(request: HttpRequest) -> HttpResponse:
    all_time = selectors.llm_usage_totals()
    context = {
        "days": DAYS,
        "top_jobs": TOP_JOBS,
        "all_time": all_time,
        "window": selectors.llm_usage_totals(days=DAYS),
        "per_day": selectors.llm_usage_by_day(days=DAYS),
        "per_job": selectors.llm_usage_by_job(limit=TOP_JOBS),
        "without_job": selectors.llm_usage_without_job(),
        "llm_configured": llm_mode().active,
        "llm_mode": llm_mode(),
    }
    return render(request, "llm/usage.html", context)
