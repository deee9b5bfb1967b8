from __future__ import annotations

from django import forms

from buyer.apikeys.models import ApiKey, Scope


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=ApiKey._meta.get_field("name").max_length,
        help_text="Who or what uses the key, e.g. “reporting job” or “Claude Desktop (Mia)”.",
    )
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=Scope.choices,
        initial=[Scope.READ],
        widget=forms.CheckboxSelectMultiple,
        help_text="Read lists jobs and deals; create and approve moves money; administer includes both.",
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
