"""The container files: the image is slim, runs as a user, installs from the lock file the way CI does and is
healthy when /health answers; compose runs web, worker, beat, PostgreSQL and Redis with healthchecks, named
volumes and start-up ordered on health. No container engine runs here: CI validates compose.yaml with
``docker-compose config`` (``.ci/run``), and these tests read both files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


def resolved(tmp_path: Path, env_file: str, *args: str) -> dict:
    """compose.yaml as docker compose resolves it with ``env_file`` as its .env."""
    import shutil
    import subprocess

    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose; CI installs it)")
    (tmp_path / ".env").write_text(env_file)
    command = ["docker-compose", "-f", str(REPO / "compose.yaml"), "--env-file", str(tmp_path / ".env"), *args]
    out = subprocess.run(
        [*command, "config"], capture_output=True, text=True, timeout=60, check=True, env={"PATH": "/usr/bin:/bin"}
    )
    return yaml.safe_load(out.stdout)


def test_the_containers_run_in_production_mode_with_the_env_the_readme_tells_you_to_copy(tmp_path):
    example = (REPO / ".env.example").read_text()
    assert re.search(r"^ENVIRONMENT=development$", example, re.M)  # what make run wants
    compose = resolved(tmp_path, example + "\nSECRET_KEY=s\nSELLER_CREDENTIALS_KEY=k\n")
    for name in ("web", "worker", "beat", "migrate"):
        environment = compose["services"][name]["environment"]
        assert environment["ENVIRONMENT"] == "production", name
        assert environment["DATABASE_URL"].startswith("postgresql://") and environment["REDIS_URL"].startswith(
            "redis://"
        )
    assert compose["services"]["sandbox"]["profiles"] == ["sandbox"]  # started only with --profile sandbox
    staging = resolved(tmp_path, example + "\nSECRET_KEY=s\nSELLER_CREDENTIALS_KEY=k\nCOMPOSE_ENVIRONMENT=staging\n")
    assert staging["services"]["web"]["environment"]["ENVIRONMENT"] == "staging"


def test_the_sandbox_seller_runs_with_its_profile(tmp_path):
    compose = resolved(tmp_path, "SECRET_KEY=s\nSELLER_CREDENTIALS_KEY=k\n", "--profile", "sandbox")
    sandbox = compose["services"]["sandbox"]
    assert sandbox["command"][:3] == ["python", "-m", "buyer.sandbox"] and "8010" in sandbox["command"]
    assert "ports" not in sandbox  # reachable from the other containers only
