from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Schema


class EventOut(Schema):
    event_id: str
    event_type: str
    timestamp: datetime
    flow_id: str | None
    flow_type: str | None
    deal_id: str | None
    campaign_id: str | None
    session_id: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any]

    @staticmethod
    def resolve_event_id(obj: Any) -> str:
        return str(obj.event_id)


class EventListOut(Schema):
    events: list[EventOut]
    total: int
