"""REST brief intake: ``POST /briefs/parse`` with pasted text (JSON) or a PDF (multipart). Parsing submits
nothing; the answer is a brief for a person (or a client) to review and then ``POST /bookings``."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja import Field, Router, Schema

from buyer.apikeys.auth import write_auth
from campaigns.brief_intake import BriefTooLarge, BriefUnreadable, BriefUnsupported, parse_brief, pdf_text
from campaigns.brief_parse import MAX_TEXT

router = Router(tags=["briefs"])


class ParsedBriefOut(Schema):
    brief: dict[str, Any] = Field(description="The fields found, in the shape POST /bookings takes")
    missing: list[str] = Field(description="Required fields that were not found")
    notes: list[str] = Field(description="What to check: several budgets, a flight in the past, a channel left out")
    parser: str = Field(description="deterministic, or the agent and rules")


_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["text"],
                "properties": {"text": {"type": "string", "maxLength": MAX_TEXT}},
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
    }
}


@router.post(
    "/briefs/parse",
    auth=write_auth,
    response=ParsedBriefOut,
    summary="Turn a brief's text or PDF into a structured brief, for review",
    openapi_extra={
        "requestBody": _BODY,
        "responses": {
            413: {"description": "The PDF is larger than BRIEF_UPLOAD_MAX_BYTES"},
            415: {"description": "Neither JSON text nor a PDF"},
            422: {"description": "Empty text, or a PDF that cannot be read or holds no text"},
        },
    },
)
def parse(request: HttpRequest):
    """JSON ``{"text": "..."}``, or a multipart upload with a PDF in ``file``. Nothing is submitted."""
    content_type = (request.content_type or "").lower()
    if content_type == "multipart/form-data":
        length = int(request.META.get("CONTENT_LENGTH") or 0)
        if length > settings.BRIEF_UPLOAD_MAX_BYTES + 64_000:  # refused before the upload is read
            raise BriefTooLarge(f"The upload is larger than {settings.BRIEF_UPLOAD_MAX_BYTES // 1_000_000} MB")
        upload = request.FILES.get("file")
        if upload is None:
            raise BriefUnreadable("Send the PDF in the multipart field 'file'")
        if (upload.size or 0) > settings.BRIEF_UPLOAD_MAX_BYTES:  # None only for a file not read from a request
            raise BriefTooLarge(f"The file is larger than {settings.BRIEF_UPLOAD_MAX_BYTES // 1_000_000} MB")
        return parse_brief(pdf_text(upload.read()))
    if content_type != "application/json":
        raise BriefUnsupported("Send JSON {\"text\": ...} or a multipart upload of a PDF in 'file'")
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BriefUnreadable("The body is not valid JSON") from None
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise BriefUnreadable("The body needs a 'text' string")
    if len(text) > MAX_TEXT:
        raise BriefTooLarge(f"The text is longer than {MAX_TEXT:,} characters")
    if "\x00" in text:
        raise BriefUnreadable("The text holds a NUL character")
    return parse_brief(text)
