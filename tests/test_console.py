"""The gateway's console over HTTP: logging in and out, the session cookie, CSRF, the
security headers, secrets shown once, one tenant never seeing another's data, the
refusals it charts, what requests cost on every page that shows usage, and the
operator's disabling of a tenant. (The same pages in a real browser:
test_console_browser.py.)"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import dynaseal.webui
from dynaseal.webui.headers import CONTENT_SECURITY_POLICY
from support.callbacks import CallbackSink
from support.console import ConsoleClient, console_gateway, csrf_of
from support.servers import ServerThread
from support.tenants import (
    ADMIN_PASSWORD,
    DEMO_MODEL,
    TENANT_PASSWORD,
    TenantHandle,
    bearer,
    create_tenant,
    event_of,
    mint,
)
from support.upstream import FakeUpstream
from support.waiting import eventually

MESSAGES = [{"role": "user", "content": "Hello"}]
#: What one answer of the fake upstream costs at the console gateway's PRICES.
ANSWER_COST = "0.00001177"
PAGES = ["/", "/keys", "/events", "/ledger", "/callbacks", "/limits"]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[ServerThread]:
    with console_gateway(tmp_path_factory.mktemp("console"), upstream) as server:
        yield server


@pytest.fixture
def tenant(gateway: ServerThread) -> TenantHandle:
    return create_tenant(gateway.url, with_api_key=True)


@pytest.fixture
def console(gateway: ServerThread) -> Iterator[Callable[[str, str], ConsoleClient]]:
    """Logs a fresh console client in (username, password)."""
    clients: list[ConsoleClient] = []

    def open_console(username: str, password: str = TENANT_PASSWORD) -> ConsoleClient:
        client = ConsoleClient(gateway.url).logged_in(username, password)
        clients.append(client)
        return client

    yield open_console
    for client in clients:
        client.close()


def chat(gateway: ServerThread, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        headers=bearer(key),
        json={"model": DEMO_MODEL, "messages": MESSAGES, **body},
        timeout=10,
    )


def test_pages_send_a_stranger_to_the_login_page(gateway: ServerThread) -> None:
    for path in [*PAGES, "/admin", "/ledger.csv"]:
        response = httpx.get(gateway.url + "/console" + path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"
    htmx = httpx.get(gateway.url + "/console/ledger", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"] == "/console/login"
    forged = httpx.get(gateway.url + "/console/", cookies={"dynaseal_gateway_console": "x" * 43})
    assert forged.status_code == 303


def test_login_cookie_and_security_headers(gateway: ServerThread, tenant: TenantHandle) -> None:
    client = ConsoleClient(gateway.url)
    login_page = client.get("/login")
    assert login_page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    response = client.post("/login", {"username": tenant.username, "password": TENANT_PASSWORD})
    assert response.status_code == 303 and response.headers["location"] == "/console/"
    cookie = next(
        c
        for c in response.headers.get_list("set-cookie")
        if c.startswith("dynaseal_gateway_console=")
    )
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/console"} <= flags
    assert "secure" not in flags  # plain http on loopback: a Secure cookie would be dropped
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"
        assert "<script>" not in page.text and " style=" not in page.text  # nothing inline
    script = client.get("/static/htmx.min.js")
    assert script.status_code == 200 and "htmx" in script.text
    assert script.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_the_cookies_are_secure_behind_https(gateway: ServerThread, tenant: TenantHandle) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1: a TLS proxy in front of the gateway.
    https = {"X-Forwarded-Proto": "https"}
    form = httpx.get(gateway.url + "/console/login", headers=https)
    login_cookie = form.headers["set-cookie"]
    assert login_cookie.startswith("dynaseal_gateway_console_login=")
    assert "secure" in login_cookie.lower()
    token = csrf_of(form.text)
    response = httpx.post(
        gateway.url + "/console/login",
        data={"username": tenant.username, "password": TENANT_PASSWORD, "csrf_token": token},
        headers={**https, "Cookie": f"dynaseal_gateway_console_login={token}"},
    )
    assert response.status_code == 303
    session = next(
        c
        for c in response.headers.get_list("set-cookie")
        if c.startswith("dynaseal_gateway_console=")
    )
    assert "secure" in session.lower()


def test_every_form_needs_its_session_csrf_token(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    own = console(tenant.username)
    other = console(create_tenant(gateway.url).username)
    keys_before = httpx.get(gateway.url + "/v1/api-keys", headers=tenant.auth).json()
    for token in ["", "0" * 64, csrf_of(other.page)]:
        refused = own.http.post("/keys", data={"csrf_token": token, "label": "sneaky"})
        assert refused.status_code == 403, token
    htmx_header = own.http.post("/keys", headers={"X-CSRF-Token": csrf_of(other.page)})
    assert htmx_header.status_code == 403
    assert httpx.get(gateway.url + "/v1/api-keys", headers=tenant.auth).json() == keys_before
    # The login form has its own token, in a cookie and in the form (double submit).
    stranger = httpx.post(
        gateway.url + "/console/login",
        data={"username": tenant.username, "password": TENANT_PASSWORD, "csrf_token": "x"},
    )
    assert stranger.status_code == 403 and "dynaseal_gateway_console=" not in str(stranger.headers)


def test_logout_ends_the_session_everywhere(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    client = console(tenant.username)
    session = client.http.cookies["dynaseal_gateway_console"]
    out = client.post("/logout")
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    stolen = httpx.get(gateway.url + "/console/", cookies={"dynaseal_gateway_console": session})
    assert stolen.status_code == 303 and stolen.headers["location"] == "/console/login"


def test_the_login_throttle_applies(gateway: ServerThread) -> None:
    victim = create_tenant(gateway.url)
    client = ConsoleClient(gateway.url)
    for _ in range(5):  # LOGIN_FAILURES_PER_ACCOUNT
        wrong = client.login(victim.username, "not-the-password")
        assert wrong.status_code == 401 and "Incorrect username or password" in wrong.text
    throttled = client.login(victim.username, TENANT_PASSWORD)
    assert throttled.status_code == 429
    assert "Too many failed logins" in throttled.text and int(throttled.headers["retry-after"]) > 0
    # The API's login is the same throttle.
    api = httpx.post(
        gateway.url + "/v1/user/login",
        data={"username": victim.username, "password": TENANT_PASSWORD},
    )
    assert api.status_code == 429


def test_an_hs256_secret_is_shown_once(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    client = console(tenant.username)
    created = client.post("/keys", {"label": "from the console", "algorithm": "HS256"})
    assert created.status_code == 200
    secret = re.search(r'<pre id="new-secret" class="mono">([^<]+)</pre>', created.text).group(1)
    kid = re.search(r"LLM_KEY_ID=(\S+)", created.text).group(1)
    assert f"LLM_USER_ID={tenant.id}" in created.text and f"LLM_KEY={secret}" in created.text
    assert created.headers["cache-control"] == "no-store"
    assert 'hx-history="false"' in created.text  # htmx keeps no copy of this page
    # The secret signs keys the gateway accepts ...
    key = tenant.key_with({"secret": secret, "kid": kid})
    assert chat(gateway, key).status_code == 200
    # ... and is never shown again, on the page or by the API.
    assert secret not in client.get("/keys").text
    assert secret not in httpx.get(gateway.url + "/v1/api-keys", headers=tenant.auth).text
    # A bad public key is an error on the page, not a 500.
    bad = client.post("/keys", {"algorithm": "EdDSA", "public_key": "not a key"})
    assert bad.status_code == 400 and "public_key" in bad.text


def test_one_tenant_never_sees_another(
    gateway: ServerThread, sink: CallbackSink, console: Callable[..., ConsoleClient]
) -> None:
    alice = create_tenant(gateway.url, callback_url=sink.url, with_api_key=True)  # type: ignore[attr-defined]
    bob = create_tenant(gateway.url, callback_url=sink.url, with_api_key=True)  # type: ignore[attr-defined]
    alice_key, bob_key = alice.key(sub="alice-user"), bob.key(sub="bob-user")
    assert chat(gateway, alice_key).status_code == 200
    assert chat(gateway, bob_key, model="not-allowed").status_code == 403
    assert chat(gateway, bob_key).status_code == 200
    bob_event = event_of(bob_key)
    assert eventually(lambda: httpx.get(gateway.url + "/v1/usage", headers=bob.auth).json()["data"])
    bob_delivery = eventually(
        lambda: httpx.get(gateway.url + "/v1/deliveries", headers=bob.auth).json()["data"]
    )[0]["id"]
    as_alice = console(alice.username)
    for path in [*PAGES, "/?range=1h", "/ledger?range=", "/ledger.csv?range="]:
        text = as_alice.get(path).text
        for secret in ("bob-user", bob_event, bob_delivery, bob.username):
            assert secret not in text, (path, secret)
    searched = as_alice.get("/events", params={"event_id": bob_event}).text
    assert "No dynamic key used with this event id" in searched and "data-event=" not in searched
    searched = as_alice.get("/ledger", params={"event_id": bob_event, "range": ""}).text
    assert "No requests match" in searched
    assert "alice-user" in as_alice.get("/ledger").text
    # Another tenant's delivery, key and the operator's page are out of reach.
    as_alice.get("/callbacks")
    assert as_alice.post(f"/callbacks/{bob_delivery}/resend").status_code == 404
    assert as_alice.post(f"/keys/{bob.api_key['kid']}/revoke").status_code == 404
    assert as_alice.get("/admin").status_code == 403
    assert chat(gateway, bob_key).status_code == 200  # bob's key still works


def test_refusals_are_counted_per_tenant_and_reason(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    assert chat(gateway, tenant.key(), model="gpt-4o").status_code == 403
    assert chat(gateway, tenant.key(max_tokens=5), max_tokens=50).status_code == 429
    forged_for_tenant = tenant.key_with({"secret": "x" * 32, "kid": tenant.api_key["kid"]})
    assert chat(gateway, forged_for_tenant).status_code == 401
    forged_tenant = mint(secret="x" * 32, tenant_id="f" * 24)
    assert chat(gateway, forged_tenant).status_code == 401
    client = console(tenant.username)

    def counts() -> dict[str, int]:
        page = client.get("/?range=1h").text
        found = re.findall(
            r'data-reason="(\w+)">\s*<td>[^<]*</td>\s*<td class="num" data-count="(\d+)"', page
        )
        return {reason: int(n) for reason, n in found}

    seen = eventually(lambda: (c := counts())["model"] and c["budget"] and c["invalid_key"] and c)
    assert seen == {**dict.fromkeys(seen, 0), "model": 1, "budget": 1, "invalid_key": 1}
    # The key naming no tenant is the operator's to see.
    admin = console("admin", ADMIN_PASSWORD)
    unknown = admin.get("/admin").text
    assert re.search(
        r'data-reason="invalid_key"><td>Invalid key</td><td class="num">[1-9]', unknown
    )


def test_the_operator_disables_and_enables_a_tenant(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    key = tenant.key()
    assert chat(gateway, key).status_code == 200
    tenant_session = console(tenant.username)
    admin = console("admin", ADMIN_PASSWORD)
    admin.get("/admin")
    assert admin.post(f"/admin/tenants/{tenant.id}/disable").status_code == 303
    refused = chat(gateway, key)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    # A disabled tenant cannot log in, and a session it had open ends.
    assert tenant_session.get("/").status_code == 303
    refused_login = ConsoleClient(gateway.url).login(tenant.username, TENANT_PASSWORD)
    assert "This tenant is disabled" in refused_login.text
    admin.get("/admin")
    assert admin.post(f"/admin/tenants/{tenant.id}/enable").status_code == 303
    assert chat(gateway, key).status_code == 200
    # The same switch in the API, for the admin only.
    assert (
        httpx.post(
            gateway.url + f"/v1/admin/tenants/{tenant.id}/disable", headers=tenant.auth
        ).status_code
        == 403
    )
    admin_auth = _admin_auth(gateway)
    off = httpx.post(gateway.url + f"/v1/admin/tenants/{tenant.id}/disable", headers=admin_auth)
    assert off.status_code == 200 and off.json()["disabled_at"]
    assert chat(gateway, key).status_code == 401
    on = httpx.post(gateway.url + f"/v1/admin/tenants/{tenant.id}/enable", headers=admin_auth)
    assert on.status_code == 200 and on.json()["disabled_at"] is None
    assert chat(gateway, key).status_code == 200


def _admin_auth(gateway: ServerThread) -> dict[str, str]:
    token = httpx.post(
        gateway.url + "/v1/user/login", data={"username": "admin", "password": ADMIN_PASSWORD}
    ).json()["access_token"]
    return bearer(token)


def test_the_ledger_filters_and_exports_csv(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    key = tenant.key(sub="=HYPERLINK(1)", model=[DEMO_MODEL, "other-model"])
    for model in (DEMO_MODEL, DEMO_MODEL, "other-model"):
        assert chat(gateway, key, model=model).status_code == 200
    client = console(tenant.username)
    page = client.get("/ledger", params={"model": "other-model"}).text
    assert re.search(r'data-total="requests">1<', page)
    page = client.get("/ledger", params={"status": "completed"}).text
    assert re.search(r'data-total="requests">3<', page)
    exported = client.get("/ledger.csv", params={"model": DEMO_MODEL})
    assert exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 2 and {r["model"] for r in rows} == {DEMO_MODEL}
    assert rows[0]["sub"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert int(rows[0]["total_tokens"]) == int(rows[0]["prompt_tokens"]) + int(
        rows[0]["completion_tokens"]
    )
    # Cost: exact in the CSV, written as USD on the page; empty for the unpriced model.
    assert [r["cost_usd"] for r in rows] == [ANSWER_COST, ANSWER_COST]
    unpriced = list(csv.DictReader(io.StringIO(client.get("/ledger.csv").text)))
    assert sorted(r["cost_usd"] for r in unpriced) == ["", ANSWER_COST, ANSWER_COST]
    page = client.get("/ledger").text
    assert sorted(re.findall(r'data-column="cost_usd">([^<]*)<', page)) == [
        "$0.00001177",
        "$0.00001177",
        "—",
    ]
    assert re.search(r'data-total="cost">\$0\.00002354<', page)
    page = client.get("/ledger", params={"model": "other-model"}).text
    assert re.search(r'data-total="cost">\$0\.00<', page)


def test_cost_is_shown_wherever_usage_is(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    key = tenant.key(sub="spender")
    for _ in range(3):
        assert chat(gateway, key).status_code == 200
    three = "$0.00003531"  # three answers of 0.00001177 USD
    client = console(tenant.username)
    overview = client.get("/?range=1h").text
    chart = re.search(r'<figure class="chart" id="chart-cost">.*?</figure>', overview, re.S)
    assert re.search(r'data-total="cost">\$0\.00003531<', chart.group(0))
    # Each bar says its minute's cost (the three may straddle a minute).
    assert re.search(r": \$0\.0000(1177|2354|3531) cost</title>", chart.group(0))
    for table in ("top-users", "top-models"):
        section = re.search(rf'id="{table}">.*?</section>', overview, re.S).group(0)
        assert re.findall(r'data-column="cost">([^<]*)<', section) == [three], table
    events = client.get("/events").text
    row = re.search(rf'data-event="{event_of(key)}">.*?</tr>', events, re.S).group(0)
    assert re.findall(r'data-column="cost">([^<]*)<', row) == [three]
    admin = console("admin", ADMIN_PASSWORD).get("/admin").text
    row = re.search(rf'data-tenant="{tenant.username}">.*?</tr>', admin, re.S).group(0)
    assert re.findall(r'data-column="(?:total_)?cost">([^<]*)<', row) == [three, three]


def test_limits_are_edited_and_applied(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    client = console(tenant.username)
    client.get("/limits")
    saved = client.post("/limits", {"key_rpm": "2"})
    assert saved.status_code == 303
    assert re.search(r'data-limit="key_rpm">2<', client.get("/limits").text)
    key = tenant.key()
    assert [chat(gateway, key).status_code for _ in range(3)] == [200, 200, 429]
    assert client.post("/limits", {"key_rpm": "lots"}).status_code == 400
    client.get("/limits")
    client.post("/limits", {"key_rpm": ""})  # back to the gateway's default: unlimited
    assert re.search(r'data-limit="key_rpm">unlimited<', client.get("/limits").text)


def test_malformed_console_input_gets_a_page_not_a_500(
    gateway: ServerThread, tenant: TenantHandle, console: Callable[..., ConsoleClient]
) -> None:
    client = console(tenant.username)
    for path, params in [
        ("/ledger", {"p": "x"}),
        ("/ledger", {"range": "lots"}),
        ("/", {"range": "x" * 50}),
    ]:
        assert client.get(path, params=params).status_code in (200, 400), (path, params)
    client.get("/keys")
    assert client.post("/keys/no-such-kid/retire", {"grace_seconds": "-1"}).status_code == 400
    client.get("/keys")
    assert client.post("/keys/no-such-kid/retire", {"grace_seconds": "60"}).status_code == 404
    client.get("/events")
    assert client.post("/events/revoke", {"event_id": "  "}).status_code == 400
    assert client.get("/nowhere").status_code == 404


def test_the_package_ships_its_assets() -> None:
    """htmx is vendored with its licence; nothing is fetched at run time."""
    static = Path(dynaseal.webui.__file__).parent / "static"
    assert (static / "htmx.min.js").stat().st_size > 10_000
    assert "Zero-Clause BSD" in (static / "htmx.LICENSE.txt").read_text()
