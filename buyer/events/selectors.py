from __future__ import annotations

import uuid

from django.db.models import QuerySet

from buyer.events.models import Event


def event_list(
    *, event_type: str | None = None, flow_id: str | None = None, session_id: str | None = None
) -> QuerySet[Event]:
    events = Event.objects.all()
    if event_type:
        events = events.filter(event_type=event_type)
    if flow_id:
        events = events.filter(flow_id=flow_id)
    if session_id:
        events = events.filter(session_id=session_id)
    return events.order_by("-timestamp")


def event_get(event_id: str) -> Event | None:
    try:
        key = uuid.UUID(event_id)
    except ValueError:
        return None
    return Event.objects.filter(pk=key).first()


def event_timeline(flow_id: str) -> QuerySet[Event]:
    """A job's events, newest first (what just happened is on top)."""
    return Event.objects.filter(flow_id=flow_id).order_by("-timestamp", "-pk")
