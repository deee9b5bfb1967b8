"""POST /briefs/parse: pasted text or a PDF in, a brief to review out; bad input is a clear 4xx, never a 500."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from buyer.apikeys.models import Scope
from buyer.apikeys.services import api_key_create
from tests.llm.fake import submit

pytestmark = pytest.mark.django_db

PDF = Path(__file__).resolve().parents[1] / "fixtures" / "briefs" / "agency-brief-example.pdf"


@pytest.fixture
def writer():
    return {"X-API-Key": api_key_create(name="intake", scopes=[Scope.WRITE])[1]}


def test_pasted_text_is_parsed_and_nothing_is_submitted(client, writer):
    text = "Spring launch\nBudget: $120,000\nFlight: 2030-03-01 to 2030-04-30\nChannels: CTV and display\nGoal: reach"
    answer = client.post("/briefs/parse", {"text": text}, content_type="application/json", headers=writer)

    assert answer.status_code == 200
    body = answer.json()
    assert body["brief"]["budget"] == "120000.00" and body["brief"]["channels"] == ["ctv", "display"]
    assert body["missing"] == [] and body["parser"] == "deterministic"
    assert client.get("/bookings", headers=writer).json()["total"] == 0


def test_a_pdf_upload_is_read(client, writer):
    upload = SimpleUploadedFile("brief.pdf", PDF.read_bytes(), content_type="application/pdf")
    answer = client.post("/briefs/parse", {"file": upload}, headers=writer)
    assert answer.status_code == 200 and answer.json()["brief"]["budget"] == "4700000.00"


def test_a_20_mb_upload_is_413_json(client, writer):
    upload = SimpleUploadedFile("huge.pdf", b"%PDF-1.7\n" + b"0" * 20_000_000, content_type="application/pdf")
    answer = client.post("/briefs/parse", {"file": upload}, headers=writer)
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]  # refused before it is read


@pytest.mark.parametrize(
    ("kwargs", "status", "says"),
    [
        ({"data": {"file": SimpleUploadedFile("a.docx", b"PK\x03\x04word")}}, 415, "Only PDF files"),
        ({"data": {"file": SimpleUploadedFile("a.pdf", b"%PDF-1.4 not really")}}, 422, "could not be read"),
        ({"data": {"other": "x"}}, 422, "multipart field 'file'"),
        ({"data": "text=hello", "content_type": "application/x-www-form-urlencoded"}, 415, "Send JSON"),
        ({"data": "{not json", "content_type": "application/json"}, 422, "not valid JSON"),
        ({"data": {"text": 5}, "content_type": "application/json"}, 422, "'text' string"),
        ({"data": {"text": "  "}, "content_type": "application/json"}, 422, "empty"),
        ({"data": {"text": "a\x00b"}, "content_type": "application/json"}, 422, "NUL"),
    ],
)
def test_bad_input_is_a_clear_error(client, writer, kwargs, status, says):
    answer = client.post("/briefs/parse", headers=writer, **kwargs)
    detail = answer.json()["detail"]
    said = " ".join(item["msg"] for item in detail) if isinstance(detail, list) else detail  # a list names fields
    assert answer.status_code == status and says in said


def test_parsing_needs_a_write_key(client):
    reader = {"X-API-Key": api_key_create(name="viewer", scopes=[Scope.READ])[1]}
    answer = client.post("/briefs/parse", {"text": "x"}, content_type="application/json", headers=reader)
    assert answer.status_code == 403


def test_with_the_agents_on_the_parser_agent_improves_what_code_can_check(client, writer, fake_llm):
    text = "Acme spring\nWe plan to spend $80,000 across streaming TV from 2030-03-01 to 2030-04-30 for awareness."
    fake_llm.script(
        "specialist",
        submit({"name": "Acme spring", "budget_usd": 800000, "channels": ["ctv"]}),  # a budget the text does not state
        submit({"name": "Acme spring", "budget_usd": 80000, "channels": ["ctv"], "audience": "Streaming households"}),
    )
    body = client.post("/briefs/parse", {"text": text}, content_type="application/json", headers=writer).json()

    assert body["brief"]["budget"] == "80000.00" and body["brief"]["channels"] == ["ctv"]
    assert body["brief"]["target_audience"]["description"] == "Streaming households"
    assert body["parser"].startswith("agent (specialist)")
    assert "is not an amount the brief states" in fake_llm.requests[1].messages[-1]["content"]
