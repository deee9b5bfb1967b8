from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from buyer.sellers import crypto
from buyer.sellers.types import BuyerIdentity

# An ``auto`` seller's agent card is re-read after this long (and sooner when calls to it fail).
DISCOVERY_TTL = timedelta(days=1)


class Protocol(models.TextChoices):
    REST = "rest", "REST"
    MCP = "mcp", "MCP"
    ADCP = "adcp", "AdCP (Ad Context Protocol over MCP)"
    AUTO = "auto", "Auto (agent card, then get_adcp_capabilities)"


class McpTransport(models.TextChoices):
    STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
    SSE = "sse", "SSE (legacy)"


class TrustLevel(models.TextChoices):
    TRUSTED = "trusted", "Trusted"
    STANDARD = "standard", "Standard"
    RESTRICTED = "restricted", "Restricted"


class CredentialScheme(models.TextChoices):
    API_KEY = "api_key", "API key (X-Api-Key header)"
    BEARER = "bearer", "Bearer token (Authorization header)"


class BreakerState(models.TextChoices):
    CLOSED = "closed", "Closed"
    OPEN = "open", "Open"
    HALF_OPEN = "half_open", "Half-open"


class Seller(models.Model):
    """A seller agent the buyer may buy from. Admins own these rows; ``SELLER_ENDPOINTS`` only seeds them.

    The credential is stored only as a Fernet token (``credential_ciphertext``); read it with
    ``get_credential()``, write it with ``set_credential()``. Health fields are written by
    ``services.seller_record_health`` with atomic updates, never by ``save()`` on a stale instance.
    """

    name = models.CharField(max_length=200)
    base_url = models.URLField(max_length=500, unique=True)
    protocol = models.CharField(
        max_length=8,
        choices=Protocol.choices,
        default=Protocol.REST,
        help_text=(
            "AdCP: an Ad Context Protocol sales agent at {base_url}/mcp. Auto reads GET /.well-known/agent.json "
            "(MCP when capabilities.protocols lists it), then asks get_adcp_capabilities (AdCP when it sells media), "
            "else REST."
        ),
    )
    mcp_transport = models.CharField(
        max_length=16,
        choices=McpTransport.choices,
        default=McpTransport.STREAMABLE_HTTP,
        help_text="Used when the seller is spoken to over MCP.",
    )
    discovered_protocol = models.CharField(
        max_length=8,
        choices=[(p.value, p.label) for p in (Protocol.REST, Protocol.MCP, Protocol.ADCP)],
        blank=True,
        default="",
        editable=False,
    )
    protocol_discovered_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    trust_level = models.CharField(
        max_length=16,
        choices=TrustLevel.choices,
        default=TrustLevel.STANDARD,
        help_text=(
            "Trusted: its lines may be auto-approved. Standard: the normal rules apply. Restricted: its inventory "
            "is researched and quoted, but its lines are never auto-approved; a person approves each one."
        ),
    )
    seeded_from_env = models.BooleanField(default=False)
    notes = models.TextField(blank=True, default="")
    timeout_seconds = models.FloatField(
        null=True,
        blank=True,
        validators=[MinValueValidator(0.1), MaxValueValidator(300)],
        help_text="Per-call timeout; empty uses SELLER_TIMEOUT_SECONDS.",
    )
    max_concurrency = models.PositiveSmallIntegerField(
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="Calls in flight to this seller at once, per worker process.",
    )

    # Credentials: the plaintext never lives in a column.
    credential_scheme = models.CharField(
        max_length=8, choices=CredentialScheme.choices, default=CredentialScheme.API_KEY
    )
    credential_ciphertext = models.TextField(blank=True, default="", editable=False)
    # Mutual TLS (AdCP sellers): our client certificate (public), its key (only encrypted), the seller's own CA.
    tls_client_cert = models.TextField(
        blank=True,
        default="",
        verbose_name="TLS client certificate",
        help_text="AdCP, mutual TLS: the PEM certificate the buyer presents to this seller (with its key below).",
    )
    tls_client_key_ciphertext = models.TextField(blank=True, default="", editable=False)
    tls_ca = models.TextField(
        blank=True,
        default="",
        verbose_name="Seller CA certificate",
        help_text="PEM: verify this seller's server certificate against this CA instead of the public ones.",
    )
    sign_requests = models.BooleanField(
        default=False,
        verbose_name="Sign requests (RFC 9421)",
        help_text=(
            "AdCP: give this seller's client the buyer's signing key (manage.py adcp_signing_key create), so "
            "the calls the seller's capabilities list under request_signing are signed. "
            "Public keys: /.well-known/jwks.json."
        ),
    )

    # The buyer's identity at this seller; with a credential it unlocks the seat/agency/advertiser tiers.
    seat_id = models.CharField(max_length=200, blank=True, default="")
    agency_id = models.CharField(max_length=200, blank=True, default="")
    advertiser_id = models.CharField(max_length=200, blank=True, default="")
    dsp_platform = models.CharField(max_length=100, blank=True, default="")

    # Health, shared by every worker process through this row.
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_failure_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=300, blank=True, default="", editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    calls_total = models.PositiveBigIntegerField(default=0, editable=False)
    errors_total = models.PositiveBigIntegerField(default=0, editable=False)
    error_rate = models.FloatField(default=0.0, editable=False, help_text="Moving average of failures, 0..1.")
    latency_ms = models.FloatField(null=True, blank=True, editable=False, help_text="Moving average, ms.")
    breaker_state = models.CharField(
        max_length=10, choices=BreakerState.choices, default=BreakerState.CLOSED, editable=False
    )
    breaker_opened_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_concurrency__gte=1), name="seller_max_concurrency_positive"),
            models.CheckConstraint(
                condition=models.Q(timeout_seconds__isnull=True) | models.Q(timeout_seconds__gt=0),
                name="seller_timeout_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_url})"

    # -- credential --------------------------------------------------------------------------------

    @property
    def has_credential(self) -> bool:
        return bool(self.credential_ciphertext)

    def set_credential(self, plaintext: str | None) -> None:
        """Encrypt and keep ``plaintext`` (None or blank removes it). The caller saves ``credential_ciphertext``."""
        value = (plaintext or "").strip()
        if any(not ch.isprintable() for ch in value):
            # It travels in an HTTP header: a newline would be header injection, other controls a typo.
            raise ValueError("a seller credential must not contain control characters")
        self.credential_ciphertext = crypto.encrypt(value) if value else ""

    def get_credential(self) -> str | None:
        """The decrypted credential, or None. Raises ``crypto.CredentialUnreadable`` when no key decrypts it."""
        if not self.credential_ciphertext:
            return None
        return crypto.decrypt(self.credential_ciphertext)

    def set_tls_client_key(self, pem: str | None) -> None:
        self.tls_client_key_ciphertext = crypto.encrypt(pem) if pem else ""

    def get_tls_client_key(self) -> str:
        """The client key's PEM, or "" (``CredentialUnreadable`` when the stored one cannot be decrypted)."""
        if not self.tls_client_key_ciphertext:
            return ""
        try:
            return crypto.decrypt(self.tls_client_key_ciphertext)
        except crypto.CredentialUnreadable:
            raise crypto.CredentialUnreadable(
                "the stored TLS client key cannot be decrypted with SELLER_CREDENTIALS_KEY; enter it again on the "
                "Sellers page"
            ) from None

    @property
    def has_tls_client_key(self) -> bool:
        return bool(self.tls_client_key_ciphertext)

    # -- identity, protocol, limits ----------------------------------------------------------------

    def buyer_identity(self) -> BuyerIdentity | None:
        identity = BuyerIdentity(
            seat_id=self.seat_id or None,
            agency_id=self.agency_id or None,
            advertiser_id=self.advertiser_id or None,
            dsp_platform=self.dsp_platform or None,
        )
        return identity if identity.as_wire() else None

    @property
    def effective_protocol(self) -> str:
        """``rest`` or ``mcp``: the configured one, or for ``auto`` the last discovered one (REST until known)."""
        if self.protocol != Protocol.AUTO:
            return self.protocol
        return self.discovered_protocol or Protocol.REST

    def discovery_due(self, now: datetime) -> bool:
        if self.protocol != Protocol.AUTO:
            return False
        return self.protocol_discovered_at is None or now - self.protocol_discovered_at >= DISCOVERY_TTL

    @property
    def effective_timeout(self) -> float:
        return self.timeout_seconds if self.timeout_seconds is not None else settings.SELLER_TIMEOUT_SECONDS


class SellerWebhook(models.Model):
    """A task notification an AdCP seller sent (``POST /webhooks/adcp/{id}``), kept a week to drop its retries
    and replays: one row per seller and ``idempotency_key``."""

    seller = models.ForeignKey(Seller, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=255)
    task_id = models.CharField(max_length=200)
    status = models.CharField(max_length=32)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["seller", "idempotency_key"], name="one_webhook_per_seller_key")]

    def __str__(self) -> str:
        return f"{self.task_id}: {self.status}"


class SigningKey(models.Model):
    """The buyer's RFC 9421 request-signing key (``buyer.sellers.signing``): the private half stored only as a
    Fernet token, the public half published at ``/.well-known/jwks.json`` until retired."""

    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=24, default="ed25519")
    private_ciphertext = models.TextField()
    public_jwk = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.kid

    def __repr__(self) -> str:
        return f"<SigningKey {self.kid}>"

    def set_private_pem(self, pem: bytes) -> None:
        self.private_ciphertext = crypto.encrypt(pem.decode())

    def private_pem(self) -> bytes:
        try:
            return crypto.decrypt(self.private_ciphertext).encode()
        except crypto.CredentialUnreadable:
            raise crypto.CredentialUnreadable(
                f"the request-signing key {self.kid} cannot be decrypted with SELLER_CREDENTIALS_KEY; make a new "
                "one (manage.py adcp_signing_key create) and retire this one"
            ) from None
