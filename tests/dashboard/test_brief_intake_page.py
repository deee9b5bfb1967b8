"""The New booking page reads a pasted brief or a PDF into the form, for review: nothing is booked by it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from campaigns.models import BookingJob

pytestmark = pytest.mark.django_db

PDF = Path(__file__).resolve().parents[1] / "fixtures" / "briefs" / "agency-brief-example.pdf"


def test_a_pasted_brief_fills_in_the_form_and_books_nothing(media_buyer):
    text = "Spring launch\nBudget: $120,000\nFlight: 2030-03-01 to 2030-04-30\nChannels: CTV and display\nGoal: reach"
    page = media_buyer.post(reverse("campaigns:brief_intake"), {"text": text})

    html = page.content.decode()
    assert page.status_code == 200 and 'id="intake-result"' in html
    assert 'value="Spring launch"' in html and 'value="120,000"' in html and 'value="2030-03-01"' in html
    ticked = set(re.findall(r'name="channels" value="(\w+)"[^>]*checked', html))
    assert ticked == {"ctv", "display"}
    assert "Every required field was found" in html
    assert not BookingJob.objects.exists()


def test_a_pdf_fills_in_the_form_and_says_what_to_check(media_buyer):
    upload = SimpleUploadedFile("brief.pdf", PDF.read_bytes(), content_type="application/pdf")
    html = media_buyer.post(reverse("campaigns:brief_intake"), {"file": upload}).content.decode()
    assert 'value="Rivian R2 Model Year Launch"' in html and 'value="4,700,000"' in html
    assert "Several budgets were found" in html


def test_nothing_or_a_non_pdf_is_refused_on_the_page(media_buyer):
    empty = media_buyer.post(reverse("campaigns:brief_intake"), {"text": ""})
    assert empty.status_code == 400 and "Paste a brief" in empty.content.decode()
    zipped = SimpleUploadedFile("a.zip", b"PK\x03\x04", content_type="application/zip")
    refused = media_buyer.post(reverse("campaigns:brief_intake"), {"file": zipped})
    assert refused.status_code == 400 and "Only PDF files can be uploaded" in refused.content.decode()
    assert media_buyer.get(reverse("campaigns:brief_intake")).status_code == 405
