from __future__ import annotations

import zoneinfo
from functools import cache

from django import forms
from django.contrib.auth.forms import UserCreationForm

from buyer.accounts.models import Role


@cache
def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class UserCreateForm(UserCreationForm):
    """A new dashboard user: Django's username and password checks (validators included) plus role and zone."""

    email = forms.EmailField(label="Email", required=False)
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEDIA_BUYER)
    time_zone = forms.TypedChoiceField(
        label="Time zone", choices=time_zone_choices, initial="UTC", help_text="Dates are shown in this zone."
    )

    field_order = ("username", "email", "role", "time_zone", "password1", "password2")

    class Meta(UserCreationForm.Meta):  # type: ignore[name-defined]  # the stubs leave out the forms' Meta classes
        fields = ("username", "email")

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class UserRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)
