"""The consoles in a real browser (headless Chromium, Playwright): a tenant registered by
the operator logs in, creates a signing key, a real backend mints a key with it, the
OpenAI SDK makes requests, and the tenant sees them and their cost in the overview's
charts and the ledger, exports the CSV, revokes the event (the next request is refused),
and resends a failed delivery; the end user sees their usage on the backend's page. Every
page is screenshotted into build/screenshots/. No CSP violation or script error may
occur."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.core.original_demo import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from support.browser import (
    PageWatch,
    browser_page,
    launched,
    navigates,
    reload_until,
    shoot,
)
from support.callbacks import CallbackSink
from support.console import console_gateway
from support.servers import ServerThread, free_port, serve
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL
from support.upstream import FakeUpstream

TENANT, TENANT_PASSWORD = "acme", "acme-password-1"
MESSAGES = [{"role": "user", "content": "Hello from the browser test"}]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[ServerThread]:
    with console_gateway(tmp_path_factory.mktemp("browser"), upstream) as server:
        yield server


def log_in(page: Any, url: str, username: str, password: str, shot: str = "") -> None:
    page.goto(url + "/console/login")
    if shot:
        shoot(page, shot)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    click(page, "button[type=submit]")
    page.wait_for_selector("form.logout")


def click(page: Any, target: Any) -> None:
    """Click what loads a page (a link, a form's button) and wait for that page."""
    navigates(page, lambda: (page.locator(target) if isinstance(target, str) else target).click())


def nav(page: Any, name: str) -> None:
    """Follow a link in the console's navigation."""
    click(page, f"header nav >> text={name}")


def assert_clean(watch: PageWatch) -> None:
    assert watch.problems == [], watch.problems


def test_a_tenant_runs_its_keys_from_the_console(
    browser: Any,
    gateway: ServerThread,
    sink: CallbackSink,
    tmp_path: Path,
) -> None:
    # The operator registers the tenant; its webhook secret is shown this once.
    with browser_page(browser) as (page, watch):
        log_in(page, gateway.url, "admin", ADMIN_PASSWORD, shot="gateway-login")
        page.wait_for_selector("table#tenants")
        page.fill("#register-tenant input[name=username]", TENANT)
        page.fill("#register-tenant input[name=password]", TENANT_PASSWORD)
        click(page, "#register-tenant button[type=submit]")
        webhook_secret = page.inner_text("#tenant-webhook-secret").strip()
        assert webhook_secret.startswith("whsec_")
        nav(page, "Tenants")
        page.wait_for_selector(f"tr[data-tenant={TENANT}]")
        assert webhook_secret not in page.content()  # shown once
        assert_clean(watch)

    backend_port = free_port()
    callback_url = f"http://127.0.0.1:{backend_port}/v1/callback/usage"
    with browser_page(browser, permissions=["clipboard-read", "clipboard-write"]) as (page, watch):
        log_in(page, gateway.url, TENANT, TENANT_PASSWORD)
        assert page.evaluate("typeof window.htmx") == "object"

        # A signing key: the secret once, with the backend's settings beside it.
        nav(page, "Signing keys")
        page.fill("#create-key input[name=label]", "browser test backend")
        click(page, "#create-key button[type=submit]")
        secret = page.inner_text("#new-secret").strip()
        page.click("[data-copy=new-secret]")
        page.wait_for_selector("[data-copy=new-secret]:has-text('Copied')")
        assert page.evaluate("navigator.clipboard.readText()") == secret
        settings = dict(
            line.split("=", 1)
            for line in page.inner_text("#backend-settings").splitlines()
            if "=" in line
        )
        assert settings["LLM_KEY"] == secret and settings["GATEWAY_URL"] == gateway.url
        shoot(page, "gateway-signing-keys")

        # The callback URL: the backend about to start.
        nav(page, "Callbacks")
        page.fill("#callback-settings input[name=callback_url]", callback_url)
        click(page, "#callback-settings button[type=submit]")
        page.wait_for_selector("text=Callback settings saved.")

        backend_settings = BackendSettings(
            database_url=f"sqlite:///{tmp_path / 'backend.db'}",
            gateway_url=gateway.url,
            llm_key=secret,
            llm_user_id=settings["LLM_USER_ID"],
            llm_key_id=settings["LLM_KEY_ID"],
            webhook_secret=webhook_secret,
            user_daily_token_quota=500,
        )
        with serve(create_backend(backend_settings, demo_data=True), backend_port) as backend:
            key = device_key(backend)
            event_id = key["event_id"]
            device = openai.OpenAI(base_url=key["base_url"], api_key=key["token"], max_retries=0)
            for stream in (False, True, False):
                answer = device.chat.completions.create(
                    model=key["model"], messages=MESSAGES, stream=stream
                )
                if stream:
                    assert "".join(c.choices[0].delta.content or "" for c in answer if c.choices)
            with pytest.raises(openai.PermissionDeniedError):
                device.chat.completions.create(model="not-in-the-key", messages=MESSAGES)

            # The overview: three requests in the charts, one refusal beside them.
            nav(page, "Overview")
            click(page, ".ranges >> text=Last hour")
            page.wait_for_selector(".ranges a.current:has-text('Last hour')")
            assert reload_until(
                page,
                lambda: (
                    page.inner_text("#chart-requests [data-total=requests]") == "3"
                    and page.get_attribute("#refusals tr[data-reason=model] td.num", "data-count")
                    == "1"
                ),
            )
            assert page.locator("#chart-requests rect.bar").count() >= 1
            tokens, generated = (
                sum(
                    int(page.inner_text(f"#chart-tokens [data-total={series}]").replace(",", ""))
                    for series in kinds
                )
                for kinds in (("prompt_tokens", "completion_tokens"), ("completion_tokens",))
            )
            assert tokens > generated > 0
            # The model is priced (console_gateway): each answer costs 0.00001177 USD.
            assert page.inner_text("#chart-cost [data-total=cost]") == "$0.00003531"
            assert page.inner_text("#top-models").count(DEMO_MODEL) == 1
            shoot(page, "gateway-overview")

            # The ledger, and the same rows as CSV.
            nav(page, "Usage ledger")
            page.wait_for_selector(f"#ledger tr[data-event='{event_id}']")
            assert page.locator("#ledger tbody tr").count() == 3
            costs = page.locator("#ledger td[data-column=cost_usd]").all_inner_texts()
            assert costs == ["$0.00001177"] * 3
            navigates(
                page, lambda: page.select_option("#ledger-filters select[name=status]", "failed")
            )
            page.wait_for_selector("text=No requests match.")
            navigates(page, lambda: page.select_option("#ledger-filters select[name=status]", ""))
            page.wait_for_selector("#ledger tbody tr")
            with page.expect_download() as download:
                page.click("#csv")
            rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
            assert [r["event_id"] for r in rows] == [event_id] * 3
            assert sum(int(r["total_tokens"]) for r in rows) == tokens
            assert [r["cost_usd"] for r in rows] == ["0.00001177"] * 3
            shoot(page, "gateway-ledger")

            # The backend got the callbacks: its end user sees the usage against the quota.
            with browser_page(browser) as (user_page, user_watch):
                log_in(user_page, backend.url, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)
                user_page.wait_for_selector(f"#minted-keys tr[data-event='{event_id}']")
                assert reload_until(
                    user_page,
                    lambda: (
                        # The daily quota counts generated tokens.
                        user_page.get_attribute("#quota [data-today]", "data-today")
                        == str(generated)
                    ),
                )
                assert "daily quota" in user_page.inner_text("#chart-daily")
                shoot(user_page, "backend-console")
                assert_clean(user_watch)

        # Revoke the event: the device's next request is refused.
        nav(page, "Keys in use")
        row = page.locator(f"#events tr[data-event='{event_id}']")
        assert row.locator("td.num").first.inner_text() == "3"
        shoot(page, "gateway-keys-in-use")
        click(page, row.locator("button:has-text('Revoke')"))
        page.wait_for_selector("text=The event is revoked")
        assert any("Revoke event" in d for d in watch.dialogs)  # htmx asked first
        assert row.locator(".badge").inner_text() == "revoked"
        with pytest.raises(openai.AuthenticationError):
            device.chat.completions.create(model=key["model"], messages=MESSAGES)

        # A delivery that fails every attempt, then is resent once the endpoint is back.
        sink.fail_next, sink.fail_status = 1000, 500
        nav(page, "Callbacks")
        page.fill("#callback-settings input[name=callback_url]", sink.url)  # type: ignore[attr-defined]
        click(page, "#callback-settings button[type=submit]")
        page.wait_for_selector("text=Callback settings saved.")
        click(page, "#send-test")
        page.wait_for_selector("text=A test event is on its way")
        failed = page.locator("#deliveries tr[data-status=failed]")
        assert reload_until(page, lambda: failed.count() == 1)
        failed.locator("summary").click()
        attempts = failed.locator("table.attempts tbody tr")
        assert attempts.count() == 3  # the first try and both retries
        assert "500" in attempts.first.inner_text()
        shoot(page, "gateway-callbacks")
        sink.fail_next = 0
        click(page, failed.locator("button:has-text('Resend')"))
        page.wait_for_selector("text=queued to be sent again")
        assert reload_until(
            page, lambda: page.locator("#deliveries tr[data-status=delivered]").count() >= 1
        )
        assert sink.wait_for(type="test")

        nav(page, "Limits")
        page.fill("#limit-key_rpm", "120")
        click(page, "#limits button[type=submit]")
        page.wait_for_selector("#limits [data-limit=key_rpm]:has-text('120')")
        shoot(page, "gateway-limits")

        click(page, "form.logout button")
        page.wait_for_selector("input[name=password]")
        page.goto(gateway.url + "/console/ledger")
        assert page.url.endswith("/console/login")
        assert_clean(watch)


def test_the_operator_disables_a_tenant(browser: Any, gateway: ServerThread) -> None:
    with browser_page(browser) as (page, watch):
        log_in(page, gateway.url, "admin", ADMIN_PASSWORD)
        page.fill("#register-tenant input[name=username]", "to-disable")
        page.fill("#register-tenant input[name=password]", TENANT_PASSWORD)
        click(page, "#register-tenant button[type=submit]")
        page.wait_for_selector("#new-tenant")
        nav(page, "Tenants")
        row = page.locator("tr[data-tenant=to-disable]")
        click(page, row.locator("button:has-text('Disable')"))
        page.wait_for_selector("text=The tenant is disabled")
        assert row.locator(".badge").inner_text() == "disabled"
        shoot(page, "gateway-admin")
        click(page, row.locator("button:has-text('Enable')"))
        page.wait_for_selector("text=The tenant is enabled again")
        assert row.locator(".badge").inner_text() == "active"
        assert any("Disable to-disable" in d for d in watch.dialogs)
        assert_clean(watch)


def device_key(backend: ServerThread) -> dict[str, Any]:
    """What the app on the device does: log in to the backend, ask for a key."""
    tokens = httpx.post(
        backend.url + "/v1/user/login",
        data={"username": DEMO_USER_USERNAME, "password": DEMO_USER_PASSWORD},
    ).json()
    created = httpx.post(
        backend.url + "/v1/key/create",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert created.status_code == 200, created.text
    return created.json()
