"""Settings, read from the environment and an optional ``.env`` file (the shell wins over ``.env``).

Variable names and meanings follow the operations guide; ``.env.example`` documents every one of them.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

import buyer
from buyer.env import (
    check_http_url,
    env_bool,
    env_choice,
    env_decimal,
    env_int,
    env_json_object,
    env_list,
    env_optional_str,
    env_required_str,
    env_str,
    env_url,
    env_url_list,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("BUYER_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

environ.Env.read_env(os.environ.get("BUYER_ENV_FILE", BASE_DIR / ".env"))

# --- Environment -------------------------------------------------------------------------------------------
ENVIRONMENT = env_choice("ENVIRONMENT", "development", ["development", "testing", "staging", "production"])
IS_DEVELOPMENT = ENVIRONMENT in {"development", "testing"}
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
# json: one JSON object a line (staging, production); text: words (development, testing).
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if ENVIRONMENT in {"development", "testing"} else "json", ["json", "text"])
DEBUG = env_bool("DJANGO_DEBUG", False)

if IS_DEVELOPMENT:
    SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-secret-key-do-not-use-in-production")
else:
    SECRET_KEY = env_required_str("SECRET_KEY", f"ENVIRONMENT={ENVIRONMENT} has no default secret key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- Guide variables ---------------------------------------------------------------------------------------
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
API_KEY = env_str("API_KEY")
SELLER_ENDPOINTS = env_url_list("SELLER_ENDPOINTS")
IAB_SERVER_URL = env_url("IAB_SERVER_URL", "http://localhost:8001")
# Only an explicitly set IAB_SERVER_URL names a seller; its default points at this service itself.
IAB_SERVER_URL_IS_SET = env_optional_str("IAB_SERVER_URL") is not None
OPENDIRECT_BASE_URL = env_url("OPENDIRECT_BASE_URL", "http://localhost:3000/api/v2.1")
OPENDIRECT_TOKEN = env_optional_str("OPENDIRECT_TOKEN")
OPENDIRECT_API_KEY = env_optional_str("OPENDIRECT_API_KEY")
DEFAULT_LLM_MODEL = env_str("DEFAULT_LLM_MODEL", "anthropic/claude-sonnet-4-5-20250929")
MANAGER_LLM_MODEL = env_str("MANAGER_LLM_MODEL", "anthropic/claude-opus-4-20250514")
LLM_TEMPERATURE = float(env_decimal("LLM_TEMPERATURE", "0.3", minimum="0", maximum="2"))
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 4096, minimum=1, maximum=200_000)
REDIS_URL = env_optional_str("REDIS_URL")
CREW_MEMORY_ENABLED = env_bool("CREW_MEMORY_ENABLED", True)
CREW_VERBOSE = env_bool("CREW_VERBOSE", True)
CREW_MAX_ITERATIONS = env_int("CREW_MAX_ITERATIONS", 15, minimum=1, maximum=1000)
# The agents (buyer/llm, buyer/agents). LLM_MODE: auto runs them when the models' provider has a key (or needs
# none), on always, off never (the deterministic policies run: same flow, same events).
LLM_MODE = env_choice("LLM_MODE", "auto", ["auto", "on", "off"])
LLM_FALLBACK_MODEL = env_str("LLM_FALLBACK_MODEL")  # tried when the primary fails or its breaker is open
# Provider-specific parameters, sent only to models of that provider (never to a fallback elsewhere), as JSON:
# {"anthropic": {"top_k": 40}}.
LLM_PROVIDER_PARAMS = env_json_object("LLM_PROVIDER_PARAMS")
LLM_TIMEOUT_SECONDS = env_int("LLM_TIMEOUT_SECONDS", 60, minimum=1, maximum=600)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2, minimum=0, maximum=5)  # transient errors only: 429, 5xx, timeouts
LLM_RETRY_AFTER_MAX_SECONDS = env_int("LLM_RETRY_AFTER_MAX_SECONDS", 30, minimum=0, maximum=600)
LLM_BREAKER_FAILURES = env_int("LLM_BREAKER_FAILURES", 5, minimum=1, maximum=1000)
LLM_BREAKER_COOLDOWN_SECONDS = env_int("LLM_BREAKER_COOLDOWN_SECONDS", 60, minimum=1, maximum=86_400)
# Caps, checked before every call: per agent (steps are CREW_MAX_ITERATIONS), per job, per day across jobs.
LLM_AGENT_MAX_TOKENS = env_int("LLM_AGENT_MAX_TOKENS", 60_000, minimum=100, maximum=10_000_000)
LLM_AGENT_MAX_SECONDS = env_int("LLM_AGENT_MAX_SECONDS", 120, minimum=1, maximum=3600)
LLM_AGENT_MAX_USD = env_decimal("LLM_AGENT_MAX_USD", "1.00", minimum="0", maximum="10000")
LLM_JOB_MAX_TOKENS = env_int("LLM_JOB_MAX_TOKENS", 200_000, minimum=100, maximum=100_000_000)
LLM_JOB_MAX_SECONDS = env_int("LLM_JOB_MAX_SECONDS", 300, minimum=1, maximum=86_400)
LLM_JOB_MAX_USD = env_decimal("LLM_JOB_MAX_USD", "5.00", minimum="0", maximum="100000")
# The portfolio manager's split: a funded channel gets at least / at most this share of the budget.
PLAN_MIN_SHARE_PCT = env_decimal("PLAN_MIN_SHARE_PCT", "5", minimum="0", maximum="50")
PLAN_MAX_SHARE_PCT = env_decimal("PLAN_MAX_SHARE_PCT", "80", minimum="10", maximum="100")
# The execution check agent reviews each plan against its brief before approval (one more call per job; code's
# own checks always run).
LLM_EXECUTION_REVIEW = env_bool("LLM_EXECUTION_REVIEW", False)
# What a call to a model litellm's cost map does not price costs, per million input and output tokens.
LLM_UNKNOWN_MODEL_USD_PER_MTOK = (
    env_decimal("LLM_UNKNOWN_INPUT_USD_PER_MTOK", "15", minimum="0", maximum="10000"),
    env_decimal("LLM_UNKNOWN_OUTPUT_USD_PER_MTOK", "75", minimum="0", maximum="10000"),
)
LLM_DAILY_MAX_USD = env_decimal("LLM_DAILY_MAX_USD", "100", minimum="0", maximum="1000000")
# Brief intake (POST /briefs/parse, the New booking page): the largest PDF accepted, and how much of a brief's
# text the brief parser agent reads.
BRIEF_UPLOAD_MAX_BYTES = env_int("BRIEF_UPLOAD_MAX_BYTES", 10_000_000, minimum=10_000, maximum=100_000_000)
BRIEF_MODEL_MAX_CHARS = env_int("BRIEF_MODEL_MAX_CHARS", 20_000, minimum=1000, maximum=500_000)
# litellm must never fetch its cost map at import: the local copy prices calls (unknown models pessimistically).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
CORS_ALLOWED_ORIGINS = [
    check_http_url("CORS_ALLOWED_ORIGINS", origin)
    for origin in env_list("CORS_ALLOWED_ORIGINS", "http://localhost:3000,http://localhost:8080")
]
# Browser origins allowed to call the MCP endpoint (DNS-rebinding protection; ``http://host:*`` allows any
# port). Pages served from ALLOWED_HOSTS are allowed too. Unset: the CORS origins.
MCP_ALLOWED_ORIGINS = [
    check_http_url("MCP_ALLOWED_ORIGINS", origin)
    for origin in env_list("MCP_ALLOWED_ORIGINS", ",".join(CORS_ALLOWED_ORIGINS))
]

if REDIS_URL is not None and urlsplit(REDIS_URL).scheme not in {"redis", "rediss"}:
    raise ImproperlyConfigured(f"Invalid value for REDIS_URL: {REDIS_URL!r} (expected redis:// or rediss://).")

# --- Seller calls and the job engine -----------------------------------------------------------------------
SELLER_TIMEOUT_SECONDS = float(env_decimal("SELLER_TIMEOUT_SECONDS", "10", minimum="0.1", maximum="300"))
SELLER_MAX_RETRIES = env_int("SELLER_MAX_RETRIES", 2, minimum=0, maximum=10)
SELLER_MAX_PARALLEL = env_int("SELLER_MAX_PARALLEL", 8, minimum=1, maximum=64)
# Lease a worker holds on a job step; a step still leased past this is presumed dead and may be resumed.
JOB_STEP_LEASE_SECONDS = env_int("JOB_STEP_LEASE_SECONDS", 600, minimum=5, maximum=86_400)
# A job with no progress for this long is picked up by the sweeper.
JOB_STALL_SECONDS = env_int("JOB_STALL_SECONDS", 300, minimum=5, maximum=86_400)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1, maximum=20)
JOB_SWEEP_INTERVAL_SECONDS = env_int("JOB_SWEEP_INTERVAL_SECONDS", 30, minimum=1, maximum=3600)
# Negotiation: the strategy a brief gets unless it names one (none, threshold, adaptive, competitive), the most
# priced rounds per line, the threshold strategy's concession per round (share of the target-to-walk-away gap),
# and how long a job may negotiate in all before the quotes stand as they are.
NEGOTIATION_STRATEGY = env_choice("NEGOTIATION_STRATEGY", "threshold", ["none", "threshold", "adaptive", "competitive"])
NEGOTIATION_MAX_ROUNDS = env_int("NEGOTIATION_MAX_ROUNDS", 3, minimum=1, maximum=10)
NEGOTIATION_STEP_PCT = env_decimal("NEGOTIATION_STEP_PCT", "25", minimum="1", maximum="100")
NEGOTIATION_MAX_SECONDS = env_int("NEGOTIATION_MAX_SECONDS", 300, minimum=5, maximum=86_400)
# Money limits: no line costs more than MAX_LINE_USD (a brief without a max CPM is not unlimited); auto_approve
# approves only jobs whose lines are each at most AUTO_APPROVE_MAX_LINE_USD and together at most
# AUTO_APPROVE_MAX_JOB_USD (above, the job waits for a person); no seller gets more than SELLER_MAX_SHARE_PCT
# of a brief's budget.
MAX_LINE_USD = env_decimal("MAX_LINE_USD", "1000000", minimum="1", maximum="1000000000")
AUTO_APPROVE_MAX_LINE_USD = env_decimal("AUTO_APPROVE_MAX_LINE_USD", "100000", minimum="0", maximum="1000000000")
AUTO_APPROVE_MAX_JOB_USD = env_decimal("AUTO_APPROVE_MAX_JOB_USD", "500000", minimum="0", maximum="1000000000")
SELLER_MAX_SHARE_PCT = env_decimal("SELLER_MAX_SHARE_PCT", "100", minimum="1", maximum="100")
# How often a booked deal is read back from its seller (its status followed: expired, cancelled, completed).
DEAL_REFRESH_HOURS = env_int("DEAL_REFRESH_HOURS", 24, minimum=1, maximum=24 * 30)
# How far a seller's read-back may exceed the approved impressions, CPM or cost before the deal is held.
BOOKING_TOLERANCE_PCT = env_decimal("BOOKING_TOLERANCE_PCT", "1", minimum="0", maximum="50")
APPROVAL_TTL_HOURS = env_int("APPROVAL_TTL_HOURS", 72, minimum=1, maximum=24 * 90)
MAX_CANDIDATES_PER_CHANNEL = env_int("MAX_CANDIDATES_PER_CHANNEL", 3, minimum=1, maximum=20)

# --- Budget pacing -----------------------------------------------------------------------------------------
# How often delivery is read from the sellers, and how often expected and actual spend are compared.
PACING_DELIVERY_INTERVAL_SECONDS = env_int("PACING_DELIVERY_INTERVAL_SECONDS", 900, minimum=10, maximum=86_400)
PACING_SNAPSHOT_INTERVAL_SECONDS = env_int("PACING_SNAPSHOT_INTERVAL_SECONDS", 3600, minimum=10, maximum=86_400)
# Deals read per delivery task (one seller each), and concurrent reads per task (within the seller's own cap).
PACING_DELIVERY_CHUNK = env_int("PACING_DELIVERY_CHUNK", 500, minimum=1, maximum=10_000)
PACING_DELIVERY_PARALLEL = env_int("PACING_DELIVERY_PARALLEL", 8, minimum=1, maximum=64)
# A reallocation moves at least this much, and at most this share of the campaign budget per proposal.
PACING_REALLOCATION_MIN_USD = env_decimal("PACING_REALLOCATION_MIN_USD", "100", minimum="0", maximum="1000000000")
PACING_REALLOCATION_MAX_SHARE_PCT = env_decimal("PACING_REALLOCATION_MAX_SHARE_PCT", "30", minimum="1", maximum="100")
# A deal is not alerted on (nor reallocated from) for this long after its delivery starts: its flight start,
# or its booking if that came later. Sellers ramp up, and the first hours' figures swing wildly.
PACING_GRACE_HOURS = env_int("PACING_GRACE_HOURS", 24, minimum=0, maximum=24 * 30)
# An undecided proposal lapses after this long; after a decision the next proposal waits this long.
PACING_PROPOSAL_TTL_HOURS = env_int("PACING_PROPOSAL_TTL_HOURS", 48, minimum=1, maximum=24 * 90)
PACING_REALLOCATION_COOLDOWN_HOURS = env_int("PACING_REALLOCATION_COOLDOWN_HOURS", 24, minimum=0, maximum=24 * 90)
# Every snapshot is kept this long; older ones are thinned to the last of each day, dropped after the second.
PACING_SNAPSHOT_KEEP_ALL_HOURS = env_int("PACING_SNAPSHOT_KEEP_ALL_HOURS", 48, minimum=1, maximum=24 * 365)
PACING_SNAPSHOT_RETENTION_DAYS = env_int("PACING_SNAPSHOT_RETENTION_DAYS", 730, minimum=1, maximum=3650)

# --- Seller credentials and circuit breaker ---------------------------------------------------------------
# Fernet keys (urlsafe base64, 32 bytes) encrypting seller credentials at rest, comma-separated: the first
# encrypts, every one decrypts (rotation). Unset: derived from SECRET_KEY, which production refuses.
SELLER_CREDENTIALS_KEY = env_list("SELLER_CREDENTIALS_KEY")
_NEW_KEY_HINT = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
for _position, _key in enumerate(SELLER_CREDENTIALS_KEY, start=1):
    try:
        _key_ok = len(base64.urlsafe_b64decode(_key.encode("ascii"))) == 32
    except (binascii.Error, UnicodeEncodeError, ValueError):
        _key_ok = False
    if not _key_ok:
        # The value is a secret: name the variable and the key's position, never echo it.
        raise ImproperlyConfigured(
            f"Invalid value for SELLER_CREDENTIALS_KEY: key {_position} is not a urlsafe-base64 32-byte Fernet key "
            f"(generate one with: {_NEW_KEY_HINT})."
        )
if not SELLER_CREDENTIALS_KEY and ENVIRONMENT == "production":
    raise ImproperlyConfigured(
        "SELLER_CREDENTIALS_KEY must be set: ENVIRONMENT=production encrypts seller credentials with an explicit "
        f"key, not one derived from SECRET_KEY (generate one with: {_NEW_KEY_HINT})."
    )
# Consecutive transport failures (timeouts, connection errors, 5xx, invalid responses) that open a seller's
# breaker, and how long it stays open before a single trial call is let through.
SELLER_BREAKER_FAILURES = env_int("SELLER_BREAKER_FAILURES", 5, minimum=1, maximum=1000)
SELLER_BREAKER_COOLDOWN_SECONDS = env_int("SELLER_BREAKER_COOLDOWN_SECONDS", 60, minimum=1, maximum=86_400)

# --- AdCP sales agents (Seller.protocol = adcp) -------------------------------------------------------------
# Who buys: the brand and the operator (the agency or buyer platform) named in every AdCP order's account.
# AdCP sales agents to seed as sellers with protocol adcp (comma-separated base URLs; MCP at {url}/mcp), as
# SELLER_ENDPOINTS seeds the others. ``make run ADCP_SANDBOX_PORT=8020`` sets it to the AdCP sandbox.
ADCP_SELLER_ENDPOINTS = env_url_list("ADCP_SELLER_ENDPOINTS")
# Import the AdCP client in each worker's parent before its pool forks (shared by the children): on, off, or
# auto (on when an AdCP seller is enabled or seeded). See buyer/sellers/adcp_preload.py.
ADCP_PRELOAD = env_choice("ADCP_PRELOAD", "auto", ("auto", "on", "off"))
ADCP_BRAND_DOMAIN = env_str("ADCP_BRAND_DOMAIN", "buyer.example")
ADCP_OPERATOR_DOMAIN = env_str("ADCP_OPERATOR_DOMAIN", "")
# Where AdCP sellers reach this product (its public base URL, e.g. https://buyer.example.com): orders and budget
# changes then ask for signed task webhooks at {ADCP_WEBHOOK_URL}/webhooks/adcp/{seller id}; empty: beat polls alone.
ADCP_WEBHOOK_URL = (
    check_http_url("ADCP_WEBHOOK_URL", _webhook_url) if (_webhook_url := env_str("ADCP_WEBHOOK_URL", "")) else ""
)
# Orders a seller takes for review (a task submitted, working or input-required) are polled this often...
ADCP_TASK_POLL_SECONDS = env_int("ADCP_TASK_POLL_SECONDS", 30, minimum=1, maximum=3600)
# ...and fail the line (money released, the seller error on the job) when a task stays "working" longer than
# this (the spec's "working" is the seller processing, minutes at most)...
ADCP_WORKING_TIMEOUT_SECONDS = env_int("ADCP_WORKING_TIMEOUT_SECONDS", 900, minimum=10, maximum=86_400)
# ...or "submitted" / "input-required" (a person at the seller, or creatives it waits for) longer than this.
ADCP_REVIEW_TIMEOUT_HOURS = env_int("ADCP_REVIEW_TIMEOUT_HOURS", 72, minimum=1, maximum=24 * 30)

# Requests per minute per API key on the REST API and the MCP endpoint (0: no limit).
API_RATE_LIMIT_PER_MINUTE = env_int("API_RATE_LIMIT_PER_MINUTE", 600, minimum=0, maximum=1_000_000)

# --- Django ------------------------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "django_htmx",
    "template_partials",
    "ninja",
    "buyer.accounts",
    "buyer.events",
    "buyer.sellers",
    "buyer.apikeys",
    "buyer.llm",
    "buyer.health",
    "buyer.backups",
    "buyer.metrics",
    "campaigns",
    "pacing",
]

MIDDLEWARE = [
    "buyer.logs.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "buyer.middleware.BodySizeMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "buyer.accounts.middleware.UserTimeZoneMiddleware",
    # Text the database cannot store: the pages' addresses here, the API's everything (buyer.web's lean stack).
    "buyer.storable.StorableTextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "buyer.middleware.DomainErrorMiddleware",
]

ROOT_URLCONF = "buyer.urls"
CSRF_FAILURE_VIEW = "buyer.middleware.csrf_failure"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "campaigns:jobs"
LOGOUT_REDIRECT_URL = "accounts:login"
WSGI_APPLICATION = "buyer.wsgi.application"
ASGI_APPLICATION = "buyer.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "buyer.accounts.context_processors.dashboard",
            ],
            "builtins": ["buyer.templatetags.moments"],
        },
    },
]


def _database_config(url: str) -> dict:
    try:
        config = environ.Env.db_url_config(url)
    except (ImproperlyConfigured, KeyError, ValueError) as exc:
        raise ImproperlyConfigured(f"Invalid value for DATABASE_URL: {url!r} ({exc}).") from None
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = Path(config["NAME"])
        if str(name) != ":memory:" and not name.is_absolute():
            name = (BASE_DIR / name).resolve()
        config["NAME"] = str(name)
        # Web and worker share the file: WAL plus IMMEDIATE transactions avoid "database is locked".
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        config["TEST"] = {"NAME": str(VAR_DIR / f"test-{worker}.sqlite3")}
    elif engine in {"django.db.backends.postgresql", "django.db.backends.postgresql_psycopg2"}:
        config["ENGINE"] = "django.db.backends.postgresql"
        config["CONN_HEALTH_CHECKS"] = True
        # A database that does not answer is a quick error (a JSON 503), never a request held for half a minute.
        connect_timeout = env_int("DATABASE_CONNECT_TIMEOUT", 2, minimum=1, maximum=60)
        # Added to what the URL says (?sslmode=verify-full&sslrootcert=… stay), never in its place.
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", connect_timeout)
        if env_bool("DATABASE_POOL", True):
            # CONN_HEALTH_CHECKS makes the pool check a connection as it hands it out: one the database dropped
            # is never used.
            config["OPTIONS"]["pool"] = {
                "min_size": 1,
                "max_size": env_int("DATABASE_POOL_SIZE", 10, minimum=1),
                # How long a request waits for a connection; then it is answered 503.
                "timeout": float(connect_timeout),
                # Reconnection backs off (1 s, 2 s, 4 s, ...) and, past this, starts again at once on the next
                # request: after an outage the pool is back within seconds, however long the outage was.
                "reconnect_timeout": 3.0,
            }
        else:
            config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0)
    else:
        raise ImproperlyConfigured(
            f"Invalid value for DATABASE_URL: {url!r} (expected sqlite:///path or postgresql://...)."
        )
    return config


DATABASE_URL = env_str("DATABASE_URL", "sqlite:///./ad_buyer.db")
DATABASES = {"default": _database_config(DATABASE_URL)}
DATABASE_ENGINE = "postgresql" if DATABASES["default"]["ENGINE"].endswith("postgresql") else "sqlite"

# The web server (Granian, started by buyer.stack / make run): processes, and threads per process that run
# Django's views (sync: each waits on the database with the GIL released). Default: one process per core on
# PostgreSQL; one on SQLite (a single writer, and the legacy MCP SSE transport needs its stream's process).
WEB_WORKERS = env_int(
    "WEB_WORKERS", min(os.cpu_count() or 1, 8) if DATABASE_ENGINE == "postgresql" else 1, minimum=1, maximum=64
)
WEB_THREADS = env_int("WEB_THREADS", 8, minimum=1, maximum=256)
# Where ``python -m buyer.serve`` (the web process alone: containers, process managers) listens. ``make run``
# passes its PORT itself and always listens on 127.0.0.1; a container sets WEB_HOST=0.0.0.0.
WEB_HOST = env_str("WEB_HOST", "127.0.0.1")
PORT = env_int("PORT", 8001, minimum=1, maximum=65_535)
# The busiest API reads answered in the event loop, on a small asynchronous pool per web process (PostgreSQL).
WEB_FAST_READS = env_bool("WEB_FAST_READS", True)
WEB_FAST_READ_CONNECTIONS = env_int("WEB_FAST_READ_CONNECTIONS", 4, minimum=1, maximum=64)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Rate-limit counters: shared through Redis when there is one, per process otherwise.
    "ratelimit": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "buyer",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"}
    ),
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve static files straight from the finders, so `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = IS_DEVELOPMENT

if not IS_DEVELOPMENT:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Celery ------------------------------------------------------------------------------------------------
# Without REDIS_URL a real worker still runs, over kombu's SQLAlchemy transport on a SQLite file.
CELERY_EMBEDDED_BROKER_URL = f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
CELERY_BROKER_URL = REDIS_URL or env_str("CELERY_BROKER_URL", CELERY_EMBEDDED_BROKER_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How often a worker on the embedded broker (a SQLite file, which cannot push) looks for a new task: kombu's
# default of a second made each of a job's steps wait up to that long.
CELERY_EMBEDDED_POLL_SECONDS = float(env_decimal("CELERY_EMBEDDED_POLL_SECONDS", "0.1", minimum="0.01", maximum="5"))
# Seconds a Redis connection or command may take before it is an error (the broker; the rate-limit cache: 2 s).
REDIS_SOCKET_TIMEOUT_SECONDS = 10
# The longest hard time limit of a task other than the job steps (campaigns.tasks.refresh_deals); a test checks
# every registered task against the visibility timeout below.
LONGEST_TASK_SECONDS = 660
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Must exceed the longest task plus its hard time limit, or a long task is delivered twice.
    # A worker takes from the queues it consumes in the order ``-Q`` names them (the booking queue first),
    # not round robin: a burst's bookings and negotiations go before the plan steps queued behind them.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": max(JOB_STEP_LEASE_SECONDS * 2, LONGEST_TASK_SECONDS) + 600,
        "queue_order_strategy": "priority",
        # A Redis that accepts connections and never answers is an error in seconds, not a thread held forever.
        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
        "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "buyer")
# Pacing has its own queue, so reading delivery never waits behind booking steps (and the other way round).
CELERY_PACING_QUEUE = env_str("CELERY_PACING_QUEUE", "pacing")
# The steps that finish a job whose money is decided (negotiating, booking) have their own queue, consumed
# first, so a burst's bookings are not stuck behind every brief's plan and research.
CELERY_BOOKING_QUEUE = env_str("CELERY_BOOKING_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-booking")
CELERY_TASK_ROUTES = {
    "campaigns.tasks.job_book": {"queue": CELERY_BOOKING_QUEUE},
    "campaigns.tasks.job_negotiate": {"queue": CELERY_BOOKING_QUEUE},
    "campaigns.tasks.poll_seller_tasks": {"queue": CELERY_BOOKING_QUEUE},
    "pacing.tasks.*": {"queue": CELERY_PACING_QUEUE},
    "campaigns.tasks.refresh_deals": {"queue": CELERY_PACING_QUEUE},  # seller I/O, never behind booking steps
}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Celery's scheduler, noting beat's heartbeat as it ticks (readiness, GET /health/ready).
CELERY_BEAT_SCHEDULER = "buyer.health.heartbeat:HeartbeatScheduler"
# Workers (for each queue they consume) and beat write a heartbeat this often; readiness fails for one older than
# HEALTH_HEARTBEAT_STALE_SECONDS.
HEALTH_HEARTBEAT_SECONDS = env_int("HEALTH_HEARTBEAT_SECONDS", 10, minimum=1, maximum=3600)
HEALTH_HEARTBEAT_STALE_SECONDS = env_int(
    "HEALTH_HEARTBEAT_STALE_SECONDS", 3 * HEALTH_HEARTBEAT_SECONDS, minimum=2, maximum=86_400
)
CELERY_BEAT_SCHEDULE = {
    "sweep-stalled-jobs": {
        "task": "campaigns.tasks.sweep_stalled_jobs",
        "schedule": float(JOB_SWEEP_INTERVAL_SECONDS),
    },
    "pacing-read-delivery": {
        "task": "pacing.tasks.read_delivery",
        "schedule": float(PACING_DELIVERY_INTERVAL_SECONDS),
    },
    "pacing-take-snapshots": {
        "task": "pacing.tasks.take_snapshots",
        "schedule": float(PACING_SNAPSHOT_INTERVAL_SECONDS),
    },
    "pacing-thin-snapshots": {"task": "pacing.tasks.thin_snapshots", "schedule": 6 * 3600.0},
    "deals-refresh": {"task": "campaigns.tasks.refresh_deals", "schedule": 3600.0},
    "seller-tasks-poll": {"task": "campaigns.tasks.poll_seller_tasks", "schedule": float(ADCP_TASK_POLL_SECONDS)},
    # Budget cuts of approved reallocations still due at AdCP sellers (retries, changes under review).
    "budget-cuts-apply": {"task": "pacing.tasks.apply_budget_cuts", "schedule": float(ADCP_TASK_POLL_SECONDS)},
    # The job list reads its total from per-status counts; folding keeps them a few rows (PostgreSQL).
    "jobs-fold-counts": {"task": "campaigns.tasks.fold_job_counts", "schedule": 10.0},
}

# --- Logging -----------------------------------------------------------------------------------------------
# Every line carries its request id, job, seller and agent role, and is redacted of secrets (buyer.logs).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "buyer.logs.ContextFilter"}},
    "formatters": {
        "text": {"()": "buyer.logs.TextFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "buyer.logs.JsonLineFormatter", "format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # The MCP SDK logs whole messages at DEBUG, which could include what a seller echoes back.
    "loggers": {name: {"level": "WARNING"} for name in ("httpx", "httpx2", "httpcore", "mcp")},
}

VERSION = buyer.__version__


# --- Settings that must fit together ----------------------------------------------------------------------
# Each value can be valid alone and the combination still break every job; start-up refuses those, naming them.
# The worst one seller call can take: every attempt times out, and the seller asks to wait (Retry-After, capped
# at 10 s by the client) between attempts.
SELLER_CALL_WORST_SECONDS = SELLER_TIMEOUT_SECONDS * (SELLER_MAX_RETRIES + 1) + 10.0 * SELLER_MAX_RETRIES
# A job step's soft time limit is this share of its lease (campaigns.tasks).
JOB_STEP_SOFT_LIMIT_SHARE = 0.8


def _settings_that_conflict() -> list[str]:
    problems = []
    step_limit = JOB_STEP_LEASE_SECONDS * JOB_STEP_SOFT_LIMIT_SHARE
    if step_limit < SELLER_CALL_WORST_SECONDS:
        needed = int(-(-SELLER_CALL_WORST_SECONDS // JOB_STEP_SOFT_LIMIT_SHARE))
        problems.append(
            f"JOB_STEP_LEASE_SECONDS={JOB_STEP_LEASE_SECONDS} gives a job step {step_limit:g} s, less than one "
            f"seller call may take ({SELLER_CALL_WORST_SECONDS:g} s: SELLER_TIMEOUT_SECONDS={SELLER_TIMEOUT_SECONDS:g} "
            f"for each of SELLER_MAX_RETRIES={SELLER_MAX_RETRIES} + 1 attempts, and up to 10 s between them); every "
            f"job would fail. Set JOB_STEP_LEASE_SECONDS to at least {needed}, or lower SELLER_TIMEOUT_SECONDS or "
            "SELLER_MAX_RETRIES."
        )
    if JOB_SWEEP_INTERVAL_SECONDS * 10 > APPROVAL_TTL_HOURS * 3600:
        problems.append(
            f"JOB_SWEEP_INTERVAL_SECONDS={JOB_SWEEP_INTERVAL_SECONDS} is more than a tenth of APPROVAL_TTL_HOURS="
            f"{APPROVAL_TTL_HOURS}: the sweeper cancels expired approvals, so one could stay approvable that much "
            "past its expiry. Sweep more often or give approvals longer."
        )
    if JOB_STALL_SECONDS < JOB_SWEEP_INTERVAL_SECONDS:
        problems.append(
            f"JOB_STALL_SECONDS={JOB_STALL_SECONDS} is shorter than JOB_SWEEP_INTERVAL_SECONDS="
            f"{JOB_SWEEP_INTERVAL_SECONDS}: a stalled job is only seen at the next sweep. Make the stall at least "
            "one sweep interval."
        )
    if HEALTH_HEARTBEAT_STALE_SECONDS < 2 * HEALTH_HEARTBEAT_SECONDS:
        problems.append(
            f"HEALTH_HEARTBEAT_STALE_SECONDS={HEALTH_HEARTBEAT_STALE_SECONDS} is less than two "
            f"HEALTH_HEARTBEAT_SECONDS={HEALTH_HEARTBEAT_SECONDS}: readiness would fail between two heartbeats."
        )
    return problems


if _problems := _settings_that_conflict():
    raise ImproperlyConfigured("Settings that do not fit together:\n- " + "\n- ".join(_problems))
