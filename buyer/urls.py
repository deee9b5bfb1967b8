from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from ninja.openapi.docs import Redoc

from buyer.api import api
from buyer.metrics.views import metrics
from buyer.unavailable import unavailable_response


def redoc(request: HttpRequest) -> HttpResponse:
    return Redoc().render_page(request, api)


urlpatterns = [
    path("", lambda request: redirect("campaigns:jobs"), name="home"),
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("app/", include("campaigns.urls")),
    path("app/", include("buyer.accounts.urls")),
    path("app/sellers/", include("buyer.sellers.urls")),
    path("app/api-keys/", include("buyer.apikeys.urls")),
    path("app/llm-usage/", include("buyer.llm.urls")),
    path("app/pacing/", include("pacing.urls")),
    path("app/", include("buyer.events.urls")),
    path("admin/", admin.site.urls),
    path("redoc", redoc, name="redoc"),
    path("metrics", metrics, name="metrics"),
    path("", api.urls),
]


def server_error(request: HttpRequest) -> HttpResponse:
    """A 503 when the database or the broker is down (``buyer.unavailable``: JSON for the API's paths, which
    tests serve through this URLconf too), otherwise the product's 500 page."""
    from django.views.defaults import server_error as page

    from buyer import urls_api
    from buyer.web import is_page

    if not is_page(request.path_info):  # the API's paths answer JSON whichever URLconf serves them
        return urls_api.server_error(request)
    return unavailable_response(request) or page(request)


handler500 = server_error
