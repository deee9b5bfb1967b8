"""The container files: the image is slim, runs as a user, installs from the lock file the way CI does and is
healthy when /health answers; compose runs web, worker, beat, PostgreSQL and Redis with healthchecks, named
volumes and start-up ordered on health. No container engine runs here: CI validates compose.yaml with
``docker-compose config`` (``.ci/run``), and these tests read both files."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_the_image_is_slim_non_root_installed_like_ci_and_checks_health():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert "make install" in dockerfile and "make install" in (REPO / ".ci" / "run").read_text()
    assert re.search(r"^HEALTHCHECK .*\n?.*/health", dockerfile, re.M)
    assert 'CMD ["python", "-m", "buyer.serve"]' in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "var"} <= set(ignored)


def test_compose_runs_every_process_with_healthchecks_volumes_and_ordered_start_up():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "migrate"} <= set(services)
    for name in ("web", "worker", "beat", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("web", "worker", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert set(compose["volumes"]) == {"postgres-data", "redis-data", "buyer-var"}
    assert services["beat"]["command"][:4] == ["celery", "-A", "buyer", "beat"]
    assert services["web"]["ports"] == ["127.0.0.1:${PORT:-8001}:8001"]  # published on the host's loopback only
    assert "${SECRET_KEY:?" in (REPO / "compose.yaml").read_text()  # refuses to start without a secret key
