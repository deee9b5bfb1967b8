"""User pages for admins: list, create, change role, deactivate and reactivate. An admin cannot lock
themselves out: demoting or deactivating your own account is refused, with a message saying so."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from buyer.accounts import selectors, services
from buyer.accounts.forms import UserCreateForm, UserRoleForm
from buyer.accounts.models import Role
from buyer.accounts.roles import admin_required

PAGE_SIZE = 50


def _get_user(user_id: int):
    user = selectors.user_get(user_id)
    if user is None:
        raise Http404("No such user")
    return user


@admin_required
def users(request: HttpRequest) -> HttpResponse:
    filters = {
        "q": request.GET.get("q", "").strip(),
        "role": request.GET.get("role", ""),
        "status": request.GET.get("status", ""),
    }
    active = {"active": True, "inactive": False}.get(filters["status"])
    people = selectors.user_list(q=filters["q"], role=filters["role"], active=active)
    page = Paginator(people, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "people": page.object_list, "filters": filters, "roles": Role.choices}
    return render(request, "accounts/users.html", context)


@admin_required
def user_create(request: HttpRequest) -> HttpResponse:
    form = UserCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        user = services.user_create(
            username=data["username"],
            email=data["email"],
            password=data["password1"],
            role=Role(data["role"]),
            time_zone=data["time_zone"],
        )
        messages.success(request, f"User “{user.get_username()}” created as {Role(data['role']).label.lower()}.")
        return redirect("accounts:users")
    return render(request, "accounts/user_form.html", {"form": form})


@admin_required
@require_POST
def user_role(request: HttpRequest, user_id: int) -> HttpResponse:
    person = _get_user(user_id)
    form = UserRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Choose a role for “{person.get_username()}”: admin or media buyer.")
        return redirect("accounts:users")
    role = Role(form.cleaned_data["role"])
    try:
        services.user_set_role(user=person, role=role, actor=request.user)
    except services.SelfLockout as exc:
        messages.error(request, str(exc))
        return redirect("accounts:users")
    if person.is_superuser and role != Role.ADMIN:
        messages.warning(
            request,
            f"“{person.get_username()}” is a superuser and stays an admin whatever the role; "
            "remove superuser status in the Django admin first.",
        )
    else:
        messages.success(request, f"“{person.get_username()}” is now {role.label.lower()}.")
    return redirect("accounts:users")


@admin_required
@require_POST
def user_deactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    person = _get_user(user_id)
    try:
        services.user_set_active(user=person, active=False, actor=request.user)
    except services.SelfLockout as exc:
        messages.error(request, str(exc))
        return redirect("accounts:users")
    messages.success(request, f"“{person.get_username()}” deactivated: they can no longer sign in.")
    return redirect("accounts:users")


@admin_required
@require_POST
def user_reactivate(request: HttpRequest, user_id: int) -> HttpResponse:
    person = _get_user(user_id)
    services.user_set_active(user=person, active=True)
    messages.success(request, f"“{person.get_username()}” reactivated: they can sign in again.")
    return redirect("accounts:users")
