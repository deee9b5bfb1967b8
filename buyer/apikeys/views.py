"""API key pages for admins. The full key is shown once, in the response to the POST that created it: it is
never stored, put in a URL or the session, or shown again."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from buyer.accounts.roles import admin_required
from buyer.apikeys import selectors, services
from buyer.apikeys.forms import ApiKeyCreateForm
from buyer.apikeys.models import ApiKey, Scope

PAGE_SIZE = 50


def _get_key(key_id: int) -> ApiKey:
    key = selectors.api_key_get(key_id)
    if key is None:
        raise Http404("No such API key")
    return key


@admin_required
def key_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    page = Paginator(selectors.api_key_list(status=status), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "keys": page.object_list, "status": status, "scope_labels": dict(Scope.choices)}
    return render(request, "apikeys/list.html", context)


@never_cache  # the result page carries the secret: no browser or proxy may keep a copy
@admin_required
@require_http_methods(["GET", "POST"])
def key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        key, full_key = services.api_key_create(
            name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], created_by=request.user
        )
        # Rendered, not redirected: this response is the only place the full key ever appears.
        return render(request, "apikeys/created.html", {"key": key, "full_key": full_key}, status=201)
    return render(request, "apikeys/form.html", {"form": form})


@admin_required
@require_http_methods(["GET", "POST"])
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes. Revoking twice is harmless."""
    key = _get_key(key_id)
    if request.method == "POST":
        if key.is_active:
            services.api_key_revoke(key=key)
            messages.success(request, f"API key “{key.name}” revoked: requests with it now get 401.")
        else:
            messages.info(request, f"API key “{key.name}” was already revoked.")
        return redirect("apikeys:list")
    return render(request, "apikeys/revoke.html", {"key": key})
