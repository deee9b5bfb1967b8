"""AdCP task webhooks: the seller's signed word that an order (or a budget change) it was reviewing moved on.

When ``ADCP_WEBHOOK_URL`` names where sellers reach this product, every ``create_media_buy`` and
``update_media_buy`` asks the seller to notify ``{ADCP_WEBHOOK_URL}/webhooks/adcp/{seller id}`` of the task's
progress, signed with AdCP's HMAC-SHA256 scheme (``X-AdCP-Signature: sha256=<hex>`` of
``"{X-AdCP-Timestamp}.{raw body}"``). The secret is derived per seller from ``SECRET_KEY`` (nothing to store or
leak from the database; rotating ``SECRET_KEY`` rotates them, and the poller covers tasks in flight meanwhile).

A webhook is a *hint*, never a fact about money: a verified, not yet seen notification (de-duplicated by the
seller's ``idempotency_key``) makes the task it names due for the poller now, which reads the task from the
seller (``get_task_status``) as it would have on its next beat. So a forged, replayed or reordered webhook can
at most make the buyer ask sooner. Without ``ADCP_WEBHOOK_URL`` nothing is asked of sellers and beat polls alone.
The route that receives them is ``buyer.adcp_webhooks``; this module signs nothing and imports nothing of ours.

The HMAC check is written here, not taken from the ``adcp`` package: that package costs ~550 MiB to import
and the web process, which receives webhooks, never loads it. ``tests/campaigns/test_adcp_webhooks.py`` checks
this verifier against the package's own signer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

WEBHOOK_PATH = "/webhooks/adcp/{seller_id}"
SIGNATURE_HEADER = "X-AdCP-Signature"
TIMESTAMP_HEADER = "X-AdCP-Timestamp"
WINDOW_SECONDS = 300  # the spec's accepted clock skew
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{16,255}$")
MAX_TASK_ID = 200


class WebhookRefused(Exception):
    """Not a webhook this product accepts: ``status`` is the HTTP answer (401 unsigned, 422 malformed)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Notification:
    idempotency_key: str
    task_id: str
    status: str
    task_type: str


def webhook_secret(seller_pk: int) -> str:
    return salted_hmac("buyer.sellers.adcp-webhook", str(seller_pk), algorithm="sha256").hexdigest()


def push_notification_config(seller_pk: int | None, *, operation_id: str) -> dict[str, Any] | None:
    """The ``push_notification_config`` of an order or a change sent to this seller; None when webhooks are off."""
    base = settings.ADCP_WEBHOOK_URL
    if not base or seller_pk is None:
        return None
    return {
        "url": base.rstrip("/") + WEBHOOK_PATH.format(seller_id=seller_pk),
        "operation_id": operation_id[:255],
        "authentication": {"schemes": ["HMAC-SHA256"], "credentials": webhook_secret(seller_pk)},
    }


def verify(*, seller_pk: int, headers: Any, body: bytes, now: float | None = None) -> Notification:
    """The notification in ``body`` if its signature is this seller's and fresh; ``WebhookRefused`` if not."""
    signature = headers.get(SIGNATURE_HEADER) or ""
    stamp = headers.get(TIMESTAMP_HEADER) or ""
    # ASCII digits only, and a sane length: "²" is a digit to str.isdigit, and a 5,000-digit number overflows.
    digest = signature.removeprefix("sha256=")
    if (
        not signature.startswith("sha256=")
        or not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12)
        or not (digest.isascii() and len(digest) == 64)
    ):
        raise WebhookRefused(f"missing or malformed {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}", status=401)
    moment = time.time() if now is None else now
    if abs(moment - int(stamp)) > WINDOW_SECONDS:
        raise WebhookRefused(f"the timestamp is more than {WINDOW_SECONDS} s away from now", status=401)
    expected = hmac.new(webhook_secret(seller_pk).encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.encode()):
        raise WebhookRefused("the signature does not match", status=401)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused("the body is not JSON", status=422) from None
    if not isinstance(payload, dict):
        raise WebhookRefused("the body is not a JSON object", status=422)
    key, task_id, status = payload.get("idempotency_key"), payload.get("task_id"), payload.get("status")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise WebhookRefused("idempotency_key: 16 to 255 characters of A-Z a-z 0-9 _ . : -", status=422)
    if not isinstance(task_id, str) or not task_id.strip() or len(task_id) > MAX_TASK_ID or not task_id.isprintable():
        raise WebhookRefused(f"task_id: a task id of at most {MAX_TASK_ID} printable characters", status=422)
    if not isinstance(status, str) or not status or len(status) > 32 or not status.isprintable():
        raise WebhookRefused("status: the task's status", status=422)
    task_type = payload.get("task_type")
    return Notification(key, task_id, status, task_type if isinstance(task_type, str) else "")
