"""Bad configuration stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from buyer import env

REPO = Path(__file__).resolve().parents[2]


def start_up(**variables: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    environment.update(variables, BUYER_ENV_FILE=str(REPO / "does-not-exist.env"))
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_TEMPERATURE", "warm"),
        ("LLM_MAX_TOKENS", "-1"),
        ("CREW_MAX_ITERATIONS", "many"),
        ("CREW_VERBOSE", "perhaps"),
        ("LOG_LEVEL", "LOUD"),
        ("ENVIRONMENT", "moon"),
        ("SELLER_ENDPOINTS", "ftp://seller.example"),
        ("CORS_ALLOWED_ORIGINS", "not a url"),
        ("DATABASE_URL", "mysql2://nope"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("JOB_MAX_ATTEMPTS", "0"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(name, value):
    result = start_up(**{name: value})
    assert result.returncode != 0
    assert name in result.stderr
    assert "Traceback" not in result.stderr.splitlines()[-1]


def test_production_without_a_secret_key_refuses_to_start():
    result = start_up(ENVIRONMENT="production", SECRET_KEY="")
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_good_values_start(tmp_path):
    result = start_up(
        LLM_TEMPERATURE="0.1",
        SELLER_ENDPOINTS="http://127.0.0.1:9001, http://127.0.0.1:9002/",
        DATABASE_URL=f"sqlite:///{tmp_path}/x.db",
        CREW_VERBOSE="false",
    )
    assert result.returncode == 0, result.stderr


def test_env_helpers_parse_and_dedupe(monkeypatch):
    monkeypatch.setenv("X_LIST", "http://a.example/, http://a.example ,http://b.example")
    assert env.env_url_list("X_LIST") == ["http://a.example", "http://b.example"]
    monkeypatch.setenv("X_BOOL", "Yes")
    assert env.env_bool("X_BOOL", False) is True
    monkeypatch.setenv("X_CHOICE", "warning")
    assert env.env_choice("X_CHOICE", "INFO", ["INFO", "WARNING"]) == "WARNING"


def test_env_example_documents_every_variable_the_settings_read():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    read = set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', (root / "buyer" / "settings.py").read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (root / ".env.example").read_text(), re.MULTILINE))
    internal = {"DJANGO_DEBUG", "BUYER_VAR_DIR", "BUYER_ENV_FILE"}
    assert read - documented - internal == set()


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"JOB_STEP_LEASE_SECONDS": "5"}, ["JOB_STEP_LEASE_SECONDS=5", "SELLER_TIMEOUT_SECONDS", "at least 63"]),
        (
            {"JOB_STEP_LEASE_SECONDS": "10", "SELLER_TIMEOUT_SECONDS": "10", "SELLER_MAX_RETRIES": "0"},
            ["JOB_STEP_LEASE_SECONDS=10", "SELLER_MAX_RETRIES=0", "at least 13"],
        ),
        ({"APPROVAL_TTL_HOURS": "1", "JOB_SWEEP_INTERVAL_SECONDS": "600"}, ["JOB_SWEEP_INTERVAL_SECONDS=600"]),
        ({"JOB_STALL_SECONDS": "20", "JOB_SWEEP_INTERVAL_SECONDS": "60"}, ["JOB_STALL_SECONDS=20"]),
        ({"HEALTH_HEARTBEAT_SECONDS": "20", "HEALTH_HEARTBEAT_STALE_SECONDS": "30"}, ["HEALTH_HEARTBEAT_STALE"]),
    ],
)
def test_settings_that_do_not_fit_together_stop_start_up_naming_them(variables, named):
    result = start_up(**variables)
    assert result.returncode != 0 and "Settings that do not fit together" in result.stderr
    for words in named:
        assert words in result.stderr, (words, result.stderr[-800:])


def test_a_lease_that_fits_the_seller_calls_starts():
    assert start_up(JOB_STEP_LEASE_SECONDS="15", SELLER_TIMEOUT_SECONDS="3", SELLER_MAX_RETRIES="0").returncode == 0


def test_no_task_outlives_the_brokers_visibility_timeout(settings):
    """On Redis a task still running past the visibility timeout is delivered a second time."""
    from buyer.celery import app

    visibility = max(settings.JOB_STEP_LEASE_SECONDS * 2, settings.LONGEST_TASK_SECONDS) + 600
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None)
    if options is not None:  # Redis (CI): the option itself
        visibility = options["visibility_timeout"]
    app.loader.import_default_modules()
    limits = {name: task.time_limit for name, task in app.tasks.items() if getattr(task, "time_limit", None)}
    assert limits and "campaigns.tasks.refresh_deals" in limits
    assert max(limits.values()) < visibility, limits


def test_the_database_urls_own_options_are_kept_beside_the_connect_timeout():
    from buyer.settings import _database_config

    config = _database_config("postgresql://u@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=/etc/ca.pem")
    assert config["OPTIONS"]["sslmode"] == "verify-full" and config["OPTIONS"]["sslrootcert"] == "/etc/ca.pem"
    assert config["OPTIONS"]["connect_timeout"] == 2 and "pool" in config["OPTIONS"]
