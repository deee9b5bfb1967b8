"""What ``/metrics`` reads when scraped, the same on every web instance: jobs by status, the broker's queue
depths, step durations, sellers, LLM calls, open pacing alerts and the workers' heartbeats.

Each source is read on its own: when the database or the broker cannot be read, its metrics are left out and
``buyer_metrics_source_up{source=…}`` says 0, while the rest (and the web process's HTTP counters) still
answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate

from django.conf import settings
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

DATABASE, BROKER = "database", "broker"
Family = Metric


def job_families() -> Iterator[Family]:
    from campaigns.models import JobStatus
    from campaigns.selectors import job_totals_by_status

    jobs = GaugeMetricFamily("buyer_jobs", "Booking jobs by status.", labels=["status"])
    totals = job_totals_by_status()
    for status in JobStatus.values:
        jobs.add_metric([status], totals.get(status, 0))
    yield jobs


def step_families() -> Iterator[Family]:
    from buyer.metrics.models import STEP_BOUNDS, StepTiming

    family = HistogramMetricFamily(
        "buyer_step_duration_seconds",
        "Job steps by stage and outcome, as the workers timed them (claim to end).",
        labels=["stage", "outcome"],
    )
    bounds = [str(bound) for bound in STEP_BOUNDS] + ["+Inf"]
    for row in StepTiming.objects.order_by("stage", "outcome"):
        cumulative = list(accumulate(row.buckets()))
        family.add_metric([row.stage, row.outcome], list(zip(bounds, cumulative, strict=True)), row.sum_seconds)
    yield family


def seller_families() -> Iterator[Family]:
    from buyer.sellers.models import BreakerState, Seller

    labels = ["seller_id", "seller"]
    calls = CounterMetricFamily("buyer_seller_calls", "Calls made to each seller.", labels=labels)
    errors = CounterMetricFamily("buyer_seller_errors", "Calls to each seller that failed.", labels=labels)
    latency = GaugeMetricFamily(
        "buyer_seller_latency_seconds", "Moving average of each seller's answer time.", labels=labels
    )
    failures = GaugeMetricFamily(
        "buyer_seller_consecutive_failures", "Failures in a row since each seller's last success.", labels=labels
    )
    enabled = GaugeMetricFamily("buyer_seller_enabled", "1 when an admin has the seller enabled.", labels=labels)
    breaker = GaugeMetricFamily(
        "buyer_seller_breaker_state",
        "Each seller's circuit breaker: 1 for its current state.",
        labels=[*labels, "state"],
    )
    rows = Seller.objects.order_by("pk").values_list(
        "pk", "name", "calls_total", "errors_total", "latency_ms", "consecutive_failures", "enabled", "breaker_state"
    )
    for pk, name, calls_total, errors_total, latency_ms, consecutive, is_enabled, state in rows:
        key = [str(pk), name]
        calls.add_metric(key, calls_total)
        errors.add_metric(key, errors_total)
        if latency_ms is not None:
            latency.add_metric(key, latency_ms / 1000)
        failures.add_metric(key, consecutive)
        enabled.add_metric(key, 1 if is_enabled else 0)
        for choice in BreakerState.values:
            breaker.add_metric([*key, choice], 1 if state == choice else 0)
    yield from (calls, errors, latency, failures, enabled, breaker)


def llm_families() -> Iterator[Family]:
    from buyer.llm.models import BreakerState, LlmCall, ProviderBreaker

    calls = CounterMetricFamily(
        "buyer_llm_calls", "Model calls by agent role, model and outcome.", labels=["agent_role", "model", "outcome"]
    )
    tokens = CounterMetricFamily(
        "buyer_llm_tokens",
        "Tokens by agent role, model and kind (input, output).",
        labels=["agent_role", "model", "kind"],
    )
    cost = CounterMetricFamily(
        "buyer_llm_cost_usd", "What the model calls cost, in USD.", labels=["agent_role", "model"]
    )
    rows = (
        LlmCall.objects.values("agent_role", "requested_model", "served_model", "outcome")
        .annotate(
            n=Count("pk"),
            input=Coalesce(Sum("input_tokens"), 0),
            output=Coalesce(Sum("output_tokens"), 0),
            micros=Coalesce(Sum("cost_micros"), 0),
        )
        .order_by("agent_role", "requested_model", "served_model", "outcome")
    )
    spend: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        model = row["served_model"] or row["requested_model"]  # none answered: the model asked for
        role = row["agent_role"]
        calls.add_metric([role, model, row["outcome"]], row["n"])
        totals = spend.setdefault((role, model), [0, 0, 0])
        totals[0] += row["input"]
        totals[1] += row["output"]
        totals[2] += row["micros"]
    for (role, model), (input_tokens, output_tokens, micros) in spend.items():
        tokens.add_metric([role, model, "input"], input_tokens)
        tokens.add_metric([role, model, "output"], output_tokens)
        cost.add_metric([role, model], micros / 1_000_000)
    breaker = GaugeMetricFamily(
        "buyer_llm_provider_breaker_state",
        "Each model provider's circuit breaker: 1 for its current state.",
        labels=["provider", "state"],
    )
    for provider, state in ProviderBreaker.objects.order_by("provider").values_list("provider", "state"):
        for choice in BreakerState.values:
            breaker.add_metric([provider, choice], 1 if state == choice else 0)
    yield from (calls, tokens, cost, breaker)


def pacing_families() -> Iterator[Family]:
    from pacing.models import AlertLevel, PacingAlert

    family = GaugeMetricFamily(
        "buyer_pacing_alerts_open", "Pacing alerts not yet resolved, by level.", labels=["level"]
    )
    counts = dict(
        PacingAlert.objects.filter(resolved_at__isnull=True).values_list("level").annotate(n=Count("pk")).order_by()
    )
    for level in AlertLevel.values:
        family.add_metric([level], counts.get(level, 0))
    yield family


def heartbeat_families() -> Iterator[Family]:
    from buyer.health.checks import heartbeat_roles
    from buyer.health.models import Heartbeat

    age = GaugeMetricFamily(
        "buyer_worker_heartbeat_age_seconds",
        "Seconds since each role (a queue's workers, beat) last wrote its heartbeat.",
        labels=["role"],
    )
    fresh = GaugeMetricFamily(
        "buyer_worker_heartbeat_fresh",
        "1 when the role's heartbeat is younger than HEALTH_HEARTBEAT_STALE_SECONDS.",
        labels=["role"],
    )
    roles = heartbeat_roles()
    seen = dict(Heartbeat.objects.filter(role__in=roles).values_list("role", "seen_at"))
    now = timezone.now()
    for role in roles:
        seen_at = seen.get(role)
        if seen_at is None:
            fresh.add_metric([role], 0)
            continue
        seconds = max(0.0, (now - seen_at).total_seconds())
        age.add_metric([role], seconds)
        fresh.add_metric([role], 1 if seconds <= settings.HEALTH_HEARTBEAT_STALE_SECONDS else 0)
    yield from (age, fresh)


def queue_families() -> Iterator[Family]:
    from buyer.health.checks import queue_depths

    family = GaugeMetricFamily("buyer_queue_depth", "Tasks waiting in each queue of the broker.", labels=["queue"])
    for queue, depth in queue_depths().items():
        family.add_metric([queue], depth)
    yield family


SOURCES: dict[str, tuple[Callable[[], Iterator[Family]], ...]] = {
    DATABASE: (job_families, step_families, seller_families, llm_families, pacing_families, heartbeat_families),
    BROKER: (queue_families,),
}


class StateCollector(Collector):
    """The database's and the broker's metrics, read on every scrape."""

    def collect(self) -> Iterable[Family]:
        up = GaugeMetricFamily(
            "buyer_metrics_source_up", "1 when the source could be read for this scrape.", labels=["source"]
        )
        for source, readers in SOURCES.items():
            families: list[Family] = []
            try:
                for read in readers:
                    families.extend(read())
            except Exception as exc:  # noqa: BLE001 - a source that is down leaves out its metrics, never the page
                logger.warning("metrics: %s could not be read: %s", source, type(exc).__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        info = GaugeMetricFamily("buyer_build_info", "The running version.", labels=["version"])
        info.add_metric([settings.VERSION], 1)
        yield from (up, info)
