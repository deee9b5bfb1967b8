"""The campaign summary: the rules' always, the reporting agent's when asked, its every number checked."""

from __future__ import annotations

import pytest
from django.urls import reverse

from campaigns.report import campaign_summary, report_facts, rules_summary
from tests.factories import BookedDealFactory, BookingJobFactory, RecommendationFactory
from tests.llm.fake import submit

pytestmark = pytest.mark.django_db


def booked_job():
    job = BookingJobFactory(status="completed", stage="done")
    for channel, cost in (("ctv", 12_000), ("branding", 8_000)):
        line = RecommendationFactory(job=job, channel=channel, cost_micros=cost * 1_000_000, status="booked")
        BookedDealFactory(recommendation=line, job=job, channel=channel, cost_micros=cost * 1_000_000)
    return job


def test_the_rules_summarise_what_is_booked_and_what_waits():
    job = booked_job()
    facts = report_facts(job)
    assert facts["deals_booked"] == 2 and facts["booked_by_channel_usd"] == {"branding": 8000.0, "ctv": 12000.0}
    text = rules_summary(facts)
    assert "2 deals booked for $20,000.00 (Branding $8,000.00, CTV $12,000.00)" in text
    assert "No delivery has been read yet." in text


def test_the_agents_summary_is_taken_only_when_its_numbers_are_the_facts(fake_llm):
    job = booked_job()
    fake_llm.script(
        "specialist",
        submit({"text": "Two deals are booked for $20,000 and delivery will beat the plan by 35%."}),
        submit({"text": "Two deals are booked for $20,000, of which ctv takes $12,000; no delivery is read yet."}),
    )
    summary = campaign_summary(job, ask_model=True)
    assert summary["by"].startswith("the reporting agent") and "ctv takes $12,000" in summary["text"]
    assert "35% , which the facts do not" not in fake_llm.requests[1].messages[-1]["content"]
    assert "the summary states 35%" in fake_llm.requests[1].messages[-1]["content"]


def test_when_the_agent_cannot_answer_the_rules_summary_stands(fake_llm, settings):
    settings.LLM_MODE = "off"
    summary = campaign_summary(booked_job(), ask_model=True)
    assert summary["by"] == "rules" and summary["note"] == "LLM_MODE=off"


def test_the_job_page_shows_the_summary_and_asks_the_agent_on_request(client, fake_llm):
    from buyer.accounts.models import Role
    from tests.dashboard._admin import signed_in

    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    job = booked_job()
    page = client.get(reverse("campaigns:job_detail", args=[job.pk])).content.decode()
    assert 'id="summary-rules"' in page and 'id="ask-summary"' in page
    fake_llm.script("specialist", submit({"text": "Two deals are booked for $20,000 across ctv and branding."}))
    after = client.post(reverse("campaigns:job_summary", args=[job.pk]), follow=True).content.decode()
    assert 'id="summary-agent"' in after and "Two deals are booked for $20,000 across ctv and branding." in after
