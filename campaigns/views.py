"""Dashboard pages for media buyers: jobs, new bookings, approvals, deals. Plain function views with HTMX
partials; every page and action works without JavaScript, and every money-moving action has a confirmation
page that states the amount. State and budget are checked again by the services when the action is posted."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.functional import cached_property
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from buyer.accounts.roles import media_buyer_required
from buyer.csvsafe import csv_download
from buyer.errors import Conflict, DomainError
from buyer.events.models import EventType
from buyer.events.selectors import event_timeline
from buyer.events.views import timeline_entries
from buyer.htmx import HtmxHttpRequest
from buyer.llm.mode import llm_mode
from buyer.sellers.money import micros_to_decimal
from buyer.words import count, verb
from campaigns import brief_intake as brief_intake_service
from campaigns import charts, job_rows, selectors, services
from campaigns.forms import (
    JOB_FILTER_WIDGETS,
    BookingForm,
    BriefIntakeForm,
    DealFilterForm,
    JobFilterForm,
    booking_initial,
    job_filter_widgets,
)
from campaigns.models import BookedDeal, BookingJob, JobStatus, Recommendation, RecommendationStatus
from campaigns.reconciliation import reconcile
from campaigns.report import campaign_summary
from pacing.selectors import budgets_reallocated, campaign_pacing_statuses, deal_pacing

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

JOBS_PER_PAGE = 25
DEALS_PER_PAGE = 25
# "selected" leaves the other lines waiting for a decision; "selected_reject" rejects them.
APPROVAL_ACTIONS = ("selected", "selected_reject", "all", "reject")
DSP_LABELS = {"ttd": "The Trade Desk", "dv360": "Display & Video 360", "xandr": "Xandr"}


# --- Helpers ------------------------------------------------------------------------------------------------


def _wants_partial(request: HtmxHttpRequest) -> bool:
    """An HTMX request for a fragment; a history restore after a pushed URL needs the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


class _CountedPaginator(Paginator):
    """A paginator told how many items there are, instead of counting them."""

    def __init__(self, items: QuerySet, per_page: int, *, count: int):
        super().__init__(items, per_page)
        self._count = count

    @cached_property
    def count(self) -> int:
        return self._count


def _page(request: HttpRequest, items: QuerySet, per_page: int, *, count: int | None = None) -> Page:
    """One page of ``items``; ``count``, when known, spares the paginator its COUNT query."""
    paginator = Paginator(items, per_page) if count is None else _CountedPaginator(items, per_page, count=count)
    return paginator.get_page(request.GET.get("page"))


def _polled(request: HttpRequest, template: str, context: dict[str, Any], *, stop: bool) -> HttpResponse:
    """A fragment that polls itself; status 286 tells htmx to stop once the job can no longer change."""
    return _stop_polling(render(request, template, context), stop=stop)


def _stop_polling(response: HttpResponse, *, stop: bool) -> HttpResponse:
    if stop:
        response.status_code = HttpResponseStopPolling.status_code
        response.reason_phrase = "Stop Polling"
    return response


@dataclass(frozen=True)
class Line:
    """A recommendation as the approval table shows it, with the seller's price facts worked out."""

    rec: Recommendation
    list_cpm: Decimal
    tier_discount_pct: Decimal
    volume_discount_pct: Decimal
    checked: bool

    @property
    def quoted_cpm(self) -> Decimal:
        """The seller's quote, before any negotiation."""
        return micros_to_decimal(self.rec.quoted_cpm_micros or self.rec.cpm_micros)

    @property
    def discounted(self) -> bool:
        return self.list_cpm != self.quoted_cpm

    @property
    def pending(self) -> bool:
        return self.rec.status == RecommendationStatus.PENDING_APPROVAL


@dataclass(frozen=True)
class Selection:
    """Pending lines chosen for approval, against what is left of the brief's budget once the lines already
    approved or booked (a partial approval earlier) are counted."""

    lines: list[Recommendation]
    budget_micros: int
    committed_micros: int = 0

    @property
    def committed(self) -> Decimal:
        return micros_to_decimal(self.committed_micros)

    @property
    def remaining_micros(self) -> int:
        return max(0, self.budget_micros - self.committed_micros)

    @property
    def remaining(self) -> Decimal:
        return micros_to_decimal(self.remaining_micros)

    @property
    def total_micros(self) -> int:
        return sum(r.cost_micros for r in self.lines)

    @property
    def total(self) -> Decimal:
        return micros_to_decimal(self.total_micros)

    @property
    def budget(self) -> Decimal:
        return micros_to_decimal(self.budget_micros)

    @property
    def over_budget(self) -> bool:
        return self.total_micros > self.remaining_micros

    @property
    def percent(self) -> int:
        """The selected share of what is left to spend."""
        if self.remaining_micros <= 0:
            return 100 if self.total_micros else 0
        return min(100, round(self.total_micros * 100 / self.remaining_micros))


def _pct(pricing: Any, key: str) -> Decimal:
    if not isinstance(pricing, dict):
        return Decimal(0)
    try:
        return Decimal(str(pricing.get(key) or 0))
    except ArithmeticError:
        return Decimal(0)


def _pending(job: BookingJob) -> list[Recommendation]:
    return [r for r in job.recommendations.all() if r.status == RecommendationStatus.PENDING_APPROVAL]


COMMITTED_LINES = (RecommendationStatus.APPROVED, RecommendationStatus.BOOKED, RecommendationStatus.FLAGGED)


def _selections(job: BookingJob, pending: list[Recommendation], chosen: list[Recommendation]) -> dict[str, Selection]:
    """The chosen lines and all pending lines, each against what the lines approved or booked before leave."""
    committed = sum(r.cost_micros for r in job.recommendations.all() if r.status in COMMITTED_LINES)
    budget = job.campaign.budget_micros
    return {"selection": Selection(chosen, budget, committed), "everything": Selection(pending, budget, committed)}


def _chosen(pending: list[Recommendation], ids: list[str]) -> list[Recommendation]:
    wanted = set(ids)
    return [r for r in pending if str(r.pk) in wanted]


def _job_or_404(job_id: uuid.UUID) -> BookingJob:
    job = selectors.job_get(str(job_id))
    if job is None:
        raise Http404("No such job")
    return job


def _header_job_or_404(job_id: uuid.UUID) -> BookingJob:
    job = selectors.job_header_get(job_id)
    if job is None:
        raise Http404("No such job")
    return job


# --- Jobs list ------------------------------------------------------------------------------------------------


@media_buyer_required
def jobs(request: HtmxHttpRequest) -> HttpResponse:
    filters = JobFilterForm(request.GET)
    values = filters.cleaned_data if filters.is_valid() else {}
    rows = selectors.job_list_for_dashboard(
        status=values.get("status"),
        channel=values.get("channel"),
        search=(values.get("q") or "").strip(),
        flight_from=values.get("flight_from"),
        flight_to=values.get("flight_to"),
    )
    if request.GET.get("format") == "csv":
        return csv_download("jobs.csv", JOB_CSV_COLUMNS, (_job_csv_row(job) for job in rows[:10_000]))
    narrowed = any(values.get(name) for name in ("channel", "q", "flight_from", "flight_to"))
    # Without filters beyond the status, the trigger-kept counts answer the paginator's COUNT over every job.
    total = None if narrowed else selectors.job_total(values.get("status") or None)
    page = _page(request, rows.values_list(*job_rows.COLUMNS), JOBS_PER_PAGE, count=total)
    html = [job_rows.row_html(row) for row in job_rows.job_rows(page.object_list)]
    template = "campaigns/jobs.html#results" if _wants_partial(request) else "campaigns/jobs.html"
    widgets = job_filter_widgets(tuple((name, request.GET.get(name)) for name in JOB_FILTER_WIDGETS))
    context = {"filters": filters, "filter_widgets": widgets, "page": page, "rows": html}
    return render(request, template, context)


JOB_CSV_COLUMNS = (
    "job_id", "campaign", "status", "budget_usd", "booked_usd", "deals", "flight_start", "flight_end",
    "channels", "created_at", "decide_by",
)  # fmt: skip
DEAL_CSV_COLUMNS = (
    "deal_id", "campaign", "job_id", "seller", "product", "channel", "deal_type", "cpm_usd", "impressions",
    "cost_usd", "state", "seller_status", "flight_start", "flight_end", "booked_at", "delivered_impressions",
    "spent_usd",
)  # fmt: skip
LINE_CSV_COLUMNS = (
    "recommendation_id", "priority", "seller", "product_id", "product", "channel", "deal_type", "impressions",
    "quoted_cpm_usd", "cpm_usd", "cost_usd", "status", "negotiation", "quote_id", "rationale", "model_rationale",
)  # fmt: skip


def _job_csv_row(job: WithAnnotations[BookingJob, selectors.JobRowFigures]) -> list[Any]:
    c = job.campaign
    return [
        job.pk, c.name, job.status, c.budget, job.booked, job.deal_count, c.start_date, c.end_date,
        " ".join(c.channels or []), job.created_at, job.approval_expires_at if not job.is_terminal else None,
    ]  # fmt: skip


def _deal_csv_row(deal: BookedDeal) -> list[Any]:
    delivery = getattr(deal, "delivery", None)
    delivered = delivery if delivery is not None and delivery.as_of else None
    return [
        deal.deal_id, deal.job.campaign.name, deal.job_id, deal.seller.name if deal.seller else deal.seller_url,
        deal.product_name, deal.channel, deal.deal_type, deal.cpm, deal.impressions, deal.cost, deal.state_label,
        deal.seller_status, deal.flight_start, deal.flight_end, deal.booked_at,
        delivered.impressions if delivered else None, delivered.spend if delivered else None,
    ]  # fmt: skip


@media_buyer_required
def job_lines_csv(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """A job's recommended lines, as CSV."""
    job = _job_or_404(job_id)
    rows = [
        [
            r.pk,
            r.priority,
            r.seller_name,
            r.product_id,
            r.product_name,
            r.channel,
            r.deal_type,
            r.impressions,
            micros_to_decimal(r.quoted_cpm_micros or r.cpm_micros),
            r.cpm,
            r.cost,
            r.status,
            r.get_negotiation_status_display() if r.negotiation_status else "",
            r.quote_id,
            r.rationale,
            r.model_rationale,
        ]
        for r in job.recommendations.order_by("priority", "pk")
    ]
    return csv_download(f"recommendations-{job.pk}.csv", LINE_CSV_COLUMNS, rows)


@media_buyer_required
def job_row(request: HtmxHttpRequest, job_id: uuid.UUID) -> HttpResponse:
    found = job_rows.job_rows(selectors.job_row_values(job_id, job_rows.COLUMNS))
    if not found:
        raise Http404("No such job")
    row = found[0]
    if not request.htmx:
        return redirect("campaigns:job_detail", job_id=row.pk)
    return _stop_polling(HttpResponse(job_rows.row_html(row)), stop=row.is_terminal)


# --- New booking ----------------------------------------------------------------------------------------------


@media_buyer_required
def job_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = BookingForm(request.POST)
        if form.is_valid():
            brief = form.cleaned_data["brief"]
            submission = form.cleaned_data.get("submission_id")
            try:
                job = services.job_create_from_brief(
                    brief,
                    auto_approve=form.cleaned_data["auto_approve"],
                    client_reference=f"web:{submission}" if submission else None,
                )
            except services.IdempotencyConflict:
                form.add_error(
                    None, "This form was already submitted with other values. Reload the page to start a new booking."
                )
            else:
                messages.success(request, f"Booking “{brief.name}” submitted; the agent is planning the budget.")
                return redirect("campaigns:job_detail", job_id=job.pk)
    else:
        initial: dict[str, Any] = {"submission_id": uuid.uuid4()}
        source = selectors.job_header_get(request.GET["from"]) if request.GET.get("from") else None
        if source is not None:  # "Book again": the brief of an earlier job, for new dates and review
            brief = dict(source.campaign.brief or {})
            brief["name"] = f"{source.campaign.name} (copy)"[:100]
            brief.pop("start_date", None), brief.pop("end_date", None)
            initial |= booking_initial(brief) | {"plan_review": bool(brief.get("plan_review"))}
            messages.info(request, f"Copied from “{source.campaign.name}”: set the flight dates, check, then submit.")
        form = BookingForm(initial=initial)
    return render(request, "campaigns/job_new.html", {"form": form, "intake": BriefIntakeForm()})


@media_buyer_required
@require_POST
def job_cancel(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """Cancel a job that has not finished (a booking in progress stops before its next line)."""
    try:
        job = services.job_cancel(job_id=str(job_id), reason=f"Cancelled by {request.user.get_username()}.")
    except DomainError as exc:
        messages.error(request, f"Nothing was cancelled: {exc}.")
    else:
        if job.is_terminal:
            messages.success(request, "The job is cancelled.")
        else:
            messages.success(request, "Cancelling: the booking stops before its next line and keeps what it booked.")
    return redirect("campaigns:job_detail", job_id=job_id)


MISSING_WORDS = {
    "name": "the campaign's name",
    "budget": "the budget",
    "start_date": "the start date",
    "end_date": "the end date",
    "objectives": "the objectives",
}


@media_buyer_required
@require_POST
def brief_intake(request: HttpRequest) -> HttpResponse:
    """Read a pasted brief or a PDF and show the booking form filled in from it, for review: nothing is
    submitted until the buyer presses "Submit booking"."""
    intake = BriefIntakeForm(request.POST, request.FILES)
    parsed = None
    if intake.is_valid():
        try:
            upload = intake.cleaned_data.get("file")
            if upload is not None:
                if upload.size > settings.BRIEF_UPLOAD_MAX_BYTES:
                    raise brief_intake_service.BriefTooLarge(
                        f"The file is larger than {settings.BRIEF_UPLOAD_MAX_BYTES // 1_000_000} MB"
                    )
                text = brief_intake_service.pdf_text(upload.read())
            else:
                text = intake.cleaned_data["text"]
            parsed = brief_intake_service.parse_brief(text)
        except DomainError as exc:
            intake.add_error(None, str(exc))
    initial = {"submission_id": uuid.uuid4(), **(booking_initial(parsed["brief"]) if parsed else {})}
    if parsed:
        parsed = {
            **parsed,
            "missing_words": [MISSING_WORDS.get(name, name) for name in parsed["missing"]],
            "read_by": "the rules" if parsed["parser"] == "deterministic" else parsed["parser"],
        }
    context = {"form": BookingForm(initial=initial), "intake": intake, "parsed": parsed}
    return render(request, "campaigns/job_new.html", context, status=200 if parsed else 400)


# --- Job detail and its live parts ------------------------------------------------------------------------------


def job_waiting_count(job_id: uuid.UUID) -> int:
    return Recommendation.objects.filter(job_id=job_id, status=RecommendationStatus.PENDING_APPROVAL).count()


# The job page lists the newest events; the events page has them all (a long job has hundreds of quotes).
TIMELINE_SHOWN = 30


def _timeline(events: list[Any]) -> dict[str, Any]:
    return {"timeline": timeline_entries(events[:TIMELINE_SHOWN]), "timeline_total": len(events)}


def _left_out(events: list[Any]) -> list[tuple[str, list[dict[str, str]]]]:
    """What research left out and why, per seller (from the latest ``research.completed`` event)."""
    done = next((e for e in events if e.event_type == EventType.RESEARCH_COMPLETED), None)
    skipped = (done.payload or {}).get("skipped") if done is not None else None
    by_seller: dict[str, list[dict[str, str]]] = {}
    for item in skipped or []:
        if isinstance(item, dict):
            by_seller.setdefault(str(item.get("seller") or "a seller"), []).append(
                {k: str(item.get(k) or "") for k in ("product", "product_id", "channel", "reason")}
            )
    return sorted(by_seller.items())


def _brief_facts(campaign: Any) -> list[tuple[str, str]]:
    """The brief as submitted, in words: what the page header does not already say."""
    brief = campaign.brief or {}
    kpis = campaign.kpis or {}
    audience = campaign.target_audience or {}
    facts: list[tuple[str, str]] = []
    for key, label in (("max_cpm_usd", "Max CPM"), ("target_cpm_usd", "Target CPM")):
        if kpis.get(key) is not None:
            facts.append((label, f"${kpis[key]}"))
    others = {k: v for k, v in kpis.items() if k not in {"max_cpm_usd", "target_cpm_usd"}}
    if others:
        facts.append(("Other KPIs", ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in others.items())))
    if audience:
        words = []
        for key, value in audience.items():
            shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            words.append(f"{key.replace('_', ' ')}: {shown}")
        facts.append(("Audience", "; ".join(words)))
    if campaign.formats:
        facts.append(("Formats", ", ".join(campaign.formats)))
    excluded = (campaign.constraints or {}).get("exclude_publishers") or []
    if excluded:
        facts.append(("Excluded publishers", ", ".join(str(p) for p in excluded)))
    other_constraints = {k: v for k, v in (campaign.constraints or {}).items() if k != "exclude_publishers" and v}
    for key, value in other_constraints.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        facts.append((key.replace("_", " ").capitalize(), shown))
    facts.append(("Pacing curve", str(campaign.pacing_curve or "even").replace("_", " ")))
    facts.append(("Negotiation", str(campaign.negotiation_strategy or "the default strategy")))
    if brief.get("plan_review"):
        facts.append(("Plan review", "asked for"))
    return facts


def _agent_decisions(job: BookingJob) -> list[tuple[str, dict[str, Any]]]:
    """Who decided each planning step (``BookingJob.agents``), labelled for the page."""
    decisions = []
    for role, record in (job.agents or {}).items():
        if not isinstance(record, dict) or role == "reporting":
            continue
        entry = dict(record)
        if role == "portfolio_manager":
            entry["label"] = "Budget split"
        elif role == "execution_check":
            entry["label"] = "Execution check"
            problems = [*(record.get("findings") or []), *(record.get("concerns") or [])]
            verdict = "passed" if not problems else "found: " + "; ".join(problems)
            entry["note"] = f"{verdict}{' (' + record['note'] + ')' if record.get('note') else ''}"
            entry.setdefault("decided_by", "policy")
        else:
            entry["label"] = f"{role.removeprefix('specialist:')} lines"
        decisions.append((role, entry))
    return decisions


def _detail_context(request: HttpRequest, job: BookingJob) -> dict[str, Any]:
    events = list(event_timeline(str(job.pk)))
    pending = _pending(job)
    # The form carries ``chosen`` so a selection sent back (from the confirmation page) is kept as it was;
    # on first view every pending line is selected, as the agent recommended.
    selected = _chosen(pending, request.GET.getlist("line")) if "chosen" in request.GET else []
    selected_ids = {r.pk for r in selected}
    lines = [
        Line(
            rec=r,
            list_cpm=micros_to_decimal(r.base_cpm_micros),
            tier_discount_pct=_pct(r.pricing, "tier_discount_pct"),
            volume_discount_pct=_pct(r.pricing, "volume_discount_pct"),
            checked=r.pk in selected_ids,
        )
        for r in job.recommendations.all()
    ]
    bars = charts.allocation_bars(job.budget_allocations or {})
    deals = list(job.deals.all())
    pacing = campaign_pacing_statuses([job.pk]).get(job.pk) if deals else None
    # Budgets are reallocated only from a paced campaign's snapshots, and only then are there top-ups.
    reallocated = pacing is not None and bool(bars) and job.parent_id is None and budgets_reallocated(job)
    return {
        "agent_decisions": _agent_decisions(job),
        "summary": campaign_summary(job, deals=deals, lines=[line.rec for line in lines], snapshot=pacing),
        "agent_summary": (job.agents or {}).get("reporting"),
        "agents_on": llm_mode().active,
        "job": job,
        "campaign": job.campaign,
        "lines": lines,
        "awaiting": job.status == JobStatus.AWAITING_APPROVAL,
        **_selections(job, pending, selected),
        "bars": bars,
        "chart": charts.bar_chart_svg(bars, title="Budget split by channel", chart_id="allocation-chart")
        if bars
        else "",
        # Held and refused deals are listed (a person decides on them) but not counted as booked, and carry no
        # DSP instructions to activate them by.
        "deals": [{"deal": d, "activation": _activation(d) if d.counted else []} for d in deals],
        "deals_counted": sum(1 for d in deals if d.counted),
        "deals_held": sum(1 for d in deals if d.held),
        "deals_total": micros_to_decimal(sum(d.cost_micros for d in deals if d.counted)),
        **_timeline(events),
        "left_out": _left_out(events),
        "brief_facts": _brief_facts(job.campaign),
        "pacing": pacing,
        "reallocated": reallocated,
        "top_ups": list(job.top_ups.select_related("campaign").order_by("created_at")) if reallocated else [],
    }


@media_buyer_required
def job_detail(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _job_or_404(job_id)
    return render(request, "campaigns/job_detail.html", _detail_context(request, job))


@media_buyer_required
def job_status(request: HtmxHttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """The polled header. When the status moved on since the page was drawn, the whole page reloads, so new
    recommendations, deals and errors appear."""
    job = _header_job_or_404(job_id)
    if not request.htmx:
        return redirect("campaigns:job_detail", job_id=job.pk)
    response = _polled(request, "campaigns/job_detail.html#job_header", {"job": job}, stop=job.is_terminal)
    seen = request.GET.get("seen")
    if seen and seen != job.status:
        response["HX-Refresh"] = "true"
    return response


@media_buyer_required
def job_timeline(request: HtmxHttpRequest, job_id: uuid.UUID) -> HttpResponse:
    job = _header_job_or_404(job_id)
    if not request.htmx:
        return redirect("campaigns:job_detail", job_id=job.pk)
    context = {"job": job, **_timeline(list(event_timeline(str(job.pk))))}
    return _polled(request, "campaigns/job_detail.html#timeline", context, stop=job.is_terminal)


@media_buyer_required
def job_selection(request: HtmxHttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """The selected total and the approval buttons, recomputed by the server when a checkbox changes."""
    job = _job_or_404(job_id)
    if not request.htmx:
        return redirect("campaigns:job_detail", job_id=job.pk)
    pending = _pending(job)
    context = {
        "job": job,
        "awaiting": job.status == JobStatus.AWAITING_APPROVAL,
        **_selections(job, pending, _chosen(pending, request.GET.getlist("line"))),
    }
    return render(request, "campaigns/job_detail.html#selection", context)


# --- Approval: confirm, then post ---------------------------------------------------------------------------


@media_buyer_required
def job_approve_confirm(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """The confirmation step: what will be approved and rejected, and the total. Nothing changes here."""
    job = _job_or_404(job_id)
    action = request.GET.get("action", "")
    if action not in APPROVAL_ACTIONS:
        messages.error(request, "Choose Approve selected, Approve all or Reject all.")
        return redirect("campaigns:job_detail", job_id=job.pk)
    if job.status != JobStatus.AWAITING_APPROVAL:
        messages.error(request, f"This job is {job.get_status_display().lower()}; there is nothing to approve now.")
        return redirect("campaigns:job_detail", job_id=job.pk)
    pending = _pending(job)
    ids = request.GET.getlist("line")
    if action in ("selected", "selected_reject"):
        chosen = _chosen(pending, ids)
        if not chosen:
            messages.error(request, "Select at least one line to approve, or use Reject all.")
            return redirect("campaigns:job_detail", job_id=job.pk)
        if len(chosen) != len(set(ids)):
            messages.error(request, "Some selected lines are no longer awaiting approval; check the selection.")
            return redirect("campaigns:job_detail", job_id=job.pk)
    elif action == "all":
        chosen = pending
    else:
        chosen = []
    selection = _selections(job, pending, chosen)["selection"]
    others = [r for r in pending if r not in chosen]
    rejected = others if action != "selected" else []
    waiting = others if action == "selected" else []
    return render(
        request,
        "campaigns/job_confirm.html",
        {"job": job, "action": action, "selection": selection, "rejected": rejected, "waiting": waiting, "ids": ids},
    )


@media_buyer_required
@require_POST
def job_summary(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """Have the reporting agent write the campaign's summary (kept on the job, shown beside the rules')."""
    job = selectors.job_header_get(job_id)
    if job is None:
        raise Http404("No such job")
    summary = campaign_summary(job, ask_model=True)
    if summary["by"] == "rules":
        messages.error(request, f"The reporting agent did not write a summary: {summary['note']}.")
    else:
        services.job_agents_set(job, {"reporting": {key: summary[key] for key in ("text", "by", "written_at")}})
        messages.success(request, "The reporting agent wrote the summary; its figures were checked against the facts.")
    return redirect("campaigns:job_detail", job_id=job_id)


@media_buyer_required
@require_POST
def job_plan_review(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    """The buyer's review of a split that stopped for it: as planned, or with the amounts typed in."""
    amounts: dict[str, Decimal] | None = None
    if request.POST.get("action") == "adjusted":
        amounts = {}
        for key in request.POST:
            if key.startswith("amount_"):
                value = request.POST.get(key, "")
                try:
                    amount = Decimal(value.replace(",", "").replace("$", "").strip() or "0")
                    if not amount.is_finite():
                        raise ArithmeticError(value)
                    amounts[key.removeprefix("amount_")] = amount
                except ArithmeticError:
                    messages.error(request, f"Nothing was changed: “{value}” is not an amount of dollars.")
                    return redirect("campaigns:job_detail", job_id=job_id)
    try:
        services.job_plan_review(job_id=str(job_id), amounts=amounts, actor=request.user.get_username())
    except DomainError as exc:
        messages.error(request, f"Nothing was changed: {exc}.")
    else:
        messages.success(request, "Split confirmed: the agent is asking the sellers for quotes.")
    return redirect("campaigns:job_detail", job_id=job_id)


@media_buyer_required
@require_POST
def job_approve(request: HttpRequest, job_id: uuid.UUID) -> HttpResponse:
    action = request.POST.get("action", "")
    ids = request.POST.getlist("line")
    actor = request.user.get_username()
    try:
        if action in ("selected", "selected_reject") and ids:
            result = services.job_approve(
                job_id=str(job_id), recommendation_ids=ids, actor=actor, keep_rest=action == "selected"
            )
        elif action == "all":
            result = services.job_approve_all(job_id=str(job_id), actor=actor)
        elif action == "reject":
            result = services.job_reject_all(job_id=str(job_id), actor=actor)
        else:
            messages.error(request, "Nothing was approved: choose the lines to approve.")
            return redirect("campaigns:job_detail", job_id=job_id)
    except Conflict as exc:  # the job's state, or the campaign's budget, refuses it
        messages.error(request, f"Nothing was approved or rejected: {exc}.")
    except services.ApprovalSelectionError:
        messages.error(
            request, "Nothing was approved: some selected lines do not belong to this job or no longer await approval."
        )
    else:
        if result.approved:
            text = f"Approved {count(len(result.approved), 'line')} for {charts.money(result.total_cost)}; booking now."
            if result.rejected:
                text += f" {count(len(result.rejected), 'line')} rejected."
            elif action == "selected":
                waiting = job_waiting_count(job_id)
                if waiting:
                    text += (
                        f" {count(waiting, 'line')} still {verb(waiting, 'waits', 'wait')} for your decision; "
                        "this page shows them again once these are booked."
                    )
        else:
            text = f"Rejected {count(len(result.rejected), 'line')}; the job is cancelled."
        messages.success(request, text)
    return redirect("campaigns:job_detail", job_id=job_id)


# --- Deals ----------------------------------------------------------------------------------------------------


@media_buyer_required
def deals(request: HtmxHttpRequest) -> HttpResponse:
    filters = DealFilterForm(request.GET, sellers=selectors.deal_seller_choices())
    values = filters.cleaned_data if filters.is_valid() else {}
    rows = selectors.deal_list(
        status=values.get("status"),
        channel=values.get("channel"),
        seller_id=values.get("seller"),
        needs=values.get("needs") or None,
        campaign=(values.get("campaign") or "").strip() or None,
        flight_from=values.get("flight_from"),
        flight_to=values.get("flight_to"),
    )
    if request.GET.get("format") == "csv":
        return csv_download("deals.csv", DEAL_CSV_COLUMNS, (_deal_csv_row(deal) for deal in rows[:10_000]))
    page = _page(request, rows, DEALS_PER_PAGE)
    template = "campaigns/deals.html#results" if _wants_partial(request) else "campaigns/deals.html"
    return render(request, template, {"filters": filters, "page": page})


# What the seller's own word for a deal means beside ours (the IAB seller protocol's deal statuses).
SELLER_STATUS_NOTES = {
    "proposed": "the seller issued the deal; it becomes active at the seller once a DSP starts bidding on it",
    "active": "live at the seller",
    "rejected": "the seller refused it",
    "expired": "the seller's offer lapsed",
    "completed": "the seller reports it fully delivered",
}
AUCTION_TYPES = {1: "first price", 2: "second price", 3: "fixed price (the deal's price)"}


def _openrtb_readable(params: Any) -> list[tuple[str, str]]:
    """The OpenRTB deal object in words: Money as dollars, the auction type named."""
    if not isinstance(params, dict):
        return []
    rows: list[tuple[str, str]] = []
    if params.get("id"):
        rows.append(("Deal id (id)", str(params["id"])))
    floor = params.get("bidfloor")
    if isinstance(floor, dict) and isinstance(floor.get("amount_micros"), int):
        rows.append(
            (
                "Bid floor (bidfloor)",
                f"${micros_to_decimal(floor['amount_micros']):,.2f} CPM {floor.get('currency', '')}".strip(),
            )
        )
    elif isinstance(floor, int | float):
        rows.append(("Bid floor (bidfloor)", f"${floor:,.2f} CPM"))
    if params.get("at") is not None:
        rows.append(("Auction type (at)", AUCTION_TYPES.get(params["at"], str(params["at"]))))
    if params.get("wseat"):
        rows.append(("Allowed seats (wseat)", ", ".join(str(s) for s in params["wseat"])))
    if params.get("wadomain"):
        rows.append(("Allowed advertiser domains (wadomain)", ", ".join(str(d) for d in params["wadomain"])))
    return rows


def _activation(deal: BookedDeal) -> list[dict[str, str]]:
    """Known DSPs first, in a fixed order, then whatever else the seller sent."""
    instructions: dict[str, Any] = (
        deal.activation_instructions if isinstance(deal.activation_instructions, dict) else {}
    )
    keys = [k for k in DSP_LABELS if k in instructions] + sorted(k for k in instructions if k not in DSP_LABELS)
    return [{"key": k, "label": DSP_LABELS.get(k, k), "text": str(instructions[k])} for k in keys]


def _delivered_cpm(deal: BookedDeal) -> Decimal | None:
    state = getattr(deal, "delivery", None)
    if state is None or not state.impressions:
        return None
    return (state.spend * 1000 / state.impressions).quantize(Decimal("0.01"))


@media_buyer_required
def deal_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deal = selectors.deal_get(pk)
    if deal is None:
        raise Http404("No such deal")
    context = {
        "deal": deal,
        "activation": _activation(deal),
        "openrtb_json": json.dumps(deal.openrtb_params, indent=2, sort_keys=True, ensure_ascii=False),
        "transitions": list(deal.transitions.all()),
        "delivered_cpm": _delivered_cpm(deal),
        "price": reconcile(deal),
        "pacing": deal_pacing(deal),
        "budget_cuts": list(deal.budget_cuts.select_related("proposal").order_by("pk")),
        "refresh_hours": settings.DEAL_REFRESH_HOURS,
        "seller_status_note": SELLER_STATUS_NOTES.get(deal.seller_status, ""),
        "openrtb_readable": _openrtb_readable(deal.openrtb_params),
    }
    return render(request, "campaigns/deal_detail.html", context)


@media_buyer_required
@require_POST
def deal_decide(request: HttpRequest, pk: int) -> HttpResponse:
    """Accept or refuse a deal held because the seller booked other terms than approved, or confirm that a
    refused deal was cancelled at the seller."""
    decision = request.POST.get("decision", "")
    if decision not in services.DEAL_DECISIONS:
        messages.error(request, "Choose Accept or Refuse.")
        return redirect("campaigns:deal_detail", pk=pk)
    note = request.POST.get("note", "").strip()[:300]
    try:
        deal = services.deal_decide(pk, decision, actor=request.user.get_username(), note=note)
    except services.DealTransitionError as exc:
        messages.error(request, f"Nothing was changed: {exc}.")
    else:
        if decision == "accept":
            messages.success(request, f"Deal {deal.deal_id} accepted as booked for {charts.money(deal.cost)}.")
        elif decision == "refuse":
            messages.success(
                request,
                f"Deal {deal.deal_id} refused: have {deal.recommendation.seller_name} cancel it. Its money stays "
                "held until the seller reports it cancelled, or you confirm it here.",
            )
        else:
            messages.success(request, f"Deal {deal.deal_id} is cancelled at the seller: its money is released.")
    return redirect("campaigns:deal_detail", pk=pk)
    note = request.POST.get("note", "").strip()[:300]
    try:
        deal = services.deal_flag_resolve(
            deal_pk=pk, accept=decision == "accept", actor=request.user.get_username(), note=note
        )
    except services.DealTransitionError as exc:
        messages.error(request, f"Nothing was changed: {exc}.")
    else:
        if decision == "accept":
            messages.success(request, f"Deal {deal.deal_id} accepted as booked for {charts.money(deal.cost)}.")
        else:
            messages.success(request, f"Deal {deal.deal_id} refused: cancel it with {deal.recommendation.seller_name}.")
    return redirect("campaigns:deal_detail", pk=pk)
