"""``/metrics`` after real traffic: the OpenAI SDK as the device, the fake upstream, a
gateway on loopback (in this process, and as ``dynaseal gateway --workers 2``). Every
counter must have moved by exactly what was sent; who may read the metrics; the
reference backend's own metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import openai
import orjson
import pytest
from pydantic import SecretStr

from dynaseal.backend import create_app as create_backend
from dynaseal.backend.demo_data import DEMO_USER_PASSWORD, DEMO_USER_USERNAME
from dynaseal.core.original_demo import DEMO_TENANT_ID, DEMO_WEBHOOK_SECRET
from support.backend import backend_settings, login
from support.callbacks import CallbackSink, signed_headers
from support.commands import Service, started
from support.databases import fresh_database
from support.gateways import demo_gateway
from support.metrics import Scrape, scrape
from support.servers import ServerThread, free_port, serve
from support.tenants import ADMIN_PASSWORD, DEMO_MODEL, bearer, mint, original_key
from support.upstream import FakeUpstream
from support.waiting import eventually

MESSAGES = [{"role": "user", "content": "Say hello"}]
CHAT = "/v1/chat/completions"
ROUTE = "/chat/completions"  # the route label: the same under /v1, /api/v1 and the root
PROMPT_TOKENS, COMPLETION_TOKENS = 11, 8  # what the fake upstream reports per completion


def device(base_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)


def test_counters_move_by_what_the_gateway_served(
    tmp_path: Path, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    with demo_gateway(tmp_path, upstream, callback_url=sink.url) as gateway:
        key = original_key(max_tokens=10_000)
        with device(gateway.url, key) as client:
            for _ in range(2):
                client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
            streamed = client.chat.completions.create(
                model=DEMO_MODEL, messages=MESSAGES, stream=True
            )
            assert [c for c in streamed]
            with pytest.raises(openai.PermissionDeniedError):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        with (
            device(gateway.url, "not-a-key") as stranger,
            pytest.raises(openai.AuthenticationError),
        ):
            stranger.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
        for _ in range(3):  # scanners: their paths must not become labels
            httpx.get(f"{gateway.url}/no/such/{uuid.uuid4().hex}")
        assert len(sink.wait_for(3)) == 3

        def delivered() -> Scrape | None:
            seen = scrape(gateway.url)
            attempts = seen.value("dynaseal_gateway_callback_attempts_total", outcome="delivered")
            return seen if attempts == 3 else None

        metrics = eventually(delivered)
        assert metrics is not None, "the three callbacks were not counted as delivered"

    requests = "dynaseal_http_requests_total"
    assert metrics.value(requests, route=ROUTE, method="POST", status="200") == 3
    assert metrics.value(requests, route=ROUTE, method="POST", status="401") == 1
    assert metrics.value(requests, route=ROUTE, method="POST", status="403") == 1
    assert metrics.value(requests, route="unmatched", method="GET", status="404") == 3
    assert metrics.value("dynaseal_http_request_duration_seconds_count", route=ROUTE) == 5
    refusals = "dynaseal_gateway_refusals_total"
    assert metrics.value(refusals, reason="invalid_key") == 1
    assert metrics.value(refusals, reason="model") == 1
    assert metrics.total(refusals) == 2

    tenant = {"tenant": DEMO_TENANT_ID, "model": DEMO_MODEL}
    settled = "dynaseal_gateway_requests_settled_total"
    assert metrics.value(settled, **tenant, status="completed") == 3
    assert metrics.total(settled) == 3
    tokens = "dynaseal_gateway_tokens_total"
    assert metrics.value(tokens, **tenant, kind="prompt") == 3 * PROMPT_TOKENS
    assert metrics.value(tokens, **tenant, kind="completion") == 3 * COMPLETION_TOKENS
    assert metrics.value("dynaseal_gateway_cost_usd_total", **tenant) == 0  # no price table
    first_token = "dynaseal_gateway_time_to_first_token_seconds_count"
    assert metrics.value(first_token, model=DEMO_MODEL) == 3
    upstream_count = "dynaseal_gateway_upstream_response_seconds_count"
    assert metrics.value(upstream_count, outcome="2xx") == 3
    assert metrics.total(upstream_count) == 3
    store = "dynaseal_gateway_budget_store_seconds_count"
    assert metrics.value(store, operation="reserve") == 3
    assert metrics.value(store, operation="release") == 3

    assert metrics.value("dynaseal_gateway_ledger_batch_size_sum") == 3  # each request once
    assert metrics.value("dynaseal_gateway_ledger_commit_seconds_count") >= 1
    assert metrics.value("dynaseal_gateway_ledger_commit_failures_total") == 0
    assert metrics.value("dynaseal_gateway_ledger_waiting") == 0
    assert metrics.total("dynaseal_gateway_callback_attempts_total") == 3
    assert metrics.value("dynaseal_gateway_callback_attempt_seconds_count") == 3
    assert metrics.value("dynaseal_gateway_outbox_backlog", status="pending") == 0
    assert metrics.value("dynaseal_gateway_outbox_oldest_pending_seconds") == 0

    assert metrics.value("dynaseal_http_requests_in_flight") == 1  # the scrape itself
    assert metrics.value("dynaseal_http_streams_open") == 0
    assert metrics.value("process_resident_memory_bytes") > 0
    # Bounded labels: a tenant yes; never an event id, an end user or a raw path.
    assert metrics.label_names() <= {
        "route", "method", "status", "reason", "tenant", "model", "kind", "operation",
        "outcome", "le", "generation", "implementation", "major", "minor",
        "patchlevel", "version",
    }  # fmt: skip
    assert "evt-" not in metrics.text and "/no/such" not in metrics.text


def test_the_outbox_backlog_is_counted_at_scrape(
    tmp_path: Path, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    sink.fail_next, sink.fail_status = 100, 503  # the tenant's backend is down
    with demo_gateway(
        tmp_path, upstream, callback_url=sink.url, callback_retry_schedule_seconds=[60]
    ) as gateway:
        with device(gateway.url, original_key(max_tokens=10_000)) as client:
            for _ in range(2):
                client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)

        def attempted() -> Scrape | None:
            seen = scrape(gateway.url)
            failed = seen.value("dynaseal_gateway_callback_attempts_total", outcome="failed")
            return seen if failed == 2 else None

        metrics = eventually(attempted)
        assert metrics is not None
    assert metrics.value("dynaseal_gateway_outbox_backlog", status="pending") == 2
    assert metrics.value("dynaseal_gateway_outbox_backlog", status="disabled") == 0
    assert metrics.value("dynaseal_gateway_outbox_oldest_pending_seconds") > 0
    assert metrics.value("dynaseal_gateway_callback_attempts_total", outcome="delivered") == 0


def test_only_this_machine_reads_the_metrics_without_a_token(gateway: ServerThread) -> None:
    assert scrape(gateway.url).value("dynaseal_http_requests_in_flight") >= 1
    # Through a proxy on this machine: the proxy's loopback address is no credential.
    for header in ("X-Forwarded-For", "X-Real-IP", "Forwarded"):
        proxied = httpx.get(gateway.url + "/metrics", headers={header: "203.0.113.9"})
        assert proxied.status_code == 403, proxied.text
        error = proxied.json()["error"]
        assert error["code"] == "metrics_forbidden" and "METRICS_TOKEN" in error["message"]
        assert "dynaseal_" not in proxied.text


def test_the_backend_counts_keys_and_callbacks_behind_its_token(tmp_path: Path) -> None:
    token = "metrics-token-for-tests"
    with fresh_database(tmp_path, "backend") as database_url:
        settings = backend_settings(database_url).model_copy(
            update={"metrics_token": SecretStr(token)}
        )
        with serve(create_backend(settings, demo_data=True)) as backend:
            http = httpx.Client(base_url=backend.url)
            assert http.get("/metrics").status_code == 401
            wrong = http.get("/metrics", headers=bearer("nope"))
            assert wrong.status_code == 401 and wrong.json()["error"]["message"]
            user = bearer(login(http, DEMO_USER_USERNAME, DEMO_USER_PASSWORD)["access_token"])
            events = [http.post("/v1/key/create", headers=user).json()["event_id"] for _ in "ab"]

            def post(payload: dict[str, object] | bytes, msg_id: str, signed: bool = True) -> int:
                body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
                headers = signed_headers(DEMO_WEBHOOK_SECRET, body, msg_id) if signed else {}
                return http.post("/v1/callback/usage", content=body, headers=headers).status_code

            usage = {"type": "usage", "event_id": events[0], "tokens": 5, "content": "hi"}
            assert post(usage, "msg_1") == 200
            assert post(usage, "msg_1") == 200  # the gateway retried: stored once
            assert post(usage, "msg_2", signed=False) == 401
            assert post(b'{"type": "usage"}', "msg_3") == 400
            assert post({"type": "test", "event_id": "evt_test", "tokens": 0}, "msg_4") == 200
            metrics = scrape(backend.url, headers=bearer(token))
            http.close()
    assert metrics.value("dynaseal_backend_keys_minted_total") == 2
    received = "dynaseal_backend_callbacks_received_total"
    for outcome in ("stored", "duplicate", "invalid_signature", "malformed", "test"):
        assert metrics.value(received, outcome=outcome) == 1, outcome
    requests = "dynaseal_http_requests_total"
    assert metrics.value(requests, route="/key/create", method="POST", status="200") == 2
    assert metrics.value(requests, route="/metrics", method="GET", status="401") == 2
    assert not any(event in metrics.text for event in events)


def _worker_pids(service: Service) -> list[int]:
    lines = [json.loads(line) for line in service.log.splitlines() if line.startswith("{")]
    return [line["pid"] for line in lines if line["message"].startswith("Started server")]


def _served_by(service: Service, path: str, status: int = 200) -> set[int]:
    lines = [json.loads(line) for line in service.log.splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if line.get("path") == path and line["status"] == status}


def _stale_values(directory: Path) -> None:
    """What a previous run of the gateway left in PROMETHEUS_MULTIPROC_DIR."""
    script = (
        "from prometheus_client import Counter\n"
        "Counter('dynaseal_gateway_refusals', 'x', ['reason']).labels('invalid_key').inc(100)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert list(directory.glob("counter_*.db"))


def test_workers_add_up_and_a_dead_worker_leaves_no_request_in_flight(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    _stale_values(shared)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with fresh_database(tmp_path, "gateway") as database_url:
        env = {
            "DATABASE_URL": database_url,
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
            "ADMIN_USER_PASSWORD": ADMIN_PASSWORD,
            "LOG_FORMAT": "json",
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
        }
        args = ("gateway", "--port", str(port), "--workers", "2", "--demo-data")
        with started(*args, cwd=tmp_path, env=env) as gateway:
            gateway.wait_ready(url + "/readyz")
            key = mint(max_tokens=100_000)
            sent = 0
            # A new connection each time, until both workers have served completions.
            while sent < 4 or len(_served_by(gateway, CHAT)) < 2:
                assert sent < 60, f"one worker served everything:\n{gateway.log}"
                with device(url, key) as client:
                    client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
                sent += 1
            refused = httpx.post(url + CHAT, headers=bearer("x.y.z"), json={})
            assert refused.status_code == 401

            scrapes = [scrape(url)]  # until both workers answered one: they must agree
            while len(_served_by(gateway, "/metrics")) < 2:
                assert len(scrapes) < 60, "one worker answered every scrape"
                scrapes.append(scrape(url))
            for metrics in scrapes:
                requests = "dynaseal_http_requests_total"
                assert metrics.value(requests, route=ROUTE, method="POST", status="200") == sent
                assert metrics.value("dynaseal_gateway_refusals_total", reason="invalid_key") == 1
                tenant = {"tenant": DEMO_TENANT_ID, "model": DEMO_MODEL}
                tokens = "dynaseal_gateway_tokens_total"
                assert metrics.value(tokens, **tenant, kind="prompt") == sent * PROMPT_TOKENS
                assert metrics.value(tokens, **tenant, kind="completion") == (
                    sent * COMPLETION_TOKENS
                )
                settled = "dynaseal_gateway_requests_settled_total"
                assert metrics.value(settled, **tenant, status="completed") == sent

            # A stream in flight when its worker is killed: the supervisor replaces the
            # worker, and its request and stream leave the gauges.
            upstream.script.words, upstream.script.chunk_delay = 3, 2.0
            body = {"model": DEMO_MODEL, "messages": MESSAGES, "stream": True}
            with httpx.stream("POST", url + CHAT, headers=bearer(key), json=body) as stream:
                chunks = stream.iter_raw()
                assert next(chunks).startswith(b"data: ")  # the answer has started
                open_now = scrape(url)
                assert open_now.value("dynaseal_http_streams_open") == 1
                assert open_now.value("dynaseal_http_requests_in_flight") >= 2
                for pid in _worker_pids(gateway):
                    os.kill(pid, signal.SIGKILL)
                gateway.wait_ready(url + "/readyz")
                assert eventually(lambda: len(_worker_pids(gateway)) == 4, timeout=90)

            def only_the_scrape_in_flight() -> Scrape | None:
                seen = scrape(url)
                return seen if seen.value("dynaseal_http_requests_in_flight") == 1 else None

            after = eventually(only_the_scrape_in_flight)
            assert after is not None, "a dead worker's requests are still counted in flight"
            assert gateway.stop() == 0, gateway.log
    assert after.value("dynaseal_http_streams_open") == 0
    # Counters outlive the workers that counted them.
    requests = after.value("dynaseal_http_requests_total", route=ROUTE, method="POST", status="200")
    assert requests == sent
    assert after.value("dynaseal_gateway_refusals_total", reason="invalid_key") == 1
