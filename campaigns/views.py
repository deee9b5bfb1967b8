"""Dashboard pages for media buyers: jobs, approvals, deals. Plain function views with HTMX partials."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from buyer.accounts.roles import media_buyer_required
from campaigns import selectors


@media_buyer_required
def jobs(request: HttpRequest) -> HttpResponse:
    page = list(selectors.job_list()[:50])
    return render(request, "campaigns/jobs.html", {"jobs": page})
