"""Pacing pages. Until deals deliver there is nothing to pace: the overview says so and lists what will be."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from buyer.accounts.roles import media_buyer_required
from pacing import selectors

PAGE_SIZE = 50


@media_buyer_required
def overview(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.deals_to_pace(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "pacing/overview.html", {"page": page, "deals": page.object_list})
