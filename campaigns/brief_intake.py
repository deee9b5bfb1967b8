"""Brief intake: pasted text or an uploaded PDF in, a structured brief for a person to review out. The
deterministic parser (``campaigns.brief_parse``) always runs; with the agents on, the brief parser agent reads
the text too, and what it finds is taken where code can check it against the text (a budget must be an amount
the text states, dates must make a flight, channels must be ours). Nothing is ever submitted from here."""

from __future__ import annotations

import io
import logging
from datetime import date
from decimal import Decimal
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone
from pydantic import BaseModel, ConfigDict, Field

from buyer.errors import DomainError
from buyer.llm.agent import AnswerRejected, data_block, run_agent
from buyer.llm.gateway import AgentStopped, Budget, Role
from buyer.llm.mode import llm_mode
from campaigns.brief_parse import REQUIRED, ParsedBrief, parse_money, parse_text
from campaigns.models import Channel

logger = logging.getLogger(__name__)

PDF_MAX_PAGES = 60


class BriefTooLarge(DomainError):
    http_status = 413


class BriefUnsupported(DomainError):
    http_status = 415


class BriefUnreadable(DomainError):
    http_status = 422


def pdf_text(data: bytes) -> str:
    """The text of a PDF (its first ``PDF_MAX_PAGES`` pages); ``BriefUnsupported`` when it is not a PDF,
    ``BriefUnreadable`` when it cannot be read or holds no text (a scan)."""
    if len(data) > settings.BRIEF_UPLOAD_MAX_BYTES:
        raise BriefTooLarge(f"The file is larger than {settings.BRIEF_UPLOAD_MAX_BYTES // 1_000_000} MB")
    if not data.lstrip()[:5] == b"%PDF-":
        raise BriefUnsupported("Only PDF files can be uploaded (or paste the brief's text)")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise BriefUnreadable("The PDF is password-protected")
        text = "\n".join((page.extract_text() or "") for page in reader.pages[:PDF_MAX_PAGES])
    except BriefUnreadable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, IndexError, RecursionError, MemoryError) as exc:
        # pypdf's own limits (a decompression bomb: LimitReachedError) and what malformed files raise
        raise BriefUnreadable(f"The PDF could not be read: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not text.strip():
        raise BriefUnreadable("The PDF holds no text (a scanned document?): paste the brief's text instead")
    return text


class BriefFields(BaseModel):
    """What the brief says, as far as it says it; leave out what it does not."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    budget_usd: Decimal | None = Field(default=None, gt=0)
    start_date: date | None = None
    end_date: date | None = None
    channels: list[Channel] | None = Field(default=None, max_length=10)
    objectives: list[str] | None = Field(default=None, max_length=10)
    target_cpm_usd: Decimal | None = Field(default=None, gt=0)
    max_cpm_usd: Decimal | None = Field(default=None, gt=0)
    audience: str | None = Field(default=None, max_length=300)


PARSER_SYSTEM = (
    "You read advertising campaign briefs. Extract the campaign's name, its total budget in US dollars, its flight "
    "dates, the channels to buy (only from: " + ", ".join(c.value for c in Channel) + "), its objectives, any "
    "target or maximum CPM, and a one-sentence audience. Leave out whatever the brief does not state."
)


def _check_fields(fields: BriefFields, text: str) -> None:
    if fields.budget_usd is not None:
        stated = {m.amount for m in parse_money(text) if m.currency == "USD"}
        if fields.budget_usd not in stated:
            raise AnswerRejected(f"the budget {fields.budget_usd} is not an amount the brief states")
    if fields.start_date and fields.end_date and fields.end_date < fields.start_date:
        raise AnswerRejected("the end date is before the start date")


def _merge(parsed: ParsedBrief, fields: BriefFields) -> None:
    """The model's fields where code accepted them; the parser's where the model said nothing."""
    brief = parsed.brief
    if fields.name:
        brief["name"] = fields.name
    if fields.budget_usd is not None:
        brief["budget"] = str(fields.budget_usd.quantize(Decimal("0.01")))
    if fields.start_date and fields.end_date:
        brief["start_date"], brief["end_date"] = fields.start_date.isoformat(), fields.end_date.isoformat()
    if fields.channels:
        brief["channels"] = [c.value for c in fields.channels]
    if fields.objectives:
        brief["objectives"] = [o[:100] for o in fields.objectives]
    kpis = dict(brief.get("kpis") or {})
    if fields.target_cpm_usd is not None:
        kpis["target_cpm_usd"] = float(fields.target_cpm_usd)
    if fields.max_cpm_usd is not None:
        kpis["max_cpm_usd"] = float(fields.max_cpm_usd)
    if kpis:
        brief["kpis"] = kpis
    if fields.audience:
        brief["target_audience"] = {**(brief.get("target_audience") or {}), "description": fields.audience}
    parsed.missing = [name for name in REQUIRED if not brief.get(name)]


def parse_brief(text: str, *, today: date | None = None) -> dict[str, Any]:
    """``{brief, missing, notes, parser}`` for ``text``: the deterministic parse, improved by the brief parser
    agent when the agents are on and it answers validly."""
    if not text.strip():
        raise BriefUnreadable("The brief is empty")
    parsed = parse_text(text, today=today or timezone.localdate())
    mode = llm_mode()
    if not mode.active:
        return parsed.as_dict()
    excerpt = text[: settings.BRIEF_MODEL_MAX_CHARS]
    try:
        result = run_agent(
            role=Role.BRIEF_PARSER,
            system=PARSER_SYSTEM,
            user=f"Extract the brief.\n{data_block({'brief_text': excerpt})}",
            schema=BriefFields,
            budget=Budget(),
            check=lambda fields: _check_fields(fields, text),
        )
    except AgentStopped as stop:
        parsed.notes.append(f"the brief parser agent did not answer ({stop.reason}): parsed by rules only")
        return parsed.as_dict()
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # the rules' parse stands whatever the agent did
        logger.exception("brief parser agent failed")
        parsed.notes.append("the brief parser agent failed: parsed by rules only")
        return parsed.as_dict()
    _merge(parsed, result.value)
    parsed.parser = f"agent ({result.served_model}) and rules"
    return parsed.as_dict()
