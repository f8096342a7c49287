"""Usage callbacks: sent for every kind of ending, retried until the receiver says 2xx."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from dynaseal.cli.deliveries import app as deliveries_cli
from dynaseal.core.original_demo import (
    DEMO_TENANT_PASSWORD,
    DEMO_TENANT_USERNAME,
    DEMO_WEBHOOK_SECRET,
)
from dynaseal.gateway.callbacks.retry import DEFAULT_RETRY_SCHEDULE, retry_after_seconds
from dynaseal.gateway.callbacks.url_policy import (
    CallbackPolicy,
    CallbackURLRefused,
    check_callback_url,
)
from support.callbacks import CallbackSink
from support.commands import run_dynaseal
from support.servers import ServerThread
from support.tenants import (
    DEMO_MODEL,
    TenantHandle,
    create_tenant,
    event_of,
    login,
    mint,
    original_key,
)
from support.upstream import FakeUpstream
from support.waiting import eventually

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(gateway: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def open_stream(gateway: ServerThread, key: str) -> AbstractContextManager[httpx.Response]:
    """A streaming chat completion read line by line (``with`` it)."""
    return httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES, "stream": True},
        timeout=10,
    )


def demo_owner(gateway: ServerThread) -> dict[str, str]:
    return login(gateway.url, DEMO_TENANT_USERNAME, DEMO_TENANT_PASSWORD)


def new_tenant(gateway: ServerThread, callback_url: str) -> TenantHandle:
    return create_tenant(gateway.url, callback_url, with_api_key=True)


def test_callback_for_a_non_streaming_request(gateway: ServerThread, sink: CallbackSink) -> None:
    key = original_key()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["content"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert payload["tokens"] == 19
    assert (payload["prompt_tokens"], payload["completion_tokens"]) == (11, 8)
    assert payload["model"] == DEMO_MODEL
    assert payload["status"] == "completed" and payload["stream"] is False
    assert payload["request_id"].startswith("req_")


def test_callback_for_a_stream_is_signed_with_a_stable_id(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    key = mint(sub="user-42", metadata={"order": 7})
    list(
        client(gateway, key).chat.completions.create(
            model=DEMO_MODEL, messages=MESSAGES, stream=True
        )
    )
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "completed" and payload["stream"] is True
    assert payload["tokens"] == 19
    assert payload["sub"] == "user-42" and payload["metadata"] == {"order": 7}
    delivery = sink.delivery_of(payload)
    assert delivery.headers["webhook-id"].startswith("msg_")
    assert delivery.headers["webhook-timestamp"].isdigit()
    assert len(delivery.signatures()) == 1
    delivery.verify(DEMO_WEBHOOK_SECRET)


def test_callback_when_the_device_disconnects_mid_stream(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.words = 200
    upstream.script.chunk_delay = 0.02
    key = mint()
    with open_stream(gateway, key) as response:
        lines = response.iter_lines()
        received = [next(lines) for _ in range(10)]
    assert any("w0" in line for line in received)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "client_disconnected"
    assert payload["content"].startswith("w0 w1 ")
    assert 0 < payload["completion_tokens"] < 200
    assert payload["tokens"] > payload["completion_tokens"]


def test_callback_when_the_upstream_fails(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.status = 500
    key = mint()
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": DEMO_MODEL, "messages": MESSAGES},
    )
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "upstream says no"
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "failed" and payload["tokens"] == 0


def test_upstream_breaking_mid_stream_ends_with_an_error_event(
    gateway: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.break_after = 3
    key = mint()
    with open_stream(gateway, key) as response:
        events = [line for line in response.iter_lines() if line]
    assert '"error"' in events[-2] and events[-1] == "data: [DONE]"
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "failed"
    assert payload["content"] == "w0 w1 w2 "


def test_undelivered_callback_is_retried_with_the_same_id_and_attempts_shown(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    sink.fail_next = 2
    key = mint()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, timeout=15, event_id=event_of(key))
    assert payload["tokens"] == 19
    webhook_id = sink.delivery_of(payload).headers["webhook-id"]
    assert [r.headers["webhook-id"] for r in sink.refused] == [webhook_id] * 2

    owner = demo_owner(gateway)
    shown = httpx.get(f"{gateway.url}/v1/deliveries/{webhook_id}", headers=owner).json()
    assert shown["status"] == "delivered" and shown["attempts"] == 3
    assert shown["payload"]["event_id"] == event_of(key)
    assert [a["status_code"] for a in shown["attempt_log"]] == [503, 503, 200]
    assert [a["error"] for a in shown["attempt_log"]] == ["HTTP 503", "HTTP 503", None]
    listed = httpx.get(
        f"{gateway.url}/v1/deliveries", headers=owner, params={"status": "delivered"}
    ).json()
    assert webhook_id in [d["id"] for d in listed["data"]]

    resent = httpx.post(f"{gateway.url}/v1/deliveries/{webhook_id}/resend", headers=owner)
    assert resent.status_code == 200 and resent.json()["status"] == "pending"
    again = sink.wait_for(2, event_id=event_of(key))
    assert len(again) == 2 and sink.delivery_of(again[1]).headers["webhook-id"] == webhook_id


def test_tenant_total_grows_with_usage(gateway: ServerThread) -> None:
    login = httpx.post(
        gateway.url + "/user/login",
        data={"username": DEMO_TENANT_USERNAME, "password": DEMO_TENANT_PASSWORD},
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def total() -> int:
        return httpx.get(gateway.url + "/v1/user/me", headers=headers).json()["total_tokens"]

    before = total()
    client(gateway, mint()).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    # The ledger is written in groups, a moment after the answer (budgets in memory).
    assert eventually(lambda: total() - before == 19)


def test_ledger_records_each_request_with_its_timings(gateway: ServerThread) -> None:
    key = mint(sub="user-7")
    list(
        client(gateway, key).chat.completions.create(
            model=DEMO_MODEL, messages=MESSAGES, stream=True
        )
    )
    owner = demo_owner(gateway)
    ledger = httpx.get(
        gateway.url + "/v1/usage", headers=owner, params={"event_id": event_of(key)}
    ).json()
    [record] = ledger["data"]
    assert record["sub"] == "user-7" and record["status"] == "completed"
    assert (record["prompt_tokens"], record["completion_tokens"]) == (11, 8)
    assert record["usage_source"] == "upstream"
    assert record["cost"] is None  # this gateway has no prices
    assert 0 <= record["time_to_first_token_ms"] <= record["latency_ms"]
    assert ledger["totals"] == {
        "requests": 1,
        "prompt_tokens": 11,
        "completion_tokens": 8,
        "total_tokens": 19,
        "cost": "0",
    }
    assert ledger["tenant_total_tokens"] >= 19
    assert httpx.get(gateway.url + "/v1/usage").status_code == 401


def test_a_new_tenant_gets_a_webhook_secret_and_can_rotate_it(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    tenant = new_tenant(gateway, sink.url)
    assert tenant.webhook_secret.startswith("whsec_")
    me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth)
    assert tenant.webhook_secret.removeprefix("whsec_") not in me.text

    key = tenant.key()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    sink.delivery_of(payload).verify(tenant.webhook_secret)
    with pytest.raises(WebhookVerificationError):
        sink.delivery_of(payload).verify(DEMO_WEBHOOK_SECRET)

    rotated = httpx.post(gateway.url + "/v1/webhook-secret/rotate", headers=tenant.auth).json()
    new_secret = rotated["secret"]
    assert new_secret != tenant.webhook_secret
    assert datetime.fromisoformat(rotated["previous_secret_valid_until"]) > datetime.now(UTC)
    key = tenant.key()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    delivery = sink.delivery_of(payload)
    assert len(delivery.signatures()) == 2  # both, while receivers switch over
    delivery.verify(new_secret)
    delivery.verify(tenant.webhook_secret)


def test_content_and_prompt_in_callbacks_are_the_tenants_choice(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    tenant = new_tenant(gateway, sink.url)
    me = httpx.get(gateway.url + "/v1/user/me", headers=tenant.auth).json()
    # A new tenant's usage reports carry no end user's text unless it asks for it.
    assert me["callback_include_content"] is False and me["callback_include_prompt"] is False
    key = tenant.key()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [private] = sink.wait_for(1, event_id=event_of(key))
    assert private["content"] is None and private["tokens"] == 19
    assert "messages" not in private

    changed = httpx.patch(
        gateway.url + "/v1/user/me",
        headers=tenant.auth,
        json={"callback_include_content": True, "callback_include_prompt": True},
    ).json()
    assert changed["callback_include_content"] is True
    assert changed["callback_include_prompt"] is True
    key = tenant.key()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [full] = sink.wait_for(1, event_id=event_of(key))
    assert full["content"] == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert full["messages"] == MESSAGES


def test_test_event_and_deliveries_are_only_the_owners(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    tenant = new_tenant(gateway, sink.url)
    sent = httpx.post(gateway.url + "/v1/deliveries/test", headers=tenant.auth)
    assert sent.status_code == 201 and sent.json()["type"] == "test"
    [payload] = sink.wait_for(1, type="test")
    delivery = sink.delivery_of(payload)
    delivery.verify(tenant.webhook_secret)
    assert delivery.headers["webhook-id"] == sent.json()["id"]

    demo = demo_owner(gateway)
    path = f"{gateway.url}/v1/deliveries/{sent.json()['id']}"
    assert httpx.get(path, headers=demo).status_code == 404
    assert httpx.post(path + "/resend", headers=demo).status_code == 404
    listed = httpx.get(gateway.url + "/v1/deliveries", headers=demo).json()["data"]
    assert sent.json()["id"] not in [d["id"] for d in listed]
    assert httpx.get(gateway.url + "/v1/deliveries").status_code == 401


def test_retry_after_is_honoured(gateway: ServerThread, sink: CallbackSink) -> None:
    owner = demo_owner(gateway)
    sink.fail_next, sink.fail_status, sink.fail_headers = 1, 429, {"Retry-After": "1"}
    key = mint()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    webhook_id = sink.delivery_of(payload).headers["webhook-id"]
    log = httpx.get(f"{gateway.url}/v1/deliveries/{webhook_id}", headers=owner).json()
    first, second = (datetime.fromisoformat(a["attempted_at"]) for a in log["attempt_log"])
    assert (second - first).total_seconds() >= 0.95  # not the 0.2 s of the schedule


def test_410_disables_the_endpoint_until_its_url_is_set_again(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    tenant = new_tenant(gateway, sink.url)
    sink.fail_next, sink.fail_status = 5, 410
    gone_key, held_key = tenant.key(), tenant.key()
    client(gateway, gone_key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    deadline = time.monotonic() + 10
    while not sink.refused and time.monotonic() < deadline:
        time.sleep(0.02)
    gone = sink.refused[-1].headers["webhook-id"]
    shown = httpx.get(f"{gateway.url}/v1/deliveries/{gone}", headers=tenant.auth).json()
    assert shown["status"] == "disabled" and shown["attempts"] == 1

    # While disabled, new callbacks are kept but not sent.
    client(gateway, held_key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    time.sleep(0.5)
    assert sink.fail_next == 4 and not sink.payloads()
    held = httpx.get(
        f"{gateway.url}/v1/deliveries", headers=tenant.auth, params={"status": "disabled"}
    ).json()["data"]
    assert len(held) == 2

    # Setting the URL again re-enables the endpoint and sends what was held.
    sink.fail_next = 0
    patched = httpx.patch(
        gateway.url + "/v1/user/me",
        headers=tenant.auth,
        json={"callback_url": sink.url},
    )
    assert patched.status_code == 200
    assert sink.wait_for(1, event_id=event_of(gone_key)) and sink.wait_for(
        1, event_id=event_of(held_key)
    )


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Wed, 01 Jan 2025 12:01:30 GMT", now) == 90
    assert retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_default_retry_schedule_spans_about_three_days() -> None:
    assert 2.5 * 86400 < sum(DEFAULT_RETRY_SCHEDULE) < 3.5 * 86400


def delivered_callback(gateway: ServerThread, sink: CallbackSink) -> tuple[str, str]:
    """A completion whose callback arrived: its key and the delivery's webhook-id."""
    key = mint()
    client(gateway, key).chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
    [payload] = sink.wait_for(1, event_id=event_of(key))
    return key, sink.delivery_of(payload).headers["webhook-id"]


def tenant_login(gateway: ServerThread) -> list[str]:
    """The options of ``dynaseal deliveries`` that log in as the demo tenant."""
    login = ["--gateway-url", gateway.url, "--username", DEMO_TENANT_USERNAME]
    return [*login, "--password", DEMO_TENANT_PASSWORD]


def test_cli_lists_shows_resends_and_tests_deliveries(
    gateway: ServerThread, sink: CallbackSink
) -> None:
    sink.fail_next = 1
    key, webhook_id = delivered_callback(gateway, sink)
    login = tenant_login(gateway)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(deliveries_cli, [*login, *args], terminal_width=250)
        assert result.exit_code == 0, result.output
        return result.output

    assert webhook_id in run("list", "--status", "delivered")
    shown = run("show", webhook_id)
    assert "HTTP 503" in shown and event_of(key) in shown
    assert "pending" in run("resend", webhook_id)
    assert "test" in run("test")
    assert len(sink.wait_for(2, event_id=event_of(key))) == 2
    wrong = runner.invoke(deliveries_cli, ["--gateway-url", gateway.url, "list"])
    assert wrong.exit_code == 2 and "--username" in wrong.output


def test_the_deliveries_table_is_whole_when_piped(
    gateway: ServerThread, sink: CallbackSink, tmp_path: Path
) -> None:
    _, webhook_id = delivered_callback(gateway, sink)
    listing = ["deliveries", *tenant_login(gateway), "list", "--status", "delivered"]
    piped = run_dynaseal(*listing, cwd=tmp_path)
    assert piped.returncode == 0, piped.stderr
    (row,) = [line for line in piped.stdout.splitlines() if webhook_id in line]
    assert " delivered " in row and "…" not in piped.stdout


@pytest.mark.parametrize(
    ("url", "setting"),
    [
        ("http://127.0.0.1:9000/v1/callback/usage", "ALLOW_LOOPBACK_CALLBACKS"),
        ("http://10.1.2.3/v1/callback/usage", "ALLOW_PRIVATE_CALLBACKS"),
    ],
)
async def test_a_refused_callback_url_names_the_setting_that_allows_it(
    url: str, setting: str
) -> None:
    with pytest.raises(CallbackURLRefused, match=f"{setting}=true"):
        await check_callback_url(url, CallbackPolicy())
