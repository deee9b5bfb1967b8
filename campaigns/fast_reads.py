"""``GET /bookings`` and ``GET /bookings/{job_id}`` for ``buyer.fastpath``: the selectors' querysets compiled
once, their rows given to the same presenters as the ninja routes in ``campaigns.api``."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any

from buyer.fastpath import UUID_PATTERN, Request, Route, ninja_response
from buyer.prepared import PreparedQuery, Rows, prefetched
from campaigns import api, presenters, selectors
from campaigns.models import BookedDeal, BookingJob, Campaign, JobStatus, NegotiationRound
from campaigns.schemas import JOB_OFFSET_MAX, JOB_PAGE_DEFAULT, JOB_PAGE_MAX

_JOB = uuid.UUID(int=0x5E471E1)  # stands for the job id while the queries are compiled
# Constants composed: no value of a request is in the SQL text.
_LIST_VERSION = f"SELECT {selectors.VERSION_STAMP}, COALESCE(SUM(delta), 0) FROM campaigns_joblistversion"  # noqa: S608
_JOB_VERSION = (
    f"SELECT {selectors.VERSION_STAMP}, COALESCE(SUM(delta), 0) FROM campaigns_jobversion "  # noqa: S608
    "WHERE job_id = %s OR job_id IS NULL"
)
_RENDER_IN_LOOP = 60  # rows of lines, rounds and deals a job's answer is rendered from in the event loop
_DIGITS = re.compile(r"[0-9]{1,9}")


class Queries:
    """Compiled on first use (the models' SQL needs Django's connection settings, not a connection)."""

    @cached_property
    def job(self) -> PreparedQuery:
        return PreparedQuery(BookingJob.objects.filter(pk=_JOB), _JOB)

    @cached_property
    def campaign(self) -> PreparedQuery:
        return PreparedQuery(Campaign.objects.filter(jobs__pk=_JOB), _JOB)

    @cached_property
    def recommendations(self) -> PreparedQuery:
        return PreparedQuery(selectors.job_lines().filter(job_id=_JOB), _JOB)

    @cached_property
    def rounds(self) -> PreparedQuery:
        return PreparedQuery(NegotiationRound.objects.filter(recommendation__job_id=_JOB), _JOB)

    @cached_property
    def deals(self) -> PreparedQuery:
        return PreparedQuery(selectors.job_deals().filter(job_id=_JOB), _JOB)


QUERIES = Queries()
# The detail's stored JSON (allocations, errors) goes through its response schema, as the ninja route's does; the
# list's rows are plain columns, which the schema would give back unchanged (the tests compare both with Django).
_detail_shape = ninja_response(api.get_booking)


def _number(text: str | None, default: int, *, low: int, high: int | None = None) -> int | None:
    if text is None:
        return default
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value >= low and (high is None or value <= high) else None


async def job_list(request: Request) -> bytes | None:
    """``selectors.job_page`` + ``presenters.job_list``; parameters as ``JobFilters`` reads them. The page as
    last rendered when the list's version has not moved since."""
    status = request.query.get("status")
    if status is not None and status not in JobStatus.values:
        return None
    limit = _number(request.query.get("limit"), JOB_PAGE_DEFAULT, low=1, high=JOB_PAGE_MAX)
    offset = _number(request.query.get("offset"), 0, low=0, high=JOB_OFFSET_MAX)
    if limit is None or offset is None:
        return None
    key = ("list", status, limit, offset)
    if request.answers.version_of(key) is not None:
        (((stamp, version),),) = await request.db.fetch((_LIST_VERSION, ()))
        body = request.answers.get(key, (stamp, int(version)))
        if body is not None:
            return body
    page = selectors.job_page_statement(status)
    (rows,) = await request.db.fetch((page.sql, page.bind(status, limit, offset)))
    version, jobs, total = page.result(rows)
    return request.answers.put(key, version, request.render(presenters.job_list(jobs, total)))


async def job_detail(request: Request) -> bytes | None:
    """``selectors.job_get`` + ``presenters.job_detail``: the job, its campaign, lines, rounds and deals, read
    in one snapshot with the job's version. The answer as last rendered when that version has not moved."""
    job_id = uuid.UUID(request.match["job_id"])
    key = ("job", job_id)
    if request.answers.version_of(key) is not None:
        (((stamp, version),),) = await request.db.fetch((_JOB_VERSION, (job_id,)))
        body = request.answers.get(key, (stamp, int(version)))
        if body is not None:
            return body
    q = QUERIES
    queries = (q.job, q.campaign, q.recommendations, q.rounds, q.deals)
    versions, jobs, campaigns, recommendations, rounds, deals = await request.db.fetch(
        (_JOB_VERSION, (job_id,)), *((query.sql, query.bind(job_id)) for query in queries), snapshot=True
    )
    if not jobs or not campaigns:
        return None  # unknown: Django's 404
    rendering = (jobs, campaigns, recommendations, rounds, deals, request.render)
    if len(recommendations) + len(rounds) + len(deals) > _RENDER_IN_LOOP:
        body = await asyncio.to_thread(_detail_body, *rendering)  # a big job: not a pause of every request
    else:
        body = _detail_body(*rendering)
    if body is None:
        return None
    ((stamp, version),) = versions
    return request.answers.put(key, (stamp, int(version)), body)


def _detail_body(
    jobs: Rows, campaigns: Rows, recommendations: Rows, rounds: Rows, deals: Rows, render: Callable[[Any], bytes]
) -> bytes | None:
    """The job's answer from its rows: model instances as ``job_get`` prefetches them, then the ninja route's
    presenter, schema and renderer. No query: every relation the presenter reads is filled here."""
    q = QUERIES
    (job,), (campaign,) = q.job.models(jobs), q.campaign.models(campaigns)
    BookingJob.campaign.field.set_cached_value(job, campaign)
    lines = q.recommendations.models(recommendations)
    by_line: dict[Any, list[NegotiationRound]] = {line.pk: [] for line in lines}
    for negotiation_round in q.rounds.models(rounds):
        by_line[negotiation_round.recommendation_id].append(negotiation_round)
    for line in lines:
        prefetched(line, "negotiation_rounds", by_line[line.pk])
    line_of = {line.pk: line for line in lines}
    booked = q.deals.models(deals)
    for deal in booked:
        line = line_of.get(deal.recommendation_id)
        if line is None:
            return None  # a deal on another job's line: leave the odd case to the ORM
        BookedDeal.recommendation.field.set_cached_value(deal, line)
    prefetched(job, "recommendations", lines)
    prefetched(job, "deals", booked)
    return render(_detail_shape(presenters.job_detail(job)))


ROUTES = [
    Route(re.compile(r"/bookings"), job_list, frozenset({"status", "limit", "offset"})),
    Route(re.compile(rf"/bookings/(?P<job_id>{UUID_PATTERN})"), job_detail),
]
