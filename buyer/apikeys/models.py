from __future__ import annotations

from django.conf import settings
from django.db import models


class Scope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Create and approve bookings"
    ADMIN = "admin", "Administer"
    METRICS = "metrics", "Read metrics"


# The scopes that may read the API (a metrics-only key may not).
API_SCOPES = frozenset({Scope.READ, Scope.WRITE, Scope.ADMIN})


class ApiKey(models.Model):
    """A machine credential. Only a lookup prefix and a SHA-256 digest of the secret are stored."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
