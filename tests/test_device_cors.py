"""Web pages as devices (CORS on the device endpoints only, the tenant's allowed origins)
and request ids on every answer (the gateway's, and the upstream's; never its rate
limits)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.callbacks import CallbackSink
from support.gateways import demo_gateway
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, create_tenant, event_of, mint
from support.upstream import RATE_LIMIT_HEADERS, FakeUpstream

PAGE = "https://chat.example"
SDK_HEADERS = "authorization,content-type,x-stainless-os,x-stainless-retry-count,dpop"
CHAT = {"model": DEMO_MODEL, "messages": [{"role": "user", "content": "hi"}]}


def preflight(url: str, origin: str = PAGE, headers: str = SDK_HEADERS) -> httpx.Response:
    return httpx.options(
        url,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


@pytest.mark.parametrize(
    "path", ["/v1/chat/completions", "/api/v1/responses", "/embeddings", "/v1/models"]
)
def test_device_preflights_are_answered_for_any_origin(gateway: ServerThread, path: str) -> None:
    answer = preflight(gateway.url + path, origin="https://anything.example")
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == "*"
    allowed = answer.headers["access-control-allow-headers"].split(", ")
    assert allowed == SDK_HEADERS.split(",")
    assert int(answer.headers["access-control-max-age"]) >= 600
    assert answer.headers["x-request-id"].startswith("req_")


def test_headers_outside_the_sdks_are_not_allowed(gateway: ServerThread) -> None:
    answer = preflight(gateway.url + "/v1/chat/completions", headers="authorization,x-evil")
    assert answer.headers["access-control-allow-headers"] == "authorization"


def test_answers_expose_what_a_page_needs(gateway: ServerThread, upstream: FakeUpstream) -> None:
    answer = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Origin": PAGE, "Authorization": f"Bearer {mint()}"},
        json=CHAT,
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "*"
    exposed = answer.headers["access-control-expose-headers"].split(", ")
    assert {"x-request-id", "x-upstream-request-id"} <= set(exposed)
    refused = httpx.post(
        gateway.url + "/v1/chat/completions",
        headers={"Origin": PAGE, "Authorization": "Bearer not-a-key"},
        json=CHAT,
    )
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == "*"
    assert "x-dynaseal-refusal" in refused.headers["access-control-expose-headers"]


def test_management_and_console_routes_have_no_cors(gateway: ServerThread) -> None:
    for path in ("/v1/user/login", "/v1/api-keys", "/console/login"):
        answer = preflight(gateway.url + path)
        assert "access-control-allow-origin" not in answer.headers, path


@pytest.fixture(scope="module")
def gateway_with_cors_origins(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream, sink: CallbackSink
) -> Iterator[ServerThread]:
    with demo_gateway(
        tmp_path_factory.mktemp("cors"), upstream, callback_url=sink.url, cors_origins=[PAGE]
    ) as server:
        yield server


def test_cors_origins_opens_management_routes_and_leaves_device_ones_alone(
    gateway_with_cors_origins: ServerThread,
) -> None:
    login = preflight(gateway_with_cors_origins.url + "/v1/user/login", headers="content-type")
    assert login.headers["access-control-allow-origin"] == PAGE
    assert preflight(gateway_with_cors_origins.url + "/v1/user/login", origin="https://x.example")
    chat = httpx.post(
        gateway_with_cors_origins.url + "/v1/chat/completions",
        headers={"Origin": PAGE, "Authorization": f"Bearer {mint()}"},
        json=CHAT,
    )
    assert chat.headers.get_list("access-control-allow-origin") == ["*"]


def test_a_tenant_restricts_the_origins_its_keys_work_from(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    tenant = create_tenant(gateway.url, with_api_key=True)
    bad = httpx.patch(
        gateway.url + "/v1/user/me", headers=tenant.auth, json={"allowed_origins": ["not one"]}
    )
    assert bad.status_code == 400
    set_origins = httpx.patch(
        gateway.url + "/v1/user/me",
        headers=tenant.auth,
        json={"allowed_origins": ["HTTPS://Chat.Example:443/"]},
    )
    assert set_origins.status_code == 200 and set_origins.json()["allowed_origins"] == [PAGE]
    key = tenant.key()

    def call(path: str, origin: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} | ({"Origin": origin} if origin else {})
        if path == "/v1/models":
            return httpx.get(gateway.url + path, headers=headers)
        return httpx.post(gateway.url + path, headers=headers, json=CHAT)

    assert call("/v1/chat/completions", PAGE).status_code == 200
    assert call("/v1/chat/completions", None).status_code == 200  # an app, not a page
    for path in ("/v1/chat/completions", "/v1/models"):
        refused = call(path, "https://elsewhere.example")
        assert refused.status_code == 403, path
        assert refused.json()["error"]["code"] == "origin_not_allowed"
        assert refused.headers["access-control-allow-origin"] == "*"  # the page can read why
    assert upstream.count == 2
    cleared = httpx.patch(
        gateway.url + "/v1/user/me", headers=tenant.auth, json={"allowed_origins": None}
    )
    assert cleared.json()["allowed_origins"] is None
    assert call("/v1/chat/completions", "https://elsewhere.example").status_code == 200


def test_every_answer_carries_the_gateway_request_id(
    gateway: ServerThread, sink: CallbackSink, caplog: pytest.LogCaptureFixture
) -> None:
    key = mint()
    with caplog.at_level(logging.INFO, logger="dynaseal.access"):
        answer = httpx.post(
            gateway.url + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json=CHAT,
        )
    request_id = answer.headers["x-request-id"]
    assert request_id.startswith("req_")
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["request_id"] == request_id
    # The upstream's own id is passed on; its rate limits (the operator's) are not ...
    assert answer.headers["x-upstream-request-id"].startswith("upstream-req-")
    assert not set(RATE_LIMIT_HEADERS) & set(answer.headers)
    # ... but logged, on the request's access line.
    [line] = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert line.upstream_ratelimit == "limit-requests=100 remaining-requests=99"
    assert line.deployment == "default"
    for path in ("/healthz", "/v1/user/me", "/no/such/route"):
        assert httpx.get(gateway.url + path).headers["x-request-id"].startswith("req_"), path


def test_streams_carry_both_request_ids(gateway: ServerThread, tmp_path: Path) -> None:
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {mint()}"},
        json={**CHAT, "stream": True},
    ) as answer:
        assert answer.headers["x-request-id"].startswith("req_")
        assert answer.headers["x-upstream-request-id"].startswith("upstream-req-")
        assert not set(RATE_LIMIT_HEADERS) & set(answer.headers)
