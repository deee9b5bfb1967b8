"""The real log files of a running stack with LOG_FORMAT=json: JSON lines, the job and its step on the worker's,
and no secret anywhere (the API key the client sends, the SECRET_KEY)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import API_KEY, Api

pytestmark = pytest.mark.stack


def test_a_running_stack_logs_json_with_job_and_seller_and_no_secret(make_stack, brief):
    stack = make_stack(LOG_FORMAT="json", SECRET_KEY="stack-secret-key-for-logs-123456")
    api = Api(stack)
    job_id = api.submit(brief, auto_approve=True)
    assert api.wait_for(job_id, "completed", "failed")["status"] == "completed"
    assert api.http.get("/bookings/not-a-job").status_code == 404
    assert stack.log_dir is not None
    text = "".join(path.read_text(errors="replace") for path in stack.log_dir.glob("*.log"))
    assert API_KEY not in text and "stack-secret-key-for-logs-123456" not in text
    for name in ("web.log", "worker.log"):
        lines = (stack.log_dir / name).read_text().splitlines()
        assert [json.loads(line) for line in lines if line.startswith("{")], name
    worker = [
        json.loads(line) for line in (stack.log_dir / "worker.log").read_text().splitlines() if line.startswith("{")
    ]
    assert any(r.get("job_id") == job_id and r.get("stage") for r in worker)
