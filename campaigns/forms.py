"""Forms of the media-buyer pages. The booking form checks a brief with the API's own schema, so a brief the
form accepts is exactly a brief the REST API accepts."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django import forms
from django.utils.safestring import SafeString
from pydantic import ValidationError as SchemaError

from campaigns.models import Channel, DealStatus, JobStatus, PacingCurve, channel_label
from campaigns.schemas import CampaignBriefIn

COMMON_OBJECTIVES = (
    ("brand awareness", "Brand awareness"),
    ("reach", "Reach"),
    ("video views", "Video views"),
    ("engagement", "Engagement"),
    ("conversions", "Conversions"),
    ("app installs", "App installs"),
)

NO_OBJECTIVE = "Choose or type at least one objective."

CHANNEL_CHOICES = [(c.value, channel_label(c.value)) for c in Channel]

# Where an error of the brief schema is shown: next to its field; KPI errors name the CPM they are about.
SCHEMA_FIELD_TO_FORM_FIELD = {"target_audience": "audience_interests"}


# The schema's messages (written for API clients) in the form's own words.
FRIENDLY_ERRORS: tuple[tuple[str, str], ...] = (
    ("end_date must be on or after start_date", "The end date must be on or after the start date."),
    ("end_date is in the past", "The end date is in the past: media cannot be bought for a finished flight."),
    ("max_cpm_usd must be a number between 0 and 10000", "Enter a max CPM above $0 and at most $10,000."),
    ("target_cpm_usd must be a number between 0 and 10000", "Enter a target CPM above $0 and at most $10,000."),
    ("must not be above max_cpm", "The target CPM must not be above the max CPM."),
)


def friendly(message: str) -> str:
    for technical, words in FRIENDLY_ERRORS:
        if technical in message:
            return words
    return message[:1].upper() + message[1:]


class MoneyField(forms.DecimalField):
    """Dollars as people type them: "$250,000", "250 000", "USD 1,250.50" (currency sign or code, thousands
    separators); what cannot be read keeps the typed text and says so in words."""

    default_error_messages = {"invalid": "Enter an amount in dollars, e.g. 250,000 or $250,000.50."}

    # The stubs derive DecimalField from IntegerField (as Django does) and type its to_python ``int | None``.
    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        if isinstance(value, str):
            value = re.sub(r"(?i)^\s*(usd|us\$|\$)\s*|\s*(usd)\s*$", "", value).replace(",", "").replace(" ", "")
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        """An amount shown as people write it: 120000 is "120,000", 1250.5 is "1,250.50"; text that is not a plain
        number (what someone typed, "$250,000" or a mistake) is shown as typed."""
        plain = isinstance(value, str) and re.fullmatch(r"\d{1,15}(\.\d{1,6})?", value.strip())
        if plain or (isinstance(value, int | float | Decimal) and not isinstance(value, bool)):
            amount = Decimal(str(value).strip())
            if amount.is_finite():
                return f"{amount:,.0f}" if amount == amount.to_integral_value() else f"{amount:,.2f}"
        return value

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        attrs = super().widget_attrs(widget)
        attrs.pop("step", None)  # a text box, so "$250,000" can be typed
        return attrs | {"inputmode": "decimal"}


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class BookingForm(forms.Form):
    name = forms.CharField(label="Campaign name", max_length=100)
    objectives = forms.MultipleChoiceField(
        label="Objectives", choices=COMMON_OBJECTIVES, required=False, widget=forms.CheckboxSelectMultiple
    )
    other_objectives = forms.CharField(
        label="Other objectives", required=False, max_length=500, help_text="Comma-separated, e.g. store visits, sales"
    )
    budget = MoneyField(
        label="Budget (USD)",
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal(10**9),
        widget=forms.TextInput,
    )
    start_date = forms.DateField(label="Start date", widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(label="End date", widget=forms.DateInput(attrs={"type": "date"}))
    pacing = forms.ChoiceField(
        label="Pacing",
        choices=PacingCurve.choices,
        initial=PacingCurve.EVEN,
        required=False,
        help_text="How spend should accrue over the flight; pacing alerts compare delivery with it.",
    )
    channels = forms.MultipleChoiceField(
        label="Channels",
        choices=CHANNEL_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Leave all unticked to let the agent choose.",
    )
    # The schema decides the CPM range (above 0, at most 10,000), as it does for the API.
    max_cpm = MoneyField(label="Max CPM (USD)", required=False, max_digits=12, widget=forms.TextInput)
    target_cpm = MoneyField(label="Target CPM (USD)", required=False, max_digits=12, widget=forms.TextInput)
    negotiation = forms.ChoiceField(
        label="Negotiation",
        choices=[
            ("", "Default"),
            ("threshold", "Threshold"),
            ("adaptive", "Adaptive"),
            ("competitive", "Competitive"),
            ("none", "Do not negotiate"),
        ],
        required=False,
        help_text="Quotes above the target CPM are negotiated, never above the max CPM or the quote.",
    )
    audience_age = forms.CharField(label="Audience age", required=False, max_length=50, help_text="e.g. 25-54")
    audience_geo = forms.CharField(
        label="Audience geography", required=False, max_length=500, help_text="Comma-separated, e.g. US, CA"
    )
    audience_interests = forms.CharField(
        label="Audience interests", required=False, max_length=500, help_text="Comma-separated, e.g. sports, travel"
    )
    audience_description = forms.CharField(
        label="Audience in words",
        required=False,
        max_length=300,
        help_text="e.g. Streaming-first households, entertainment seekers",
    )
    auto_approve = forms.BooleanField(
        label="Approve the recommendations automatically",
        required=False,
        help_text="Lines from restricted sellers still wait for a person.",
    )
    # One id per rendered form: a double submit returns the first job instead of creating a second one.
    plan_review = forms.BooleanField(
        label="Let me review the budget split before the sellers are asked",
        required=False,
        help_text="The job stops after the split; you keep it or type the amounts you want.",
    )
    submission_id = forms.UUIDField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        objectives = list(cleaned.get("objectives") or []) + split_list(cleaned.get("other_objectives") or "")
        if not objectives and "objectives" not in self.errors:
            self.add_error("objectives", NO_OBJECTIVE)
        if self.errors:
            return cleaned  # the schema sees only a brief whose fields all parsed
        kpis: dict[str, float] = {}
        for field, key in (("max_cpm", "max_cpm_usd"), ("target_cpm", "target_cpm_usd")):
            if cleaned.get(field) is not None:
                kpis[key] = float(cleaned[field])  # the brief schema takes JSON numbers, as the API receives them
        audience: dict[str, Any] = {}
        if cleaned.get("audience_age"):
            audience["age"] = cleaned["audience_age"].strip()
        for field, key in (("audience_geo", "geo"), ("audience_interests", "interests")):
            if split_list(cleaned.get(field) or ""):
                audience[key] = split_list(cleaned[field])
        if (cleaned.get("audience_description") or "").strip():
            audience["description"] = cleaned["audience_description"].strip()
        raw = {
            "name": cleaned["name"],
            "objectives": objectives,
            "budget": cleaned["budget"],
            "start_date": cleaned["start_date"],
            "end_date": cleaned["end_date"],
            "target_audience": audience,
            "kpis": kpis,
            "channels": list(cleaned.get("channels") or []) or None,
            "pacing": cleaned.get("pacing") or PacingCurve.EVEN,
            "negotiation": cleaned.get("negotiation") or None,
            "plan_review": bool(cleaned.get("plan_review")),
        }
        try:
            cleaned["brief"] = CampaignBriefIn.model_validate(raw)
        except SchemaError as exc:
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else None
                raw_message = str(error["msg"]).removeprefix("Value error, ")
                message = friendly(raw_message)
                if name == "kpis":
                    name = "target_cpm" if raw_message.startswith("target_cpm") else "max_cpm"
                name = SCHEMA_FIELD_TO_FORM_FIELD.get(name or "", name)
                self.add_error(name if name in self.fields else None, message)
        return cleaned


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any"), *JobStatus.choices])
    channel = forms.ChoiceField(label="Channel", required=False, choices=[("", "Any"), *CHANNEL_CHOICES])
    q = forms.CharField(label="Search", required=False, max_length=100)
    flight_from = forms.DateField(label="Flight from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    flight_to = forms.DateField(label="Flight to", required=False, widget=forms.DateInput(attrs={"type": "date"}))


JOB_FILTER_WIDGETS = ("status", "channel", "flight_from", "flight_to")


@lru_cache(maxsize=512)
def job_filter_widgets(data: tuple[tuple[str, str | None], ...]) -> dict[str, SafeString]:
    """The job filters' inputs as HTML for these raw values (``(name, value or None)`` pairs). The choices are
    fixed, so the HTML is a function of the values alone and is kept by them: rendering the four widgets took a
    sixth of the jobs page."""
    form = JobFilterForm({name: value for name, value in data if value is not None})
    return {name: SafeString(str(form[name])) for name in JOB_FILTER_WIDGETS}


class DealFilterForm(forms.Form):
    campaign = forms.CharField(label="Campaign", required=False, max_length=100)
    needs = forms.ChoiceField(
        label="Needs you",
        required=False,
        choices=[
            ("", "Any"),
            ("decision", "Held: accept or refuse"),
            ("cancellation", "Refused: to cancel with the seller"),
        ],
    )
    status = forms.ChoiceField(label="State", required=False, choices=[("", "Any"), *DealStatus.choices])
    channel = forms.ChoiceField(label="Channel", required=False, choices=[("", "Any"), *CHANNEL_CHOICES])
    seller = forms.TypedChoiceField(label="Seller", required=False, coerce=int, empty_value=None)
    flight_from = forms.DateField(label="Flight from", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    flight_to = forms.DateField(label="Flight to", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, sellers: list[tuple[int, str]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        seller = self.fields["seller"]
        assert isinstance(seller, forms.TypedChoiceField)
        seller.choices = [("", "Any"), *sellers]


class BriefIntakeForm(forms.Form):
    """A brief as written (pasted) or as sent (a PDF), to pre-fill the booking form."""

    text = forms.CharField(
        label="Paste a brief",
        required=False,
        max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="An email, notes or a brief's text; or upload a PDF instead.",
    )
    file = forms.FileField(label="or upload a PDF", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not (cleaned.get("text") or "").strip() and not cleaned.get("file") and not self.errors:
            raise forms.ValidationError("Paste a brief's text or choose a PDF.")
        return cleaned


def booking_initial(brief: dict[str, Any]) -> dict[str, Any]:
    """The booking form's initial values for a parsed brief (``campaigns.brief_parse``)."""
    known = {value for value, _ in COMMON_OBJECTIVES}
    objectives = [str(o) for o in brief.get("objectives") or []]
    audience = brief.get("target_audience") or {}
    kpis = brief.get("kpis") or {}
    initial: dict[str, Any] = {
        "name": brief.get("name", ""),
        "objectives": [o for o in objectives if o in known],
        "other_objectives": ", ".join(o for o in objectives if o not in known),
        "budget": brief.get("budget"),
        "start_date": brief.get("start_date"),
        "end_date": brief.get("end_date"),
        "channels": [c for c in brief.get("channels") or [] if c in Channel.values],
        "max_cpm": kpis.get("max_cpm_usd"),
        "target_cpm": kpis.get("target_cpm_usd"),
        "audience_age": audience.get("age", ""),
        "audience_geo": ", ".join(audience.get("geo") or []) if isinstance(audience.get("geo"), list) else "",
        "audience_interests": ", ".join(audience.get("interests") or [])
        if isinstance(audience.get("interests"), list)
        else "",
        "audience_description": str(audience.get("description") or "")[:300],
    }
    return {key: value for key, value in initial.items() if value not in (None, "", [])}
