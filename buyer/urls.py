from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path
from ninja.openapi.docs import Redoc

from buyer.api import api
from campaigns.views import home


def redoc(request: HttpRequest) -> HttpResponse:
    return Redoc().render_page(request, api)


urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    path("redoc", redoc, name="redoc"),
    path("", api.urls),
]
