"""Log lines: JSON or words, each with the request id, job, seller and agent role it happened in, and never a
secret — checked on formatted records here, and on the real log files of a running stack in
``tests/e2e/test_stack_logs.py``."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from buyer.logs import REDACTED, ContextFilter, JsonLineFormatter, TextFormatter, log_context, redact

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def capture(formatter: logging.Formatter) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_a_json_line_carries_the_context_it_was_logged_in():
    logger, stream = capture(JsonLineFormatter(FORMAT))
    with log_context(request_id="req-1", job_id="job-9"), log_context(seller="Sandbox", agent_role="manager"):
        logger.info("booked %s lines", 3)
    logger.info("outside")
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "booked 3 lines" and inside["level"] == "INFO" and inside["time"]
    assert (inside["request_id"], inside["job_id"], inside["seller"], inside["agent_role"]) == (
        "req-1", "job-9", "Sandbox", "manager",
    )  # fmt: skip
    assert outside["job_id"] == "" and outside["message"] == "outside"


def test_a_text_line_says_its_context_after_the_message():
    logger, stream = capture(TextFormatter(FORMAT))
    with log_context(job_id="job-9", stage="book"):
        logger.warning("slow seller")
    assert stream.getvalue().rstrip().endswith("slow seller [job_id=job-9 stage=book]")


def test_configured_secrets_and_key_shapes_are_redacted_from_message_arguments_and_tracebacks(settings):
    settings.API_KEY = "bootstrap-key-abcdef123"
    settings.SECRET_KEY = "django-secret-0987654321"
    logger, stream = capture(JsonLineFormatter(FORMAT))
    try:
        raise RuntimeError(f"could not use {settings.SECRET_KEY}")
    except RuntimeError:
        logger.exception("key %s and mba_0a1b2c_s3cretpart and Bearer abcdefghijkl", settings.API_KEY)
    line = stream.getvalue()
    assert settings.API_KEY not in line and settings.SECRET_KEY not in line
    assert "s3cretpart" not in line and "abcdefghijkl" not in line
    assert line.count(REDACTED) >= 4 and "RuntimeError" in json.loads(line)["exc_info"]
    assert redact("nothing to hide here") == "nothing to hide here"


@pytest.mark.parametrize(
    "name", ["SELLER_CREDENTIALS_KEY", "ANTHROPIC_API_KEY", "OPENDIRECT_API_KEY", "OPENDIRECT_TOKEN"]
)
def test_every_configured_credential_is_redacted(settings, name):
    setattr(settings, name, "plain-credential-7f3a")
    assert redact("sent plain-credential-7f3a upstream") == f"sent {REDACTED} upstream"


@pytest.mark.django_db
def test_every_answer_has_a_request_id_and_the_callers_sane_one_is_kept(client):
    mine = client.get("/health/ready", headers={"X-Request-ID": "trace-42"})
    assert mine["X-Request-ID"] == "trace-42"
    made = client.get("/health/ready", headers={"X-Request-ID": "bad id\nwith newline"})
    assert re.fullmatch(r"[0-9a-f]{32}", made["X-Request-ID"])


@pytest.mark.django_db
def test_the_log_lines_of_a_request_carry_its_id(client, caplog):
    caplog.handler.addFilter(ContextFilter())
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/no-such-route", headers={"X-Request-ID": "trace-404"})
    assert response.status_code == 404
    assert any(getattr(r, "request_id", "") == "trace-404" for r in caplog.records)


def test_a_function_run_in_a_pool_logs_the_context_of_the_thread_that_sent_it():
    from concurrent.futures import ThreadPoolExecutor

    from buyer.logs import carrying_log_context, current_context

    with log_context(job_id="job-7", stage="research"):
        wrapped = carrying_log_context(current_context)
    with ThreadPoolExecutor(max_workers=2) as pool:
        seen = list(pool.submit(wrapped).result() for _ in range(2))
        bare = pool.submit(current_context).result()
    assert seen == [{"job_id": "job-7", "stage": "research"}] * 2 and bare == {}
