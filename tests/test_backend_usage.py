"""The reference backend acting on usage: only signed, fresh callbacks count, each
``webhook-id`` once, per user, against a daily token quota."""

from __future__ import annotations

import gzip
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from dynaseal.backend import BackendSettings, create_app
from dynaseal.backend.demo_data import DEMO_USER_ID
from dynaseal.core.original_demo import DEMO_WEBHOOK_SECRET
from support.backend import ADMIN_PASSWORD, assert_openai_error, backend_settings, login
from support.callbacks import signed_headers
from support.databases import NewDatabase
from support.servers import serve
from support.tenants import bearer

OTHER_SECRET = "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="


def usage_payload(event_id: str, tokens: int = 12, **extra: Any) -> dict[str, Any]:
    return {
        "type": "usage",
        "event_id": event_id,
        "request_id": f"req_{uuid.uuid4().hex}",
        "content": "Hello there",
        "tokens": tokens,
        "model": "deepseek-chat",
        "prompt_tokens": 5,
        "completion_tokens": tokens - 5,
        "status": "completed",
        **extra,
    }


def post_signed(
    http: httpx.Client,
    payload: dict[str, Any] | bytes,
    *,
    msg_id: str | None = None,
    secret: str = DEMO_WEBHOOK_SECRET,
    at: datetime | None = None,
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    headers = signed_headers(secret, body, msg_id or f"msg_{uuid.uuid4().hex}", at)
    return http.post("/v1/callback/usage", content=body, headers=headers)


def usage_of(http: httpx.Client, auth: dict[str, str], event_id: str) -> dict[str, Any]:
    return http.get("/v1/usage", params={"event_id": event_id}, headers=auth).json()


def new_event(http: httpx.Client, auth: dict[str, str]) -> str:
    response = http.post("/v1/key/create", headers=auth)
    assert response.status_code == 200, response.text
    return response.json()["event_id"]


def test_signed_callback_is_stored_once_and_listed(
    backend: httpx.Client,
    client1: dict[str, str],
    admin: dict[str, str],
) -> None:
    event_id = new_event(backend, client1)
    assert post_signed(backend, usage_payload(event_id), msg_id="msg_a").json() == {
        "received": True
    }
    again = post_signed(backend, usage_payload(event_id), msg_id="msg_a")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert post_signed(backend, usage_payload(event_id, tokens=7)).json() == {"received": True}

    usage = usage_of(backend, client1, event_id)
    assert [entry["tokens"] for entry in usage["data"]] == [7, 12]  # newest first
    assert usage["total_tokens"] == 19
    entry = usage["data"][1]
    assert entry["delivery_id"] == "msg_a" and entry["user_id"] == DEMO_USER_ID
    assert entry["signature_verified"] is True
    assert entry["content"] == "Hello there" and entry["status"] == "completed"
    assert usage_of(backend, admin, event_id)["total_tokens"] == 19
    assert_openai_error(backend.get("/v1/usage"), 401)


def test_end_users_conversations_stay_out_of_stdout_and_the_logs(
    backend: httpx.Client,
    client1: dict[str, str],
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    event_id = new_event(backend, client1)
    private = "my bank password is hunter2"
    with caplog.at_level(logging.INFO):  # the services' default log level
        post_signed(backend, usage_payload(event_id, content=private))
        post_signed(backend, usage_payload(event_id, type="test", content=private))
    assert usage_of(backend, client1, event_id)["data"][0]["content"] == private
    printed = capfd.readouterr()
    assert private not in printed.out + printed.err
    assert all(private not in record.getMessage() for record in caplog.records)
    assert any(event_id in record.getMessage() for record in caplog.records)


def test_forged_stale_and_unsigned_callbacks_are_refused(
    backend: httpx.Client, client1: dict[str, str]
) -> None:
    event_id = new_event(backend, client1)
    payload = usage_payload(event_id, tokens=500)
    body = orjson.dumps(payload)
    now = datetime.now(UTC)
    tampered = signed_headers(DEMO_WEBHOOK_SECRET, body, "msg_t")
    refusals = {
        "unsigned": backend.post("/v1/callback/usage", content=body),
        "forged": post_signed(backend, payload, secret=OTHER_SECRET),
        "stale": post_signed(backend, payload, at=now - timedelta(minutes=10)),
        "future": post_signed(backend, payload, at=now + timedelta(minutes=10)),
        "tampered": backend.post(
            "/v1/callback/usage", content=body.replace(b"500", b"5"), headers=tampered
        ),
        "garbled": backend.post(
            "/v1/callback/usage",
            content=body,
            headers={**tampered, "webhook-signature": "v1,not-base64!! nonsense"},
        ),
    }
    for name, response in refusals.items():
        error = assert_openai_error(response, 401)
        assert error["code"] == "invalid_signature", name
    assert usage_of(backend, client1, event_id)["data"] == []


def test_replayed_webhook_id_is_not_counted_twice(
    backend: httpx.Client, client1: dict[str, str]
) -> None:
    event_id = new_event(backend, client1)
    payload = usage_payload(event_id, tokens=19)
    answers = [post_signed(backend, payload, msg_id="msg_replayed").json() for _ in range(5)]
    assert answers[0] == {"received": True}
    assert all(a == {"received": True, "duplicate": True} for a in answers[1:])
    usage = usage_of(backend, client1, event_id)
    assert len(usage["data"]) == 1 and usage["total_tokens"] == 19


def test_malformed_but_signed_callbacks_are_400(backend: httpx.Client) -> None:
    naive_time = b'{"event_id": "e", "tokens": 1, "ended_at": "2025-01-01T00:00:00"}'
    for body in (
        b"not json",
        b"[1, 2]",
        b'{"event_id": "e"}',
        b'{"event_id": "e", "tokens": -1}',
        b'{"event_id": "e", "tokens": 9223372036854775808}',
        naive_time,
    ):
        assert_openai_error(post_signed(backend, body), 400)


def test_test_events_are_acknowledged_not_stored(
    backend: httpx.Client, admin: dict[str, str]
) -> None:
    test_event = {"type": "test", "event_id": "test_1", "tokens": 0}
    assert post_signed(backend, test_event).json() == {"received": True, "test": True}
    assert usage_of(backend, admin, "test_1")["data"] == []


def test_daily_quota_caps_keys_then_refuses_with_the_reset_time(
    backend: httpx.Client, admin: dict[str, str]
) -> None:
    name = f"quota-{uuid.uuid4().hex[:8]}"
    created = backend.post(
        "/v1/user/create",
        headers=admin,
        json={"username": name, "password": "pw", "daily_token_quota": 30},
    )
    assert created.status_code == 201, created.text
    assert created.json()["policy"]["daily_token_quota"] == 30
    user = bearer(login(backend, name, "pw")["access_token"])

    first = backend.post("/v1/key/create", headers=user).json()
    assert first["max_tokens"] == 30  # the policy allows 16,000 per key, the day only 30
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    post_signed(backend, usage_payload(first["event_id"], tokens=500, ended_at=yesterday))
    post_signed(backend, usage_payload(first["event_id"], tokens=19))
    # The quota counts generated tokens: 14 of the 19 today, 16 left.
    assert backend.post("/v1/key/create", headers=user).json()["max_tokens"] == 16

    post_signed(backend, usage_payload(first["event_id"], tokens=19))
    refused = backend.post("/v1/key/create", headers=user)
    error = assert_openai_error(refused, 429)
    assert error["code"] == "insufficient_quota"
    midnight = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert f"resets at {midnight}T00:00:00Z" in str(error["message"])
    assert 0 < int(refused.headers["retry-after"]) <= 24 * 3600

    everyone = backend.get("/v1/usage", headers=admin, params={"user_id": created.json()["id"]})
    assert everyone.json()["total_tokens"] == 538


def test_without_a_secret_unsigned_callbacks_pass_with_one_warning(
    database_url: NewDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    settings = backend_settings(database_url("backend")).model_copy(update={"webhook_secret": None})
    with (
        caplog.at_level(logging.WARNING, logger="dynaseal.backend"),
        serve(create_app(settings)) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        for n in range(3):
            response = http.post("/v1/callback/usage", json=usage_payload(f"evt-{n}"))
            assert response.json() == {"received": True}
        admin = bearer(login(http, "admin", ADMIN_PASSWORD)["access_token"])
        listed = http.get("/v1/usage", headers=admin).json()["data"]
        assert [entry["signature_verified"] for entry in listed] == [False] * 3
    warnings = [r for r in caplog.records if "WEBHOOK_SECRET is not set" in r.getMessage()]
    assert len(warnings) == 1


def test_an_invalid_webhook_secret_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="Standard Webhooks secret"):
        BackendSettings(webhook_secret="whsec_%%%")


def batch_of(*events: dict[str, Any]) -> dict[str, Any]:
    """A ``usage.batch`` as the gateway sends it: each event under an id of its own."""
    return {"type": "usage.batch", "data": [{"id": f"msg_{uuid.uuid4().hex}"} | e for e in events]}


def test_a_batch_is_verified_once_and_each_event_stored_once(
    backend: httpx.Client, admin: dict[str, str]
) -> None:
    event_id = f"evt-{uuid.uuid4().hex}"
    batch = batch_of(*(usage_payload(event_id, tokens=10 + n) for n in range(3)))
    assert post_signed(backend, batch).json() == {"received": True, "events": 3, "duplicates": 0}
    stored = usage_of(backend, admin, event_id)
    assert sorted(e["delivery_id"] for e in stored["data"]) == sorted(
        e["id"] for e in batch["data"]
    )
    assert stored["total_tokens"] == 33 and all(e["signature_verified"] for e in stored["data"])

    # Sent again (a retried batch under a new webhook-id), or one event re-sent alone under
    # its own id: acknowledged, never counted twice.
    again = post_signed(backend, batch).json()
    assert again == {"received": True, "events": 3, "duplicates": 3}
    first = batch["data"][0]
    alone = post_signed(backend, usage_payload(event_id), msg_id=first["id"]).json()
    assert alone == {"received": True, "duplicate": True}
    assert usage_of(backend, admin, event_id)["total_tokens"] == 33


def test_a_forged_or_malformed_batch_is_refused_whole(
    backend: httpx.Client, admin: dict[str, str]
) -> None:
    event_id = f"evt-{uuid.uuid4().hex}"
    batch = batch_of(usage_payload(event_id), usage_payload(event_id))
    assert_openai_error(post_signed(backend, batch, secret=OTHER_SECRET), 401)
    no_id = {"type": "usage.batch", "data": [usage_payload(event_id)]}
    bad_event = batch_of(usage_payload(event_id), {"event_id": event_id, "tokens": -1})
    for body in (no_id, bad_event, {"type": "usage.batch", "data": {"id": "x"}}):
        assert_openai_error(post_signed(backend, body), 400)
    assert usage_of(backend, admin, event_id)["data"] == []


def test_a_gzip_compressed_batch_is_verified_over_its_json(
    backend: httpx.Client, admin: dict[str, str]
) -> None:
    event_id = f"evt-{uuid.uuid4().hex}"
    body = orjson.dumps(batch_of(usage_payload(event_id), usage_payload(event_id)))
    headers = signed_headers(DEMO_WEBHOOK_SECRET, body, f"msg_{uuid.uuid4().hex}")
    gzipped = {**headers, "content-encoding": "gzip"}
    sent = backend.post("/v1/callback/usage", content=gzip.compress(body), headers=gzipped)
    assert sent.json() == {"received": True, "events": 2, "duplicates": 0}
    assert len(usage_of(backend, admin, event_id)["data"]) == 2

    brotli = {**headers, "content-encoding": "br"}
    assert_openai_error(backend.post("/v1/callback/usage", content=body, headers=brotli), 415)
    broken = gzip.compress(body)[:-12]
    cut = backend.post("/v1/callback/usage", content=broken, headers=gzipped)
    assert_openai_error(cut, 400)
    bomb = gzip.compress(b" " * (9 * 1024 * 1024))  # 9 MiB of blanks in ~9 KiB
    assert_openai_error(backend.post("/v1/callback/usage", content=bomb, headers=gzipped), 413)
