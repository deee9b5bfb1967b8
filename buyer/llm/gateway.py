"""The one gateway every model call goes through. Nothing else imports litellm (a test checks it).

It routes an agent role to its models, checks the caps *before* each call, retries transient errors (429, 5xx,
timeouts) a bounded number of times with backoff that honours ``Retry-After``, keeps a circuit breaker per
provider shared by every worker (``ProviderBreaker`` rows), fails over to the fallback model without the
primary provider's own parameters, keeps secrets out of prompts, and writes one ``LlmCall`` ledger row per
attempt — refused ones included — priced from litellm's local cost map (unknown models pessimistically).

litellm is imported lazily, on the first call (it takes seconds), with ``LITELLM_LOCAL_MODEL_COST_MAP=True``
set by the settings so that nothing is ever downloaded. The ``anthropic`` package is not used: litellm speaks
to Anthropic itself, and nothing here needs what only the vendor SDK offers.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from enum import StrEnum
from types import ModuleType
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from buyer.llm.mode import KEYLESS_PROVIDERS
from buyer.llm.models import BreakerState, LlmCall, Outcome, ProviderBreaker
from buyer.sellers.money import decimal_to_micros, micros_to_decimal

logger = logging.getLogger(__name__)


class Role(StrEnum):
    PORTFOLIO_MANAGER = "portfolio_manager"
    CHANNEL_SPECIALIST = "channel_specialist"
    BRIEF_PARSER = "brief_parser"
    REPORTING = "reporting"
    EXECUTION_CHECK = "execution_check"


class StopReason(StrEnum):
    STEP_LIMIT = "step_limit"
    TOKEN_LIMIT = "token_limit"  # noqa: S105 (a stop reason, not a password)
    TIME_LIMIT = "time_limit"
    COST_LIMIT = "cost_limit"
    DAILY_COST_LIMIT = "daily_cost_limit"
    AGENT_STUCK = "agent_stuck"
    INVALID_OUTPUT = "invalid_output"
    CANCELLED = "cancelled"
    UNAVAILABLE = "llm_unavailable"


class AgentStopped(Exception):
    """An agent ended without an answer, for a named ``reason``; the caller falls back to its policy."""

    def __init__(self, reason: StopReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


# --- routing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Which models answer a role, and how."""

    primary: str
    fallback: str
    max_tokens: int
    temperature: float


def provider_params(model: str) -> dict[str, Any]:
    """``LLM_PROVIDER_PARAMS`` for ``model``'s own provider: what a model of another provider never receives."""
    return dict(settings.LLM_PROVIDER_PARAMS.get(provider_of(model), {}))


# Tuned per role around LLM_TEMPERATURE (the guide: "individual agents use tuned values, 0.1-0.5").
_TEMPERATURE_CAP = {
    Role.PORTFOLIO_MANAGER: 0.5,
    Role.CHANNEL_SPECIALIST: 0.3,
    Role.BRIEF_PARSER: 0.1,
    Role.REPORTING: 0.5,
    Role.EXECUTION_CHECK: 0.1,
}
_ROLE_MAX_TOKENS = {
    Role.PORTFOLIO_MANAGER: 1500,
    Role.CHANNEL_SPECIALIST: 1200,
    Role.BRIEF_PARSER: 1200,
    Role.REPORTING: 800,
    Role.EXECUTION_CHECK: 600,
}


def route_for(role: Role) -> Route:
    """The routing table: the portfolio manager on ``MANAGER_LLM_MODEL``, every other role on
    ``DEFAULT_LLM_MODEL``; ``LLM_FALLBACK_MODEL`` behind both; ``LLM_MAX_TOKENS`` bounds every role's own."""
    primary = settings.MANAGER_LLM_MODEL if role == Role.PORTFOLIO_MANAGER else settings.DEFAULT_LLM_MODEL
    fallback = settings.LLM_FALLBACK_MODEL if primary != settings.LLM_FALLBACK_MODEL else ""
    return Route(
        primary=primary,
        fallback=fallback,
        max_tokens=min(settings.LLM_MAX_TOKENS, _ROLE_MAX_TOKENS[role]),
        temperature=min(settings.LLM_TEMPERATURE, _TEMPERATURE_CAP[role]),
    )


def provider_of(model: str) -> str:
    """``anthropic/claude-…`` → ``anthropic``; a bare model name is its own provider."""
    return model.split("/", 1)[0] if "/" in model else model


# --- caps ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caps:
    steps: int
    tokens: int
    seconds: float
    usd: Decimal

    @classmethod
    def for_agent(cls) -> Caps:
        return cls(
            steps=settings.CREW_MAX_ITERATIONS,
            tokens=settings.LLM_AGENT_MAX_TOKENS,
            seconds=settings.LLM_AGENT_MAX_SECONDS,
            usd=settings.LLM_AGENT_MAX_USD,
        )


class Budget:
    """What one agent run may still spend, checked before every call against its own caps, its job's
    (``LLM_JOB_MAX_*``, summed from the ledger, so a job's agents share them across steps and workers) and the
    day's ``LLM_DAILY_MAX_USD`` across all jobs. Cancellation of the job is checked at the same moment."""

    def __init__(
        self,
        *,
        job_id: Any = None,
        caps: Caps | None = None,
        clock: Callable[[], float] = time.monotonic,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.job_id = job_id
        self.caps = caps or Caps.for_agent()
        self._clock = clock
        self._started = clock()
        self._cancelled = cancelled
        self.steps = 0
        self.tokens = 0
        self.cost_micros = 0
        self.calls = 0

    def elapsed(self) -> float:
        return self._clock() - self._started

    def seconds_left(self) -> float:
        return max(0.0, self.caps.seconds - self.elapsed())

    def take_step(self) -> None:
        """One more turn of the agent loop (retries of one call are not steps)."""
        if self.steps >= self.caps.steps:
            raise AgentStopped(StopReason.STEP_LIMIT, f"{self.steps} steps taken, the cap is {self.caps.steps}")
        self.steps += 1

    def check(self, *, tokens: int, cost_micros: int) -> None:
        """Refuse (``AgentStopped``) a call estimated at ``tokens`` and ``cost_micros`` that a cap cannot hold."""
        if self._cancelled is not None and self._cancelled():
            raise AgentStopped(StopReason.CANCELLED, "the job was cancelled")
        if self.elapsed() >= self.caps.seconds:
            raise AgentStopped(StopReason.TIME_LIMIT, f"{self.elapsed():.0f} s spent, the cap is {self.caps.seconds} s")
        if self.tokens + tokens > self.caps.tokens:
            raise AgentStopped(
                StopReason.TOKEN_LIMIT,
                f"{self.tokens:,} + ~{tokens:,} tokens would pass the cap of {self.caps.tokens:,}",
            )
        cap = decimal_to_micros(self.caps.usd)
        if self.cost_micros + cost_micros > cap:
            raise AgentStopped(
                StopReason.COST_LIMIT,
                f"${micros_to_decimal(self.cost_micros + cost_micros):,.4f} would pass the agent's cap of "
                f"${self.caps.usd:,.2f}",
            )
        if self.job_id is not None:
            spent = LlmCall.objects.filter(job_id=self.job_id).aggregate(
                tokens=Sum(F("input_tokens") + F("output_tokens")), cost=Sum("cost_micros"), ms=Sum("latency_ms")
            )
            if (spent["tokens"] or 0) + tokens > settings.LLM_JOB_MAX_TOKENS:
                raise AgentStopped(StopReason.TOKEN_LIMIT, f"the job's cap of {settings.LLM_JOB_MAX_TOKENS:,} tokens")
            if (spent["ms"] or 0) / 1000 >= settings.LLM_JOB_MAX_SECONDS:
                raise AgentStopped(StopReason.TIME_LIMIT, f"the job's cap of {settings.LLM_JOB_MAX_SECONDS} s of calls")
            if (spent["cost"] or 0) + cost_micros > decimal_to_micros(settings.LLM_JOB_MAX_USD):
                raise AgentStopped(StopReason.COST_LIMIT, f"the job's cap of ${settings.LLM_JOB_MAX_USD:,.2f}")
        midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        today = LlmCall.objects.filter(created_at__gte=midnight).aggregate(cost=Sum("cost_micros"))["cost"] or 0
        if today + cost_micros > decimal_to_micros(settings.LLM_DAILY_MAX_USD):
            raise AgentStopped(
                StopReason.DAILY_COST_LIMIT, f"today's cap of ${settings.LLM_DAILY_MAX_USD:,.2f} across all jobs"
            )

    def spend(self, *, tokens: int, cost_micros: int) -> None:
        self.tokens += tokens
        self.cost_micros += cost_micros
        self.calls += 1


# --- pricing ------------------------------------------------------------------------------------------------


def _litellm() -> ModuleType:
    import litellm

    litellm.suppress_debug_info = True
    return litellm


def price_micros(model: str, input_tokens: int, output_tokens: int) -> int:
    """USD micros for a call, from litellm's local cost map; a model it does not price is priced
    pessimistically, at ``LLM_UNKNOWN_MODEL_USD_PER_MTOK`` (input, output: the dearest mainstream tier)."""
    litellm = _litellm()
    prompt = completion = 0.0
    if _priced(litellm, model):
        try:
            prompt, completion = litellm.cost_per_token(
                model=model, prompt_tokens=input_tokens, completion_tokens=output_tokens
            )
        except Exception:  # litellm raises its own errors for what it cannot price  # noqa: BLE001
            prompt = completion = 0.0
    if not prompt + completion and input_tokens + output_tokens and provider_of(model) not in KEYLESS_PROVIDERS:
        # Unknown to the cost map (litellm then answers 0, it does not refuse): never let a cap be passed for free.
        per_input, per_output = settings.LLM_UNKNOWN_MODEL_USD_PER_MTOK
        prompt, completion = float(per_input) * input_tokens / 1e6, float(per_output) * output_tokens / 1e6
    return math.ceil((prompt + completion) * 1_000_000)


def _priced(litellm: Any, model: str) -> bool:
    """Whether litellm's cost map knows ``model`` (as ``provider/name`` or bare ``name``)."""
    return model in litellm.model_cost or model.split("/", 1)[-1] in litellm.model_cost


def estimate_tokens(messages: Iterable[dict[str, Any]], tools: Iterable[dict[str, Any]] = ()) -> int:
    """A pessimistic prompt size: three characters a token (real text averages about four)."""
    size = sum(len(str(m.get("content") or "")) + len(str(m.get("tool_calls") or "")) for m in messages)
    size += sum(len(str(t)) for t in tools)
    return size // 3 + 16


# --- secrets ------------------------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD)", re.IGNORECASE)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple | set | frozenset):
        return [s for item in value for s in _strings(item)]
    return []


def _secrets() -> list[str]:
    """Every configured secret value: settings whose name says key, token, secret or password (strings, lists,
    mappings), the provider keys litellm reads from the environment, and the provider parameters."""
    from buyer.llm.mode import PROVIDER_KEYS

    values: list[str] = []
    for name in dir(settings):
        if name.isupper() and (_SECRET_NAME.search(name) or name == "LLM_PROVIDER_PARAMS"):
            values += _strings(getattr(settings, name, None))
    for names in PROVIDER_KEYS.values():
        values += [os.environ.get(n, "") for n in names]
    values += [v for k, v in os.environ.items() if _SECRET_NAME.search(k)]
    return sorted({v for v in values if isinstance(v, str) and len(v) >= 8 and not v.startswith("http")}, key=len)[::-1]


def scrub(messages: list[dict[str, Any]], extra_secrets: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The messages with every secret value replaced: no key reaches a prompt, whatever a field held."""
    secrets = [s for s in [*_secrets(), *extra_secrets] if s]
    if not secrets:
        return messages

    def clean(text: str, role: Any) -> str:
        for secret in secrets:
            if secret in text:
                logger.warning("a secret was removed from a prompt (role %s)", role)
                text = text.replace(secret, "[redacted]")
        return text

    cleaned = []
    for message in messages:
        if isinstance(message.get("content"), str):
            message = {**message, "content": clean(message["content"], message.get("role"))}
        if message.get("tool_calls"):
            message = {
                **message,
                "tool_calls": [
                    {
                        **call,
                        "function": {**call["function"], "arguments": clean(call["function"]["arguments"], "tool")},
                    }
                    for call in message["tool_calls"]
                ],
            }
        cleaned.append(message)
    return cleaned


# --- the breaker --------------------------------------------------------------------------------------------


def breaker_admits(provider: str) -> bool:
    """Whether a call to ``provider`` may go out: closed, or the one trial after the cool-down."""
    row = ProviderBreaker.objects.filter(provider=provider).first()
    if row is None or row.state == BreakerState.CLOSED:
        return True
    cooldown = timedelta(seconds=settings.LLM_BREAKER_COOLDOWN_SECONDS)
    if row.state == BreakerState.HALF_OPEN:
        # A trial is out; one that never reported (its worker died, a cap refused it) gives way after a cool-down.
        if row.updated_at and timezone.now() >= row.updated_at + cooldown:
            return bool(
                ProviderBreaker.objects.filter(
                    pk=row.pk, state=BreakerState.HALF_OPEN, updated_at=row.updated_at
                ).update(updated_at=timezone.now())
            )
        return False
    cooled = row.opened_at is None or timezone.now() >= row.opened_at + timedelta(
        seconds=settings.LLM_BREAKER_COOLDOWN_SECONDS
    )
    # The worker whose conditional update wins takes the trial; the others keep failing fast.
    return cooled and bool(
        ProviderBreaker.objects.filter(pk=row.pk, state=BreakerState.OPEN, opened_at=row.opened_at).update(
            state=BreakerState.HALF_OPEN
        )
    )


def breaker_record(provider: str, *, ok: bool, error: str = "") -> None:
    if ok:
        ProviderBreaker.objects.filter(provider=provider).exclude(
            state=BreakerState.CLOSED, consecutive_failures=0
        ).update(state=BreakerState.CLOSED, consecutive_failures=0, opened_at=None)
        return
    with transaction.atomic():
        row, _ = ProviderBreaker.objects.select_for_update().get_or_create(provider=provider)
        row.consecutive_failures += 1
        row.last_error = error[:500]
        if row.state == BreakerState.HALF_OPEN or row.consecutive_failures >= settings.LLM_BREAKER_FAILURES:
            if row.state != BreakerState.OPEN:
                logger.warning("LLM provider %s: breaker opens after %s failures", provider, row.consecutive_failures)
            row.state, row.opened_at = BreakerState.OPEN, timezone.now()
        row.save()


# --- calls --------------------------------------------------------------------------------------------------


@dataclass
class Reply:
    """What a model answered: its message (content and tool calls), who answered, what it cost."""

    content: str
    tool_calls: list[dict[str, Any]]
    served_model: str
    fallback_used: bool
    input_tokens: int
    output_tokens: int


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or getattr(exc, "headers", None) or {}
    value = headers.get("retry-after") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


def _is_transient(exc: BaseException) -> bool:
    litellm = _litellm()
    transient = (
        litellm.RateLimitError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
        litellm.APIConnectionError,
        litellm.Timeout,
    )
    if isinstance(exc, transient):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(status, int) and (status == 429 or status >= 500)


def pause(seconds: float) -> None:
    """The backoff's wait (a test replaces it)."""
    time.sleep(seconds)


class Gateway:
    def __init__(self, *, sleep: Callable[[float], None] | None = None) -> None:
        self.sleep = sleep or pause

    def complete(
        self,
        *,
        role: Role,
        messages: list[dict[str, Any]],
        budget: Budget,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
    ) -> Reply:
        """One model answer for ``role``: the primary model (retried while transient), else the fallback.
        Raises ``AgentStopped`` at a cap (the refused call recorded) or when no model answered."""
        route = route_for(role)
        messages = scrub(messages)
        failures: list[str] = []
        for model in [m for m in (route.primary, route.fallback) if m]:
            fallback = model != route.primary
            provider = provider_of(model)
            if not breaker_admits(provider):
                failures.append(f"{model}: the {provider} breaker is open")
                self._record(budget, role, route.primary, model, outcome=Outcome.ERROR, error=failures[-1])
                continue
            params: dict[str, Any] = {
                "model": model,
                "messages": messages,
                "max_tokens": route.max_tokens,
                "temperature": route.temperature,
                "num_retries": 0,  # the retries are ours: bounded, logged, priced
                "drop_params": True,  # a parameter the model does not take is dropped, not an error
            }
            if tools:
                params |= {"tools": tools, "tool_choice": tool_choice or "auto"}
            # Provider-specific parameters go to their own provider only: not the primary's to a fallback.
            params |= {k: v for k, v in provider_params(model).items() if k not in params}
            for attempt in range(settings.LLM_MAX_RETRIES + 1):
                estimate = estimate_tokens(messages, tools or ())
                cost_estimate = price_micros(model, estimate, route.max_tokens)
                try:
                    budget.check(tokens=estimate + route.max_tokens, cost_micros=cost_estimate)
                except AgentStopped as stop:
                    self._record(
                        budget, role, route.primary, model, outcome=Outcome.CAP_REACHED, error=str(stop), stop=stop
                    )
                    raise
                # Each attempt may take only what the agent has left (a retry after a backoff has less).
                params["timeout"] = min(settings.LLM_TIMEOUT_SECONDS, max(1.0, budget.seconds_left()))
                started = time.monotonic()
                try:
                    reply = self._call(params, fallback=fallback)
                except _Transient as exc:
                    latency = time.monotonic() - started
                    failures.append(f"{model}: {exc}")
                    breaker_record(provider, ok=False, error=str(exc))
                    self._record(
                        budget, role, route.primary, model, outcome=Outcome.ERROR, error=str(exc), latency=latency
                    )
                    if attempt < settings.LLM_MAX_RETRIES and breaker_admits(provider):
                        wait = exc.retry_after if exc.retry_after is not None else 2**attempt
                        if wait > settings.LLM_RETRY_AFTER_MAX_SECONDS or wait >= budget.seconds_left():
                            break  # not before the provider allows, nor too late: the fallback, or the policy
                        self.sleep(wait)
                        continue
                    break
                except SoftTimeLimitExceeded:
                    raise  # the step's time is up: the worker stops it, nothing here goes on
                except Exception as exc:  # not transient (400, 401, 404…): not retried, the fallback may do  # noqa: BLE001
                    latency = time.monotonic() - started
                    message = f"{type(exc).__name__}: {str(exc)[:300]}"
                    failures.append(f"{model}: {message}")
                    self._record(
                        budget, role, route.primary, model, outcome=Outcome.ERROR, error=message, latency=latency
                    )
                    break
                latency = time.monotonic() - started
                breaker_record(provider, ok=True)
                # A reply without usage is counted at the estimate, never for free.
                reply.input_tokens = reply.input_tokens or estimate
                if not reply.output_tokens:
                    reply.output_tokens = (
                        len(reply.content) + sum(len(c["arguments"]) for c in reply.tool_calls)
                    ) // 3 + 1
                cost = price_micros(model, reply.input_tokens, reply.output_tokens)
                budget.spend(tokens=reply.input_tokens + reply.output_tokens, cost_micros=cost)
                self._record(
                    budget,
                    role,
                    route.primary,
                    reply.served_model or model,
                    outcome=Outcome.FALLBACK if fallback else Outcome.OK,
                    latency=latency,
                    tokens=(reply.input_tokens, reply.output_tokens),
                    cost_micros=cost,
                )
                return reply
        raise AgentStopped(StopReason.UNAVAILABLE, "; ".join(failures)[:1000] or "no model is configured")

    def _call(self, params: dict[str, Any], *, fallback: bool) -> Reply:
        litellm = _litellm()
        try:
            response = litellm.completion(**params)
        except Exception as exc:
            if _is_transient(exc):
                raise _Transient(f"{type(exc).__name__}: {str(exc)[:300]}", _retry_after(exc)) from exc
            raise
        message = response.choices[0].message
        calls = []
        for call in getattr(message, "tool_calls", None) or []:
            calls.append({"id": call.id, "name": call.function.name, "arguments": call.function.arguments or ""})
        usage = getattr(response, "usage", None)
        return Reply(
            content=message.content or "",
            tool_calls=calls,
            served_model=str(getattr(response, "model", "") or params["model"]),
            fallback_used=fallback,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        )

    def refuse(self, *, role: Role, budget: Budget, stop: AgentStopped) -> None:
        """Record a call the agent loop refused before asking the gateway (its step cap)."""
        self._record(budget, role, route_for(role).primary, "", outcome=Outcome.CAP_REACHED, error=str(stop), stop=stop)

    @staticmethod
    def _record(
        budget: Budget,
        role: Role,
        requested: str,
        served: str,
        *,
        outcome: Outcome,
        error: str = "",
        stop: AgentStopped | None = None,
        latency: float = 0.0,
        tokens: tuple[int, int] = (0, 0),
        cost_micros: int = 0,
    ) -> None:
        LlmCall.objects.create(
            job_id=budget.job_id,
            agent_role=str(role),
            requested_model=requested[:200],
            served_model=served[:200] if outcome in (Outcome.OK, Outcome.FALLBACK) else "",
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            cost_micros=cost_micros,
            latency_ms=int(latency * 1000),
            outcome=outcome,
            stop_reason=str(stop.reason) if stop is not None else "",
            error=error[:2000],
        )


def llm_ledger_cost(job_id: Any) -> Decimal:
    """What a job's model calls cost, in USD."""
    return micros_to_decimal(LlmCall.objects.filter(job_id=job_id).aggregate(c=Sum("cost_micros"))["c"] or 0)
