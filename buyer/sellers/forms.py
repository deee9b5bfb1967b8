from __future__ import annotations

from typing import Any

from django import forms
from django.db import models

from buyer.sellers.models import Seller


def _formfield(field: models.Field, **kwargs: Any) -> forms.Field | None:
    if isinstance(field, models.URLField):
        # A seller URL typed without a scheme is read as https (Django 6's default, explicit here).
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class SellerAdminForm(forms.ModelForm):
    """The seller form with a write-only credential: never rendered back, blank keeps the stored one."""

    credential = forms.CharField(
        required=False,
        strip=True,
        max_length=4096,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: type a new API key or token to replace the stored one; leave blank to keep it.",
    )
    clear_credential = forms.BooleanField(
        required=False, label="Clear credential", help_text="Remove the stored credential (public tier only)."
    )

    class Meta:
        model = Seller
        formfield_callback = _formfield
        # Never the ciphertext or the health columns: those are written by services, not typed in.
        fields = [
            "name",
            "base_url",
            "enabled",
            "trust_level",
            "notes",
            "protocol",
            "mcp_transport",
            "timeout_seconds",
            "max_concurrency",
            "credential_scheme",
            "sign_requests",
            "seat_id",
            "agency_id",
            "advertiser_id",
            "dsp_platform",
        ]

    def clean_credential(self) -> str:
        value: str = self.cleaned_data.get("credential") or ""
        if any(not ch.isprintable() for ch in value):
            raise forms.ValidationError("The credential must not contain control characters or line breaks.")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("credential") and cleaned.get("clear_credential"):
            raise forms.ValidationError("Either type a new credential or clear the stored one, not both.")
        return cleaned

    def save(self, commit: bool = True) -> Seller:
        seller: Seller = super().save(commit=False)
        if self.cleaned_data.get("clear_credential"):
            seller.set_credential(None)
        elif self.cleaned_data.get("credential"):
            seller.set_credential(self.cleaned_data["credential"])
        if commit:
            seller.save()
            self.save_m2m()
        return seller

    @property
    def changed_settings(self) -> set[str]:
        """Model fields this form changed, the credential included (as its ciphertext column)."""
        columns = {field.name for field in Seller._meta.concrete_fields}
        changed = {name for name in self.changed_data if name in columns}
        if self.cleaned_data.get("credential") or self.cleaned_data.get("clear_credential"):
            changed.add("credential_ciphertext")
        return changed
