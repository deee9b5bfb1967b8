from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.errors import HttpError
from pydantic import Field

from buyer.events import selectors
from buyer.events.schemas import EventListOut, EventOut

router = Router(tags=["events"])


class EventFilters(Schema):
    event_type: str | None = Field(default=None, max_length=64)
    flow_id: str | None = Field(default=None, max_length=64)
    session_id: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=50, ge=1, le=500)


@router.get("/events", response=EventListOut, summary="List events, newest first")
def list_events(request: HttpRequest, filters: Query[EventFilters]) -> dict:
    events = selectors.event_list(event_type=filters.event_type, flow_id=filters.flow_id, session_id=filters.session_id)
    return {"events": list(events[: filters.limit]), "total": events.count()}


@router.get("/events/{event_id}", response=EventOut, summary="One event")
def get_event(request: HttpRequest, event_id: str):
    event = selectors.event_get(event_id)
    if event is None:
        raise HttpError(404, "Event not found")
    return event
