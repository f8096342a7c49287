"""Issue 12.4: a huge body without any credentials must not be read into memory. Every
route of both services stops reading past its limit and answers 413 in OpenAI's format,
chunked bodies included."""

from __future__ import annotations

import httpx
import pytest

from support.raw_http import send_chunked
from support.servers import ServerThread

HUGE = 50 * 1024 * 1024
#: What a server that stopped reading may still have let us push: its limit plus the
#: kernel's socket buffers on loopback (a few MiB each way). Far below HUGE.
SLACK = 16 * 1024 * 1024
CHAT_LIMIT = 4 * 1024 * 1024  # MAX_REQUEST_BYTES' default
JSON_LIMIT = 64 * 1024  # MAX_BODY_BYTES' default
CALLBACK_LIMIT = 8 * 1024 * 1024  # the backend's MAX_CALLBACK_BYTES default


def assert_refused_early(answer, limit: int) -> None:
    assert answer.status == 413, answer
    assert answer.body is not None
    error = answer.body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "request_too_large"
    assert answer.sent < limit + SLACK, f"the server read {answer.sent} bytes"


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("path", "limit", "headers"),
    [
        ("/v1/chat/completions", CHAT_LIMIT, {}),
        ("/chat/completions", CHAT_LIMIT, {}),
        ("/v1/user/login", JSON_LIMIT, FORM),
        ("/v1/tenants", JSON_LIMIT, {}),
    ],
)
def test_gateway_stops_reading_a_huge_chunked_body(
    gateway: ServerThread, path: str, limit: int, headers: dict[str, str]
) -> None:
    assert_refused_early(send_chunked(gateway.url, path, HUGE, headers=headers), limit)


def test_gateway_stops_reading_a_huge_patch(gateway: ServerThread) -> None:
    answer = send_chunked(gateway.url, "/api/v1/user/me", HUGE, method="PATCH")
    assert_refused_early(answer, JSON_LIMIT)


@pytest.mark.parametrize(
    ("path", "limit", "headers"),
    [
        ("/v1/callback/usage", CALLBACK_LIMIT, {}),
        ("/callback/usage", CALLBACK_LIMIT, {}),
        ("/v1/user/login", JSON_LIMIT, FORM),
        ("/v1/key/create", JSON_LIMIT, {}),
    ],
)
def test_backend_stops_reading_a_huge_chunked_body(
    backend: httpx.Client, path: str, limit: int, headers: dict[str, str]
) -> None:
    assert_refused_early(send_chunked(str(backend.base_url), path, HUGE, headers=headers), limit)


def test_a_refusal_that_needs_no_body_stops_the_upload(gateway: ServerThread) -> None:
    """A JSON body to the login form is refused without being read; the connection then
    closes, or the server would go on reading and discarding all 50 MB."""
    answer = send_chunked(gateway.url, "/v1/user/login", HUGE, past_the_answer=True)
    assert answer.status == 400
    assert answer.sent < SLACK


def test_a_declared_length_over_the_limit_is_refused_before_the_body(
    gateway: ServerThread,
) -> None:
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=b"{" + b" " * (CHAT_LIMIT + 1),
        headers={"Authorization": "Bearer x", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_bodies_under_the_limit_are_untouched(gateway: ServerThread) -> None:
    # A large but allowed chat body gets as far as the key check.
    body = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 1_000_000 + b'"}]}'
    response = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=body,
        headers={"Authorization": "Bearer not-a-key", "Content-Type": "application/json"},
    )
    assert response.status_code == 401
    login = httpx.post(gateway.url + "/v1/user/login", data={"username": "x", "password": "y"})
    assert login.status_code == 401
