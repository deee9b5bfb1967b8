"""The sandbox seller's task webhooks: each asynchronous order's status changes (``working``,
``input-required``, ``completed``, ``rejected``), sent to the ``push_notification_config.url`` the buyer gave
with the order, as an MCP webhook payload signed the way the buyer asked (HMAC-SHA256 or a Bearer token) by the
``adcp`` library's own helpers. A delivery that fails is tried again on the next send; a status is sent until
the buyer answers 2xx, with the same ``idempotency_key`` each time (so the buyer drops the repeats)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import httpx
from adcp.webhooks import create_mcp_webhook_payload, sign_legacy_webhook, to_wire_dict

from buyer.sandbox_adcp.state import SandboxAdcpState, TaskRecord

logger = logging.getLogger(__name__)

NOTIFIED_STATUSES = frozenset({"working", "input-required", "completed", "rejected"})
Post = Callable[..., Any]  # (url, *, content, headers, timeout) -> a response with ``status_code``


class WebhookSender:
    def __init__(self, state: SandboxAdcpState, *, post: Post | None = None, timeout: float = 5.0) -> None:
        self.state = state
        self.post: Post = post or httpx.post
        self.timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def send_due(self) -> int:
        """Send every task's status the buyer has not yet acknowledged; how many were acknowledged."""
        sent = 0
        for task in self.state.all_tasks():
            if task.push is None or task.status == task.notified or task.status not in NOTIFIED_STATUSES:
                continue
            status = task.status
            headers, body = self._signed(task, status)
            try:
                response = self.post(str(task.push["url"]), content=body, headers=headers, timeout=self.timeout)
            except (httpx.HTTPError, OSError) as exc:
                logger.info("webhook for task %s not delivered: %s", task.task_id, exc)
                continue
            if 200 <= response.status_code < 300:
                self.state.mark_notified(task.task_id, status)
                sent += 1
            else:
                logger.info("webhook for task %s answered %s", task.task_id, response.status_code)
        return sent

    def _signed(self, task: TaskRecord, status: str) -> tuple[dict[str, str], bytes]:
        push = task.push or {}
        result: dict[str, Any] | None = None
        if status == "completed":
            result = {"media_buy_id": task.media_buy_id}
        elif status == "rejected":
            result = {"errors": [{"code": "POLICY_VIOLATION", "message": task.rejection or "rejected"}]}
        payload = create_mcp_webhook_payload(
            task.task_id,
            status,
            task.task_type,
            result=result,
            operation_id=str(push.get("operation_id") or task.task_id),
            message=task.message,
            idempotency_key=f"whk_{task.task_id}_{status}",
            token=push.get("token"),
        )
        wire = to_wire_dict(payload)
        headers = {"Content-Type": "application/json"}
        auth = push.get("authentication") or {}
        schemes, secret = auth.get("schemes") or [], str(auth.get("credentials") or "")
        if "HMAC-SHA256" in schemes and secret:
            return sign_legacy_webhook(secret, wire, headers=headers)
        if "Bearer" in schemes and secret:
            headers["Authorization"] = f"Bearer {secret}"
        return headers, json.dumps(wire, separators=(",", ":")).encode()

    def start(self, interval: float) -> None:
        """Send in a daemon thread every ``interval`` seconds until ``stop``."""

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.send_due()
                except Exception:
                    logger.exception("sending webhooks failed")

        self._thread = threading.Thread(target=loop, name="adcp-sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
