"""Seller pages for admins: the list with health at a glance, add/edit with a write-only credential, and the
actions (enable/disable, test connection, reset breaker). Every action is a POST that redirects back."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from buyer.accounts.roles import admin_required
from buyer.htmx import HtmxHttpRequest
from buyer.sellers import registry, services
from buyer.sellers.forms import SellerAdminForm
from buyer.sellers.models import BreakerState, Protocol, Seller
from buyer.sellers.selectors import seller_get, seller_list_for_admin

PAGE_SIZE = 50

# How the edit page groups the form's fields: (legend, field names, note).
FIELDSETS = (
    ("Seller", ("name", "base_url", "enabled", "trust_level", "notes"), ""),
    ("Protocol", ("protocol", "mcp_transport"), ""),
    ("Limits", ("timeout_seconds", "max_concurrency"), ""),
    (
        "Credential",
        ("credential_scheme", "credential", "clear_credential"),
        "Stored encrypted and sent to this seller only. It is never shown again, here or anywhere else.",
    ),
    (
        "Buyer identity",
        ("seat_id", "agency_id", "advertiser_id", "dsp_platform"),
        "Sent as buyer_identity; tiered prices need the credential as well.",
    ),
    (
        "Request signing and mutual TLS",
        ("sign_requests", "tls_client_cert", "tls_client_key", "clear_tls_client_key", "tls_ca"),
        "AdCP sellers that demand them. The client key is stored encrypted and never shown again; the signing key "
        "is the buyer's (manage.py adcp_signing_key), published at /.well-known/jwks.json.",
    ),
)


# Labels the model's verbose names spell loosely.
LABELS = {
    "base_url": "Base URL",
    "mcp_transport": "MCP transport",
    "timeout_seconds": "Timeout (seconds)",
    "seat_id": "Seat ID",
    "agency_id": "Agency ID",
    "advertiser_id": "Advertiser ID",
    "dsp_platform": "DSP platform",
}


def _seller_form(request: HttpRequest, seller: Seller | None = None) -> SellerAdminForm:
    form = SellerAdminForm(request.POST or None, instance=seller, label_suffix="")
    for name, label in LABELS.items():
        form.fields[name].label = label
    form.fields["notes"].widget.attrs["rows"] = 3
    return form


@dataclass(frozen=True)
class SellerRow:
    """A seller as the pages show it: health in words and numbers, the credential only as set/not set."""

    seller: Seller

    @property
    def protocol_label(self) -> str:
        seller = self.seller
        if seller.protocol == Protocol.AUTO:
            return (
                f"auto → {seller.discovered_protocol.upper()}" if seller.discovered_protocol else "auto (not yet known)"
            )
        return seller.get_protocol_display()

    @property
    def identity_summary(self) -> str:
        identity = self.seller.buyer_identity()
        parts = [f"{k.removesuffix('_id')} {v}" for k, v in (identity.as_wire() or {}).items()] if identity else []
        return ", ".join(parts) or "no identity"

    @property
    def credential_status(self) -> str:
        return "set" if self.seller.has_credential else "not set"

    @property
    def error_rate_pct(self) -> float | None:
        return self.seller.error_rate * 100 if self.seller.calls_total else None


def _get_seller(seller_id: int) -> Seller:
    seller = seller_get(seller_id)
    if seller is None:
        raise Http404("No such seller")
    return seller


def _filtered(request: HttpRequest) -> tuple[QuerySet[Seller], dict[str, str]]:
    sellers = seller_list_for_admin()
    filters = {
        "q": request.GET.get("q", "").strip(),
        "status": request.GET.get("status", ""),
        "breaker": request.GET.get("breaker", ""),
    }
    if filters["q"]:
        sellers = sellers.filter(Q(name__icontains=filters["q"]) | Q(base_url__icontains=filters["q"]))
    if filters["status"] in {"enabled", "disabled"}:
        sellers = sellers.filter(enabled=filters["status"] == "enabled")
    if filters["breaker"] in BreakerState.values:
        sellers = sellers.filter(breaker_state=filters["breaker"])
    return sellers, filters


@admin_required
def seller_list(request: HtmxHttpRequest) -> HttpResponse:
    sellers, filters = _filtered(request)
    page = Paginator(sellers, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": [SellerRow(seller) for seller in page.object_list],
        "filters": filters,
        "breaker_states": BreakerState.choices,
    }
    return render(request, "sellers/list.html#seller-table" if request.htmx else "sellers/list.html", context)


def _fieldsets(form: SellerAdminForm) -> list[tuple[str, list, str]]:
    return [(legend, [form[name] for name in names], note) for legend, names, note in FIELDSETS]


@admin_required
def seller_create(request: HttpRequest) -> HttpResponse:
    form = _seller_form(request)
    if request.method == "POST" and form.is_valid():
        seller = form.save(commit=False)
        services.seller_save_settings(seller=seller, changed_fields=form.changed_settings, created=True)
        messages.success(request, f"Seller “{seller.name}” added. Test the connection to check it answers.")
        return redirect("sellers:edit", seller_id=seller.pk)
    return render(request, "sellers/form.html", {"form": form, "fieldsets": _fieldsets(form), "seller": None})


@admin_required
def seller_edit(request: HttpRequest, seller_id: int) -> HttpResponse:
    seller = _get_seller(seller_id)
    form = _seller_form(request, seller)
    if request.method == "POST" and form.is_valid():
        seller = form.save(commit=False)
        changed = form.changed_settings
        services.seller_save_settings(seller=seller, changed_fields=changed, created=False)
        if changed:
            messages.success(request, f"Seller “{seller.name}” saved.")
        else:
            messages.info(request, f"Nothing changed for “{seller.name}”.")
        return redirect("sellers:edit", seller_id=seller.pk)
    # On a refused save, show the stored row's state, not the half-applied form values.
    stored = seller_get(seller_id) or seller
    context = {"form": form, "fieldsets": _fieldsets(form), "seller": stored, "row": SellerRow(stored)}
    return render(request, "sellers/form.html", context)


def _back(request: HttpRequest, seller: Seller) -> HttpResponseRedirect:
    """To where the action was pressed (the list or the seller's page), never off this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return HttpResponseRedirect(target)
    return HttpResponseRedirect(reverse("sellers:edit", args=[seller.pk]))


def _set_enabled(request: HttpRequest, seller_id: int, *, enabled: bool) -> HttpResponse:
    seller = _get_seller(seller_id)
    if seller.enabled != enabled:
        seller.enabled = enabled
        services.seller_save_settings(seller=seller, changed_fields={"enabled"}, created=False)
    if enabled:
        messages.success(request, f"Seller “{seller.name}” enabled: new bookings search it again.")
    else:
        messages.success(request, f"Seller “{seller.name}” disabled: new bookings no longer search it.")
    return _back(request, seller)


@admin_required
@require_POST
def seller_disable(request: HttpRequest, seller_id: int) -> HttpResponse:
    return _set_enabled(request, seller_id, enabled=False)


@admin_required
@require_POST
def seller_enable(request: HttpRequest, seller_id: int) -> HttpResponse:
    return _set_enabled(request, seller_id, enabled=True)


@admin_required
@require_POST
def seller_test_connection(request: HttpRequest, seller_id: int) -> HttpResponse:
    seller = _get_seller(seller_id)
    level, message = registry.connection_test(seller)
    getattr(messages, level)(request, message)
    return _back(request, seller)


@admin_required
@require_POST
def seller_reset_breaker(request: HttpRequest, seller_id: int) -> HttpResponse:
    seller = _get_seller(seller_id)
    services.seller_reset_breaker(seller=seller)
    messages.success(request, f"Breaker reset for “{seller.name}”: calls to it are allowed again.")
    return _back(request, seller)
