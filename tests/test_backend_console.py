"""The reference backend's console page over HTTP: an end user logs in with the backend's
own login (and its throttle), sees the keys minted for them and their usage and cost
per day against the quotas, and nobody else's."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from dynaseal.backend import BackendSettings
from dynaseal.backend import create_app as create_backend
from dynaseal.core.original_demo import DEMO_USER_PASSWORD, DEMO_USER_USERNAME, DEMO_WEBHOOK_SECRET
from dynaseal.webui.headers import CONTENT_SECURITY_POLICY
from support.callbacks import signed_headers
from support.console import ConsoleClient
from support.databases import NewDatabase
from support.servers import ServerThread, serve

ADMIN_PASSWORD = "backend-admin-password"


@pytest.fixture
def backend(database_url: NewDatabase) -> Iterator[ServerThread]:
    settings = BackendSettings(
        database_url=database_url("backend"),
        admin_user_password=ADMIN_PASSWORD,
        user_daily_token_quota=1000,
        user_daily_cost_quota="0.01",
    )
    with serve(create_backend(settings, demo_data=True)) as server:
        yield server


def login(backend: ServerThread, username: str, password: str) -> dict[str, str]:
    tokens = httpx.post(
        backend.url + "/v1/user/login", data={"username": username, "password": password}
    ).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def report_usage(backend: ServerThread, event_id: str, tokens: int, cost: str | None) -> None:
    """The gateway's signed usage callback for one request with this key (``cost``
    None: the gateway had no price for the model)."""
    body = orjson.dumps(
        {
            "type": "usage",
            "event_id": event_id,
            "request_id": f"req_{uuid.uuid4().hex}",
            "content": "hi",
            "tokens": tokens,
            "status": "completed",
            "ended_at": datetime.now(UTC).isoformat(),
            **({} if cost is None else {"cost": cost}),
        }
    )
    headers = signed_headers(DEMO_WEBHOOK_SECRET, body, f"msg_{uuid.uuid4().hex}")
    response = httpx.post(backend.url + "/v1/callback/usage", content=body, headers=headers)
    assert response.status_code == 200, response.text


def test_an_end_user_sees_their_keys_and_usage_against_the_quota(backend: ServerThread) -> None:
    auth = login(backend, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)
    minted = httpx.post(backend.url + "/v1/key/create", headers=auth).json()
    report_usage(backend, minted["event_id"], 120, "0.00012345")
    report_usage(backend, minted["event_id"], 30, None)
    # Another user's key and usage.
    admin = login(backend, "admin", ADMIN_PASSWORD)
    created = httpx.post(
        backend.url + "/v1/user/create",
        headers=admin,
        json={"username": "other", "password": "other-password"},
    )
    assert created.status_code == 201, created.text
    other_key = httpx.post(
        backend.url + "/v1/key/create", headers=login(backend, "other", "other-password")
    ).json()
    report_usage(backend, other_key["event_id"], 500, "0.005")

    client = ConsoleClient(backend.url)
    assert client.get("/").headers["location"] == "/console/login"
    page = client.logged_in(DEMO_USER_USERNAME, DEMO_USER_PASSWORD).get("/")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    text = page.text
    assert f'data-event="{minted["event_id"]}"' in text and other_key["event_id"] not in text
    assert 'data-today="150"' in text and "of 1,000 generated tokens" in text
    assert "daily quota 1,000" in text  # the quota line across the chart
    row = re.search(rf'data-event="{minted["event_id"]}">(.*?)</tr>', text, re.S).group(1)
    assert re.findall(r'class="num">([\d,]+)<', row) == ["1,000", "2", "150"]
    # Money beside the tokens: the key's max_cost (today's cost quota), its cost, the
    # day's cost against the quota.
    assert '<span class="muted">$0.01</span>' in row
    assert re.findall(r'data-column="cost">([^<]*)<', row) == ["$0.00012345"]
    assert re.search(r"data-today-cost>\$0\.00012345</strong> of \$0\.01<", text)
    cost_chart = re.search(r'id="chart-daily-cost">.*?</figure>', text, re.S).group(0)
    assert 'data-total="cost">$0.00012345<' in cost_chart and "daily quota $0.01" in cost_chart
    client.close()


def test_the_backend_login_throttle_applies(backend: ServerThread) -> None:
    client = ConsoleClient(backend.url)
    for _ in range(5):
        assert client.login(DEMO_USER_USERNAME, "wrong").status_code == 401
    throttled = client.login(DEMO_USER_USERNAME, DEMO_USER_PASSWORD)
    assert throttled.status_code == 429 and "Too many failed logins" in throttled.text


def test_logout_ends_it_and_each_console_has_its_own_cookie(backend: ServerThread) -> None:
    """Browsers share cookies across ports: each console has its own cookie and table."""
    client = ConsoleClient(backend.url).logged_in(DEMO_USER_USERNAME, DEMO_USER_PASSWORD)
    session = client.http.cookies["dynaseal_backend_console"]
    logged_out = client.post("/logout")
    assert logged_out.status_code == 303
    again = httpx.get(backend.url + "/console/", cookies={"dynaseal_backend_console": session})
    assert again.status_code == 303
    foreign = httpx.get(backend.url + "/console/", cookies={"dynaseal_gateway_console": session})
    assert foreign.status_code == 303
