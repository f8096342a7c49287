"""``dynaseal admin``: the operator's daily tasks, driven against a live gateway."""

from __future__ import annotations

import json
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dynaseal.cli.main import app
from support.servers import ServerThread
from support.tenants import (
    ADMIN_PASSWORD,
    DEMO_MODEL,
    TENANT_PASSWORD,
    bearer,
    create_tenant,
    event_of,
    login,
    mint,
)

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def admin(gateway: ServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs ``dynaseal admin ...`` with its config directory in tmp_path."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("DYNASEAL_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("DYNASEAL_GATEWAY_URL", raising=False)
    runner = CliRunner()

    def run(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> Any:
        result = runner.invoke(app, ["admin", *args], env=env, terminal_width=250)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    run("--gateway-url", gateway.url, "login", "--password", ADMIN_PASSWORD)
    return run


def chat(gateway: ServerThread, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=bearer(key),
        json={"model": DEMO_MODEL, "messages": MESSAGES},
    )


def test_login_keeps_the_tokens_for_the_owner_only(admin: Any, tmp_path: Path) -> None:
    stored = tmp_path / "config" / "dynaseal" / "admin.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert json.loads(stored.read_text())["access_token"]
    admin("logout")
    assert not stored.exists()
    refused = admin("tenants", "list", ok=False)
    assert refused.exit_code == 2 and "dynaseal admin login" in refused.output


def test_tenants_are_created_listed_disabled_and_enabled(admin: Any, gateway: ServerThread) -> None:
    name = f"shop-{uuid.uuid4().hex[:6]}"
    created = json.loads(
        admin("tenants", "create", name, "--password", TENANT_PASSWORD, "--json").stdout
    )
    assert created["webhook_secret"].startswith("whsec_")
    assert name in admin("tenants", "list").stdout
    assert [t["id"] for t in json.loads(admin("tenants", "list", "--json").stdout)].count(
        created["id"]
    ) == 1
    env = dict(
        line.split("=", 1)
        for line in admin("keys", "create", "--tenant", name, "--backend-env").stdout.split()
    )
    assert env["LLM_USER_ID"] == created["id"]
    key = mint(secret=env["LLM_KEY"], kid=env["LLM_KEY_ID"], tenant_id=created["id"])
    assert chat(gateway, key).status_code == 200

    assert "disabled" in admin("tenants", "disable", name).stdout
    assert chat(gateway, key).status_code == 401
    no_login = httpx.post(
        gateway.url + "/v1/user/login", data={"username": name, "password": TENANT_PASSWORD}
    )
    assert no_login.status_code == 403
    assert json.loads(admin("tenants", "show", name, "--json").stdout)["disabled_at"]

    admin("tenants", "enable", name)
    assert chat(gateway, key).status_code == 200
    login(gateway.url, name, TENANT_PASSWORD)


def test_keys_are_listed_retired_and_revoked(admin: Any, gateway: ServerThread) -> None:
    tenant = create_tenant(gateway.url)
    made = json.loads(
        admin("keys", "create", "--tenant", tenant.id, "--label", "main", "--json").stdout
    )
    key = mint(secret=made["secret"], kid=made["kid"], tenant_id=tenant.id)
    assert made["kid"] in admin("keys", "list", "--tenant", tenant.username).stdout
    assert "retires at" in admin("keys", "retire", "--tenant", tenant.id, made["kid"]).stdout
    assert chat(gateway, key).status_code == 200  # within its grace period
    admin("keys", "revoke", "--tenant", tenant.id, made["kid"])
    assert chat(gateway, key).status_code == 401
    (listed,) = json.loads(admin("keys", "list", "--tenant", tenant.id, "--json").stdout)
    assert listed["revoked_at"] and "secret" not in listed


def test_revocations_and_usage(admin: Any, gateway: ServerThread) -> None:
    tenant = create_tenant(gateway.url, with_api_key=True)
    # The tenant's own price for the model: 11 prompt and 8 generated tokens cost
    # 0.00001177 USD.
    priced = httpx.patch(
        gateway.url + "/v1/user/me",
        headers=tenant.auth,
        json={"model_prices": {DEMO_MODEL: {"input": "0.27", "output": "1.10"}}},
    )
    assert priced.status_code == 200, priced.text
    first, second = tenant.key(), tenant.key()
    assert chat(gateway, first).status_code == 200
    ledger = json.loads(admin("usage", "--tenant", tenant.username, "--json").stdout)
    assert ledger["totals"]["requests"] == 1 and ledger["data"][0]["event_id"] == event_of(first)
    printed = admin("usage", "--tenant", tenant.id).stdout
    assert "1 requests, 19 tokens (11 prompt + 8 completion), $0.00001177; " in printed
    assert "tenant total 19 tokens, $0.00001177" in printed
    (row,) = [line for line in printed.splitlines() if event_of(first) in line]
    assert "$0.00001177" in row.split()
    listed = admin("tenants", "list").stdout
    (row,) = [line for line in listed.splitlines() if tenant.id in line]
    assert "$0.00001177" in row.split()
    assert "total_cost        $0.00001177" in admin("tenants", "show", tenant.id).stdout

    admin("revoke", "--tenant", tenant.id, "--event-id", event_of(first))
    assert chat(gateway, first).status_code == 401
    assert chat(gateway, second).status_code == 200

    later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S%z")
    assert "is refused" in admin("revoke", "--tenant", tenant.id, "--before", later).stdout
    assert chat(gateway, second).status_code == 401
    both = admin("revoke", "--tenant", tenant.id, "--all", "--event-id", "x", ok=False)
    assert both.exit_code == 2


def test_unknown_tenants_and_tenants_themselves_are_refused(
    admin: Any, gateway: ServerThread
) -> None:
    missing = admin("keys", "list", "--tenant", "no-such-tenant", ok=False)
    assert missing.exit_code == 1 and "404" in missing.output
    other = create_tenant(gateway.url)
    intruder = create_tenant(gateway.url)
    for method, path in [
        ("GET", "/v1/admin/tenants"),
        ("GET", f"/v1/admin/tenants/{other.id}/api-keys"),
        ("POST", f"/v1/admin/tenants/{other.id}/disable"),
        ("GET", f"/v1/admin/tenants/{other.id}/usage"),
    ]:
        response = httpx.request(method, gateway.url + path, headers=intruder.auth)
        assert response.status_code == 403, (path, response.text)
    admin_account = admin("tenants", "show", "admin", ok=False)
    assert admin_account.exit_code == 1  # the admin account is not a tenant to act on


def test_a_token_from_the_environment_and_renewal_of_an_expired_one(
    admin: Any, gateway: ServerThread, tmp_path: Path
) -> None:
    token = login(gateway.url, "admin", ADMIN_PASSWORD)["Authorization"].split()[1]
    admin("logout")
    by_env = admin(
        "--gateway-url",
        gateway.url,
        "tenants",
        "list",
        "--json",
        env={"DYNASEAL_ADMIN_TOKEN": token},
    )
    assert isinstance(json.loads(by_env.stdout), list)

    admin("--gateway-url", gateway.url, "login", "--password", ADMIN_PASSWORD)
    stored = tmp_path / "config" / "dynaseal" / "admin.json"
    credentials = json.loads(stored.read_text())
    stored.write_text(json.dumps({**credentials, "access_token": "expired"}))
    admin("tenants", "list")
    assert json.loads(stored.read_text())["access_token"] != "expired"
