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


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value back: a secret typed into a refused form is not echoed."""

    def format_value(self, value: Any) -> None:
        return None


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
    tls_client_key = forms.CharField(
        required=False,
        strip=True,
        max_length=16_384,
        label="TLS client key",
        widget=WriteOnlyTextarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Write-only PEM private key of the client certificate; leave blank to keep the stored one.",
    )
    clear_tls_client_key = forms.BooleanField(
        required=False, label="Clear TLS client key", help_text="Remove the stored key (and stop mutual TLS)."
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
            "tls_client_cert",
            "tls_ca",
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
        self._check_tls(cleaned)
        return cleaned

    def _check_tls(self, cleaned: dict[str, Any]) -> None:
        from buyer.sellers.crypto import CredentialUnreadable
        from buyer.sellers.tls import TlsFieldError, check_client_tls

        key = cleaned.get("tls_client_key") or ""
        if key and cleaned.get("clear_tls_client_key"):
            self.add_error(
                "clear_tls_client_key", "Either type a new TLS client key or clear the stored one, not both."
            )
            return
        for public in ("tls_client_cert", "tls_ca"):
            if "PRIVATE KEY" in (cleaned.get(public) or ""):
                # Stored in the clear and shown again: a private key belongs in the write-only key field only.
                self.add_error(public, "This field takes certificates only; the private key goes in “TLS client key”.")
                return
        if not key and not cleaned.get("clear_tls_client_key") and self.instance.has_tls_client_key:
            try:
                key = self.instance.get_tls_client_key()
            except CredentialUnreadable as exc:
                raise forms.ValidationError(
                    f"The stored TLS client key cannot be read ({exc}); type it again."
                ) from None
        try:
            check_client_tls(
                cert_pem=cleaned.get("tls_client_cert") or "", key_pem=key, ca_pem=cleaned.get("tls_ca") or ""
            )
        except TlsFieldError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, f"Mutual TLS: {exc}.")
        except ValueError as exc:
            raise forms.ValidationError(f"Mutual TLS: {exc}.") from None

    def save(self, commit: bool = True) -> Seller:
        seller: Seller = super().save(commit=False)
        if self.cleaned_data.get("clear_credential"):
            seller.set_credential(None)
        elif self.cleaned_data.get("credential"):
            seller.set_credential(self.cleaned_data["credential"])
        if self.cleaned_data.get("clear_tls_client_key"):
            seller.set_tls_client_key(None)
        elif self.cleaned_data.get("tls_client_key"):
            seller.set_tls_client_key(self.cleaned_data["tls_client_key"])
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
        if self.cleaned_data.get("tls_client_key") or self.cleaned_data.get("clear_tls_client_key"):
            changed.add("tls_client_key_ciphertext")
        return changed
