from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def home(request: HttpRequest) -> HttpResponse:
    """The landing page: where the API documentation and the administration are."""
    return render(request, "home.html", {"version": settings.VERSION})
