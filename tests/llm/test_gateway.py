"""The LLM gateway and the agent loop, against a scripted model: caps, retries, the breaker, failover, the
ledger, validation, secrets. No network."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import BaseModel, ConfigDict

from buyer.llm.agent import AnswerRejected, run_agent
from buyer.llm.gateway import AgentStopped, Budget, Caps, Role, StopReason, price_micros
from buyer.llm.models import LlmCall, Outcome, ProviderBreaker
from tests.factories import BookingJobFactory
from tests.llm.fake import (
    rate_limited,
    raw_arguments,
    server_error,
    submit,
    text,
    timed_out,
    tool,
    unauthorized,
)

pytestmark = pytest.mark.django_db


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pick: str
    reason: str


def ask(budget: Budget | None = None, *, check=None, tools=None) -> Answer:
    return run_agent(
        role=Role.CHANNEL_SPECIALIST,
        system="Choose.",
        user="<data>{}</data>",
        schema=Answer,
        budget=budget or Budget(),
        check=check,
        tools=tools,
    ).value


def rows() -> list[tuple[str, str, str]]:
    return list(LlmCall.objects.order_by("pk").values_list("outcome", "served_model", "stop_reason"))


def test_an_answer_is_validated_priced_and_recorded_with_the_model_that_served_it(fake_llm):
    fake_llm.script("specialist", submit({"pick": "L1", "reason": "fits"}, prompt_tokens=1000, completion_tokens=100))

    assert ask() == Answer(pick="L1", reason="fits")

    (call,) = LlmCall.objects.all()
    assert (call.agent_role, call.requested_model, call.served_model) == (
        "channel_specialist",
        "scripted/specialist",
        "specialist",
    )
    assert (call.input_tokens, call.output_tokens, call.outcome) == (1000, 100, Outcome.OK)
    assert call.cost_micros == price_micros("scripted/specialist", 1000, 100) > 0
    (request,) = fake_llm.requests
    assert request.params["max_tokens"] > 0 and request.params["tool_choice"]["function"]["name"] == "submit"


def test_an_unknown_model_is_priced_pessimistically(settings):
    known = price_micros("anthropic/claude-sonnet-4-5-20250929", 1_000_000, 0)
    assert known == 3_000_000  # $3 per million input tokens, from litellm's local cost map
    assert price_micros("scripted/nobody-priced-this", 1_000_000, 1_000_000) == 90_000_000  # $15 + $75
    # litellm prices a model its map lacks at 0 rather than refusing: that would pass every cap for free.
    assert price_micros("anthropic/claude-opus-4-20250514", 1_000_000, 0) == 15_000_000
    assert price_micros("ollama/llama3", 1_000_000, 1_000_000) == 0  # served locally: free


def test_endless_tool_calls_stop_at_the_step_limit_and_the_refusal_is_recorded(fake_llm, settings):
    settings.CREW_MAX_ITERATIONS = 4
    fake_llm.responder = lambda request: tool("lookup", {"q": "more"})

    with pytest.raises(AgentStopped) as stopped:
        ask()

    assert stopped.value.reason == StopReason.STEP_LIMIT
    assert len(fake_llm.requests) == 4
    assert rows() == [("ok", "specialist", "")] * 4 + [("cap_reached", "", "step_limit")]
    # The unknown tool was answered with the tools that exist, not followed.
    assert "There is no tool 'lookup'" in fake_llm.requests[1].messages[-1]["content"]


def test_a_read_only_tool_is_run_and_its_result_framed_as_data(fake_llm):
    from buyer.llm.agent import Tool

    fake_llm.script("specialist", tool("details", {"line": "L2"}), submit({"pick": "L2", "reason": "read it"}))
    details = Tool(
        "Details of a line",
        {"type": "object", "properties": {"line": {"type": "string"}}},
        lambda a: {"line": a["line"], "ok": True},
    )

    assert ask(tools={"details": details}).pick == "L2"
    result = fake_llm.requests[1].messages[-1]
    assert result["role"] == "tool" and result["content"].startswith("<data>") and '"ok": true' in result["content"]


def test_a_cost_cap_refuses_the_call_before_it_is_made(fake_llm):
    budget = Budget(caps=Caps(steps=5, tokens=100_000, seconds=60, usd=Decimal("0.000001")))

    with pytest.raises(AgentStopped) as stopped:
        ask(budget)

    assert stopped.value.reason == StopReason.COST_LIMIT and fake_llm.requests == []
    assert rows() == [("cap_reached", "", "cost_limit")]


def test_the_jobs_cap_counts_every_agent_of_the_job_and_the_daily_cap_every_job(fake_llm, settings):
    job = BookingJobFactory()
    LlmCall.objects.create(
        job=job, agent_role="portfolio_manager", requested_model="x", cost_micros=4_999_000, outcome="ok"
    )
    settings.LLM_JOB_MAX_USD = Decimal(5)

    with pytest.raises(AgentStopped) as per_job:
        ask(Budget(job_id=job.pk))
    assert per_job.value.reason == StopReason.COST_LIMIT and "the job's cap" in per_job.value.message

    settings.LLM_DAILY_MAX_USD = Decimal("5.01")
    with pytest.raises(AgentStopped) as per_day:
        ask(Budget())
    assert per_day.value.reason == StopReason.DAILY_COST_LIMIT
    assert fake_llm.requests == []


def test_a_token_cap_and_a_cancelled_job_stop_before_the_call(fake_llm):
    with pytest.raises(AgentStopped) as tokens:
        ask(Budget(caps=Caps(steps=5, tokens=50, seconds=60, usd=Decimal(1))))
    assert tokens.value.reason == StopReason.TOKEN_LIMIT

    job = BookingJobFactory(cancel_requested=True)
    with pytest.raises(AgentStopped) as cancelled:
        ask(Budget(job_id=job.pk, cancelled=lambda: True))
    assert cancelled.value.reason == StopReason.CANCELLED
    assert fake_llm.requests == []


def test_a_429_storm_is_retried_boundedly_honouring_retry_after_then_opens_the_breaker(fake_llm, settings):
    settings.LLM_MAX_RETRIES, settings.LLM_BREAKER_FAILURES = 2, 3
    fake_llm.responder = lambda request: rate_limited(retry_after=7)

    with pytest.raises(AgentStopped) as first:
        ask()
    assert first.value.reason == StopReason.UNAVAILABLE
    assert len(fake_llm.requests) == 3 and fake_llm.slept == [7, 7]  # 1 call + 2 retries, waiting as told
    assert ProviderBreaker.objects.get(provider="scripted").state == "open"

    with pytest.raises(AgentStopped) as second:
        ask()
    assert "breaker is open" in second.value.message
    assert len(fake_llm.requests) == 3  # failing fast: no call went out
    assert [r[0] for r in rows()] == ["error"] * 4  # every attempt, and the refusal, is in the ledger


def test_retry_after_is_honoured_5xx_and_timeouts_retried_and_a_long_wait_fails_over(fake_llm, settings):
    settings.LLM_RETRY_AFTER_MAX_SECONDS, settings.LLM_MAX_RETRIES = 5, 2
    fake_llm.script("specialist", rate_limited(retry_after=4), server_error(), submit({"pick": "L1", "reason": "x"}))
    assert ask().pick == "L1"
    assert fake_llm.slept == [4, 2]  # as Retry-After said; then exponential backoff (1 s, 2 s, …)

    fake_llm.script("specialist", timed_out(), submit({"pick": "L2", "reason": "x"}))
    assert ask().pick == "L2"
    assert ProviderBreaker.objects.get(provider="scripted").consecutive_failures == 0  # an answer closed it

    # A provider that asks for an hour is not retried early (that would only feed its rate limit): the fallback
    # answers instead.
    settings.LLM_FALLBACK_MODEL = "scripted/fallback"
    fake_llm.script("specialist", rate_limited(retry_after=3600))
    fake_llm.script("fallback", submit({"pick": "L3", "reason": "x"}))
    assert ask().pick == "L3" and fake_llm.slept == [4, 2, 1]


def test_a_non_transient_error_is_not_retried_and_the_fallback_answers(fake_llm, settings):
    settings.LLM_FALLBACK_MODEL = "scripted/fallback"
    settings.LLM_PROVIDER_PARAMS = {"scripted": {"top_k": 5}}
    fake_llm.script("specialist", unauthorized())
    fake_llm.script("fallback", submit({"pick": "L3", "reason": "x"}))

    assert ask().pick == "L3"

    assert [r.model for r in fake_llm.requests] == ["specialist", "fallback"]
    assert rows() == [("error", "", ""), ("fallback", "fallback", "")]
    assert LlmCall.objects.get(outcome="fallback").requested_model == "scripted/specialist"


def test_provider_parameters_go_only_to_their_own_provider(fake_llm, settings):
    from buyer.llm.gateway import provider_params

    settings.LLM_PROVIDER_PARAMS = {"anthropic": {"top_k": 40}, "scripted": {"seed": 7}}
    fake_llm.script("specialist", submit({"pick": "L1", "reason": "x"}))
    ask()
    params = fake_llm.requests[0].params
    assert params.get("seed") == 7 and "top_k" not in params
    assert provider_params("openai/gpt-4o") == {} and provider_params("anthropic/claude") == {"top_k": 40}


def test_invalid_output_is_sent_back_once_with_what_was_wrong(fake_llm):
    fake_llm.script("specialist", raw_arguments("{not json"), submit({"pick": "L1", "reason": "fixed"}))
    assert ask().reason == "fixed"
    assert "Your answer was rejected" in fake_llm.requests[1].messages[-1]["content"]

    fake_llm.script("specialist", submit({"pick": "L1"}), submit({"pick": "L1", "reason": "x", "cpm": 900}))
    with pytest.raises(AgentStopped) as twice:
        ask()
    assert twice.value.reason == StopReason.INVALID_OUTPUT and "cpm" in twice.value.message


def test_the_callers_check_rejects_what_the_schema_let_through(fake_llm):
    def quoted_only(answer: Answer) -> None:
        if answer.pick != "L1":
            raise AnswerRejected(f"{answer.pick} was not quoted")

    fake_llm.script("specialist", submit({"pick": "L9", "reason": "x"}), submit({"pick": "L1", "reason": "ok"}))
    assert ask(check=quoted_only).pick == "L1"
    assert "L9 was not quoted" in fake_llm.requests[1].messages[-1]["content"]


def test_a_reply_with_neither_answer_nor_tool_call_is_agent_stuck(fake_llm):
    fake_llm.script("specialist", text(""))
    with pytest.raises(AgentStopped) as stuck:
        ask()
    assert stuck.value.reason == StopReason.AGENT_STUCK

    fake_llm.script("specialist", text("I think L1 is best."), text("Really, L1."))
    with pytest.raises(AgentStopped) as chatty:
        ask()
    assert chatty.value.reason == StopReason.AGENT_STUCK and len(fake_llm.requests) == 3

    fake_llm.script("specialist", text('```json\n{"pick": "L4", "reason": "in text"}\n```'))
    assert ask().pick == "L4"  # an answer in plain JSON is taken


def test_no_secret_reaches_a_prompt(fake_llm, settings, monkeypatch):
    settings.ANTHROPIC_API_KEY = "sk-ant-api03-very-secret-value"
    settings.API_KEY = "buyer-admin-key-12345"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-from-the-environment")
    settings.LLM_PROVIDER_PARAMS = {"scripted": {"api_key": "provider-param-secret-99"}}
    fake_llm.script("specialist", submit({"pick": "L1", "reason": "x"}))
    run_agent(
        role=Role.CHANNEL_SPECIALIST,
        system="Choose.",
        user=(
            f"<data>our keys: {settings.ANTHROPIC_API_KEY}, {settings.API_KEY}, sk-openai-from-the-environment, "
            "provider-param-secret-99</data>"
        ),
        schema=Answer,
        budget=Budget(),
    )
    sent = json.dumps(fake_llm.requests[0].messages)
    for secret in (settings.ANTHROPIC_API_KEY, settings.API_KEY, "sk-openai-from-the-environment", "provider-param"):
        assert secret not in sent
    assert sent.count("[redacted]") == 4


def test_an_agent_past_its_seconds_and_a_job_past_its_seconds_stop_at_time_limit(fake_llm, settings):
    now = [0.0]
    budget = Budget(caps=Caps(steps=5, tokens=100_000, seconds=30, usd=Decimal(1)), clock=lambda: now[0])
    now[0] = 31.0
    with pytest.raises(AgentStopped) as agent:
        ask(budget)
    assert agent.value.reason == StopReason.TIME_LIMIT

    job = BookingJobFactory()
    LlmCall.objects.create(
        job=job, agent_role="portfolio_manager", requested_model="x", latency_ms=301_000, outcome="ok"
    )
    settings.LLM_JOB_MAX_SECONDS = 300
    with pytest.raises(AgentStopped) as per_job:
        ask(Budget(job_id=job.pk))
    assert per_job.value.reason == StopReason.TIME_LIMIT and "the job's cap" in per_job.value.message
    assert fake_llm.requests == []
