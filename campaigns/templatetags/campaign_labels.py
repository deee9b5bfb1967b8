"""Words for the codes the pages would otherwise show: ``mobile_app`` is "Mobile app", ``ctv`` "CTV"."""

from __future__ import annotations

from collections.abc import Iterable

from django import template

from campaigns.models import channel_label

register = template.Library()


@register.filter
def channel(code: object) -> str:
    """A channel's name as people write it."""
    return channel_label(code)


@register.filter
def channels(codes: Iterable[object] | None) -> str:
    """A list of channels, named and comma-separated."""
    return ", ".join(channel(c) for c in (codes or []))


# What a running job is doing, by its next step (JobStage), as the job page says it.
STAGE_WORDS = {
    "plan": "splitting the budget across channels",
    "plan_review": "waiting for your review of the split",
    "research": "asking the sellers for products and quotes",
    "negotiate": "negotiating prices with the sellers",
    "approval": "preparing the lines for your approval",
    "book": "booking the approved lines with the sellers",
    "await_seller": "waiting for sellers to confirm orders they are reviewing",
    "done": "finishing",
}


@register.filter
def stage(code: object) -> str:
    """What a job at this step is doing, in words."""
    text = str(code or "")
    return STAGE_WORDS.get(text, text.replace("_", " "))


@register.filter
def words(code: object) -> str:
    """A seller's or a system's code as words: ``on_track`` is "on track", ``auto_approve`` "auto approve"."""
    return str(code or "").replace("_", " ")
