"""``POST /webhooks/adcp/{seller_id}``: AdCP sellers' signed task notifications (``buyer.sellers.webhooks``).

Verified and de-duplicated here; what a notification changes is only *when* the buyer next asks the seller: the
orders (booking lines) and budget cuts waiting on the task it names become due, and the poller reads the task
from the seller at once. Nothing is booked, failed or cut on a webhook's word."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja import Router, Schema
from ninja.errors import HttpError
from pydantic import Field

from buyer.sellers.models import Seller, SellerWebhook
from buyer.sellers.webhooks import WebhookRefused, verify
from campaigns.models import Recommendation
from pacing.models import CutStatus, SellerBudgetCut

logger = logging.getLogger("buyer.sellers")

router = Router(tags=["sellers"])
RECEIPTS_KEPT = timedelta(days=7)


class WebhookOut(Schema):
    status: str = Field(description="accepted, or duplicate for a notification already received (nothing done)")
    followed: int = Field(description="Orders and budget changes waiting on this task, now polled at once")


@router.post(
    "/webhooks/adcp/{seller_id}",
    auth=None,
    response=WebhookOut,
    summary="An AdCP seller's signed task notification (HMAC-SHA256, X-AdCP-Signature / X-AdCP-Timestamp)",
    openapi_extra={
        "responses": {
            "401": {"description": "Unsigned, signed with another secret, or more than 300 s old"},
            "413": {"description": "The body is larger than MAX_REQUEST_BODY_BYTES"},
            "422": {"description": "Signed, but not a task notification (idempotency_key, task_id, status)"},
            "503": {"description": "The database is unavailable; the seller retries, and beat polls meanwhile"},
        }
    },
)
def adcp_webhook(request: HttpRequest, seller_id: int):
    """Sent by the seller to the ``push_notification_config.url`` the buyer gave with the order
    (``ADCP_WEBHOOK_URL``). The signature is checked over the raw body with this seller's secret."""
    seller = Seller.objects.filter(pk=seller_id).only("pk").first() if 0 < seller_id < 2**63 else None
    if seller is None:
        raise HttpError(404, f"No seller {seller_id}")
    try:
        note = verify(seller_pk=seller.pk, headers=request.headers, body=request.body)
    except WebhookRefused as refused:
        logger.warning("seller %s: webhook refused (%s)", seller.pk, refused)
        raise HttpError(refused.status, str(refused)) from None
    now = timezone.now()
    try:
        with transaction.atomic():
            SellerWebhook.objects.create(
                seller=seller, idempotency_key=note.idempotency_key, task_id=note.task_id, status=note.status
            )
    except IntegrityError:
        return {"status": "duplicate", "followed": 0}
    followed = make_due(seller.pk, note.task_id, now)
    SellerWebhook.objects.filter(received_at__lt=now - RECEIPTS_KEPT).delete()
    if followed:
        transaction.on_commit(_poll_now)
    logger.info("seller %s: webhook for task %s (%s), %d to follow", seller.pk, note.task_id, note.status, followed)
    return {"status": "accepted", "followed": followed}


def make_due(seller_pk: int, task_id: str, now: datetime) -> int:
    """Make what waits on ``task_id`` at this seller due for the poller now; how many. A line or cut a poll has
    claimed (its next check moved past now) is left to that poll, which is asking the seller already."""
    lines = (
        Recommendation.objects.filter(seller_id=seller_pk, seller_task_id=task_id, deal__isnull=True)
        .filter(Q(seller_task_checked_at__isnull=True) | Q(seller_task_checked_at__lte=now))
        .update(seller_task_checked_at=None)
    )
    # A cut under review is next checked an interval after its last check; a claim holds it far longer.
    scheduled = now + timedelta(seconds=settings.ADCP_TASK_POLL_SECONDS)
    cuts = SellerBudgetCut.objects.filter(
        deal__seller_id=seller_pk, task_id=task_id, status=CutStatus.SUBMITTED, due_at__lte=scheduled
    ).update(due_at=now)
    return lines + cuts


def _poll_now() -> Any:
    from campaigns.tasks import poll_seller_tasks
    from pacing.tasks import apply_budget_cuts

    try:
        poll_seller_tasks.delay()
        apply_budget_cuts.delay()
    except Exception:
        # The broker is away: beat polls on its next run (what the webhook named is due already).
        logger.warning("could not queue the poll a webhook asked for; beat polls it", exc_info=True)
