"""Heartbeats: the workers of each queue, and beat, write when they last ran. Readiness reads them (works on
every broker: the embedded one cannot carry Celery's ping broadcast)."""

from __future__ import annotations

from django.db import models

BEAT = "beat"


def worker_role(queue: str) -> str:
    """The heartbeat of the workers consuming ``queue``."""
    return f"worker:{queue}"


class Heartbeat(models.Model):
    """The last moment something that must keep running (a queue's worker, beat) said it was alive."""

    role = models.CharField(max_length=200, unique=True, help_text="worker:<queue> or beat")
    hostname = models.CharField(max_length=255, blank=True, default="", help_text="Who wrote it last")
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.role} at {self.seen_at:%Y-%m-%d %H:%M:%S} ({self.hostname})"
