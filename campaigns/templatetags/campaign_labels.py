"""Words for the codes the pages would otherwise show: ``mobile_app`` is "Mobile app", ``ctv`` "CTV"."""

from __future__ import annotations

from django import template

from campaigns.forms import CHANNEL_LABELS

register = template.Library()


@register.filter
def channel(code: object) -> str:
    """A channel's name as people write it."""
    text = str(code or "")
    return CHANNEL_LABELS.get(text, text.replace("_", " ").capitalize())


@register.filter
def channels(codes: object) -> str:
    """A list of channels, named and comma-separated."""
    return ", ".join(channel(c) for c in (codes or []))  # type: ignore[union-attr]
