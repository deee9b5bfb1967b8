from __future__ import annotations

import logging
from typing import Any, TypedDict

from django.core.serializers.json import DjangoJSONEncoder

from buyer.events.models import Event, EventType

logger = logging.getLogger(__name__)

_ENCODER = DjangoJSONEncoder()


class FlowIds(TypedDict):
    """The flow an event belongs to, as ``event_emit(…, **ids)`` takes it."""

    flow_id: str
    campaign_id: str


def _jsonable(value: Any) -> Any:
    """Decimals, dates and UUIDs in payloads become JSON-safe values (Decimals as strings, exactly)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _ENCODER.default(value)


def event_emit(
    event_type: EventType,
    *,
    flow_id: str = "",
    flow_type: str = "booking",
    campaign_id: str = "",
    deal_id: str = "",
    session_id: str = "",
    payload: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Event:
    """Persist one event. Call it inside the transaction that makes the state change it reports."""
    event = Event.objects.create(
        event_type=event_type,
        flow_id=str(flow_id),
        flow_type=flow_type,
        campaign_id=str(campaign_id),
        deal_id=deal_id,
        session_id=session_id,
        payload=_jsonable(payload or {}),
        metadata=_jsonable(metadata or {}),
    )
    logger.info("event %s flow=%s", event_type, flow_id)
    return event


def event_emit_many(events: list[dict[str, Any]]) -> list[Event]:
    """Persist many events in one INSERT; each dict takes ``event_emit``'s arguments (``event_type`` first)."""
    rows = [
        Event(
            event_type=item["event_type"],
            flow_id=str(item.get("flow_id", "")),
            flow_type=item.get("flow_type", "booking"),
            campaign_id=str(item.get("campaign_id", "")),
            deal_id=item.get("deal_id", ""),
            session_id=item.get("session_id", ""),
            payload=_jsonable(item.get("payload") or {}),
            metadata=_jsonable(item.get("metadata") or {}),
        )
        for item in events
    ]
    if rows:
        Event.objects.bulk_create(rows, batch_size=1000)
        logger.info("events: %d x %s", len(rows), ", ".join(sorted({str(r.event_type) for r in rows})))
    return rows
