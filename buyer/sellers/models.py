from __future__ import annotations

from django.db import models


class Protocol(models.TextChoices):
    REST = "rest", "REST"
    MCP = "mcp", "MCP"


class Seller(models.Model):
    """A seller agent the buyer may buy from. Admins own these rows; ``SELLER_ENDPOINTS`` only seeds them."""

    name = models.CharField(max_length=200)
    base_url = models.URLField(max_length=500, unique=True)
    protocol = models.CharField(max_length=8, choices=Protocol.choices, default=Protocol.REST)
    enabled = models.BooleanField(default=True)
    seeded_from_env = models.BooleanField(default=False)
    notes = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_url})"
