"""The LLM usage page: the gateway's ledger per day (in the viewer's time zone) and per job, or why it is empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from buyer.accounts.models import Role
from buyer.llm import selectors
from buyer.llm.models import LlmCall, Outcome
from tests.dashboard._admin import signed_in
from tests.factories import BookingJobFactory

pytestmark = pytest.mark.django_db


def _call(*, at: datetime, job=None, cost_micros: int = 1_000, tokens: tuple[int, int] = (100, 10), outcome=Outcome.OK):
    return LlmCall.objects.create(
        job=job,
        agent_role="planner",
        requested_model="anthropic/claude-sonnet-4-5",
        served_model="anthropic/claude-sonnet-4-5",
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        cost_micros=cost_micros,
        latency_ms=900,
        outcome=outcome,
        created_at=at,
    )


def test_the_empty_state_explains_that_without_an_api_key_nothing_calls_a_model(client, settings):
    settings.ANTHROPIC_API_KEY = ""
    signed_in(client, username="ada", role=Role.ADMIN)
    html = client.get(reverse("llm:usage")).content.decode()
    assert "No model calls recorded yet" in html
    assert "The agents are off" in html and "deterministic policies" in html
    assert "no provider key for anthropic/" in html  # why, as LLM_MODE=auto found it
    assert "Per day" not in html


def test_the_empty_state_with_an_api_key_says_calls_will_appear(client, settings):
    settings.ANTHROPIC_API_KEY = "sk-ant-test"
    signed_in(client, username="ada", role=Role.ADMIN)
    html = client.get(reverse("llm:usage")).content.decode()
    assert "The agents are on" in html and "agents (LLM)" in html and "sk-ant-test" not in html


def test_usage_is_summed_per_day_and_per_job_with_totals(client):
    now = timezone.now()
    expensive = BookingJobFactory(campaign__name="Holiday push")
    cheap = BookingJobFactory(campaign__name="Spring CTV")
    _call(at=now, job=expensive, cost_micros=1_234_567_891, tokens=(120_000, 8_000))
    _call(at=now, job=expensive, cost_micros=1_000_000, tokens=(1_000, 500), outcome=Outcome.FALLBACK)
    _call(at=now - timedelta(days=2), job=cheap, cost_micros=250_000, tokens=(2_000, 100), outcome=Outcome.ERROR)
    _call(at=now - timedelta(days=2), cost_micros=5_000)  # outside any job
    _call(at=now - timedelta(days=45), job=cheap, cost_micros=7_000_000)  # outside the 30-day window

    signed_in(client, username="ada", role=Role.ADMIN)
    response = client.get(reverse("llm:usage"))
    html = response.content.decode()
    per_day, per_job = response.context["per_day"], response.context["per_job"]

    assert [row.usage.calls for row in per_day] == [2, 2]
    assert per_day[0].usage.cost_micros == 1_235_567_891 and per_day[0].usage.fallbacks == 1
    assert per_day[1].usage.failed == 1
    assert [(row.campaign_name, row.usage.calls) for row in per_job] == [("Holiday push", 2), ("Spring CTV", 2)]
    assert response.context["window"].calls == 4 and response.context["all_time"].calls == 5
    assert response.context["without_job"].calls == 1

    assert "$1,235.5679" in html  # today's cost, USD with separators
    assert "121,000" in html and "8,500" in html  # today's tokens in and out
    assert "$1,242.8229" in html  # all time
    assert "Holiday push" in html and "Spring CTV" in html


def test_days_follow_the_viewers_time_zone():
    from zoneinfo import ZoneInfo

    # 23:30 UTC on the 1st is already the 2nd in Tokyo.
    at = datetime(2026, 11, 1, 23, 30, tzinfo=UTC)
    _call(at=at)
    now = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)
    with timezone.override(ZoneInfo("Asia/Tokyo")):
        tokyo = selectors.llm_usage_by_day(days=30, now=now)
    with timezone.override(ZoneInfo("UTC")):
        utc = selectors.llm_usage_by_day(days=30, now=now)
    assert [str(row.day) for row in tokyo] == ["2026-11-02"]
    assert [str(row.day) for row in utc] == ["2026-11-01"]


def test_the_per_job_table_keeps_the_most_expensive_jobs():
    now = timezone.now()
    for cost in (10, 30, 20):
        _call(at=now, job=BookingJobFactory(campaign__name=f"cost {cost}"), cost_micros=cost)
    rows = selectors.llm_usage_by_job(limit=2)
    assert [row.campaign_name for row in rows] == ["cost 30", "cost 20"]


def test_a_media_buyer_cannot_see_llm_usage(client):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    assert client.get(reverse("llm:usage")).status_code == 403


def test_the_ledger_refuses_a_negative_cost():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        _call(at=timezone.now(), cost_micros=-1)


def test_every_page_says_who_decides(client, settings):
    signed_in(client, username="mia", role=Role.MEDIA_BUYER)
    settings.LLM_MODE = "off"
    assert (
        'title="Decisions by deterministic policies: LLM_MODE=off">decided by the rules'
        in client.get(reverse("campaigns:jobs")).content.decode()
    )
    settings.LLM_MODE = "on"
    assert ">decided by the agents<" in client.get(reverse("campaigns:jobs")).content.decode()
