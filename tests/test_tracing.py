"""OpenTelemetry tracing: off by default and then free; on, a span per stage of a request
inside FastAPI's request span, the device's ``traceparent`` honoured, and the work done
after the answer (ledger commit, callback) traced too. Recorded with the SDK's in-memory
exporter, and once end to end over OTLP/HTTP with ``TRACING=otlp``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dynaseal.core import tracing
from dynaseal.core.original_demo import DEMO_TENANT_ID
from dynaseal.core.settings import ConfigError, load_settings
from dynaseal.gateway.settings import GatewaySettings
from support.callbacks import CallbackSink
from support.commands import run_dynaseal, started
from support.gateways import demo_gateway
from support.servers import free_port, serve
from support.tenants import DEMO_MODEL, original_key
from support.upstream import FakeUpstream
from support.waiting import eventually

MESSAGES = [{"role": "user", "content": "Say hello"}]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"  # the device's own span, as its traceparent says
STAGES = (
    "dynaseal.verify_key",
    "dynaseal.rate_limit",
    "dynaseal.concurrency",
    "dynaseal.budget.reserve",
    "dynaseal.upstream",
    "dynaseal.settle",
)


@pytest.fixture
def recorded() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


def named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def test_a_span_per_stage_of_a_request(
    tmp_path: Path, upstream: FakeUpstream, sink: CallbackSink, recorded: InMemorySpanExporter
) -> None:
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    with demo_gateway(tmp_path, upstream, callback_url=sink.url, rate_limit_key_rpm=100) as gateway:
        with openai.OpenAI(
            base_url=gateway.url + "/v1",
            api_key=original_key(max_tokens=1000),
            default_headers={"traceparent": traceparent},
            max_retries=0,
        ) as client:
            stream = client.chat.completions.create(
                model=DEMO_MODEL, messages=MESSAGES, stream=True
            )
            assert [chunk for chunk in stream]
        assert len(sink.wait_for(1)) == 1
        httpx.get(gateway.url + "/metrics")  # polled endlessly: never traced
        httpx.get(gateway.url + "/healthz")

        def background_done() -> bool:
            names = {s.name for s in recorded.get_finished_spans()}
            return {"dynaseal.ledger.commit", "dynaseal.callback.deliver"} <= names

        assert eventually(background_done)
    spans = list(recorded.get_finished_spans())

    request = [s for s in spans if s.context.trace_id == int(TRACE_ID, 16)]
    (server,) = [s for s in request if s.kind is SpanKind.SERVER]
    assert server.parent is not None and server.parent.span_id == int(PARENT_SPAN_ID, 16)
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["url.path"] == "/v1/chat/completions"
    for stage in STAGES:
        span = named(request, stage)
        assert span.parent is not None and span.parent.span_id == server.context.span_id, stage
        assert server.start_time <= span.start_time <= span.end_time <= server.end_time
    settle = named(request, "dynaseal.settle")
    release = named(request, "dynaseal.budget.release")
    assert release.parent is not None and release.parent.span_id == settle.context.span_id
    assert settle.attributes["dynaseal.tenant_id"] == DEMO_TENANT_ID
    assert settle.attributes["gen_ai.request.model"] == DEMO_MODEL
    assert settle.attributes["gen_ai.usage.input_tokens"] == 11
    assert settle.attributes["gen_ai.usage.output_tokens"] == 8
    assert named(request, "dynaseal.upstream").attributes["http.response.status_code"] == 200

    # After the answer, in the background: traces of their own.
    commit = next(s for s in spans if s.name == "dynaseal.ledger.commit")
    delivery = named(spans, "dynaseal.callback.deliver")
    assert commit.context.trace_id != server.context.trace_id
    assert commit.attributes["dynaseal.batch_size"] == 1
    assert delivery.attributes["dynaseal.tenant_id"] == DEMO_TENANT_ID
    paths = {s.attributes.get("url.path") for s in spans if s.kind is SpanKind.SERVER}
    assert not paths & {"/metrics", "/healthz"}


def test_tracing_off_imports_nothing_and_costs_a_shared_no_op(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from dynaseal.core import tracing\n"
        "from dynaseal.gateway.app import create_app\n"
        "from dynaseal.gateway.settings import GatewaySettings\n"
        f"create_app(GatewaySettings(database_url='sqlite:///{tmp_path}/gateway.db'))\n"
        "assert tracing.span('a') is tracing.span('b')\n"
        "ours = ('opentelemetry.sdk.trace', 'opentelemetry.exporter')\n"
        "print(sorted(m for m in sys.modules if m.startswith(ours)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


class Collector:
    """An OTLP/HTTP trace receiver on loopback: what an OpenTelemetry collector gets."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []  # (service.name, span name)
        self._lock = threading.Lock()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/traces", self._export, methods=["POST"])])

    async def _export(self, request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        with self._lock:
            for resource_spans in export.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append((attributes.get("service.name", ""), span.name))
        return Response(b"", media_type="application/x-protobuf")

    def names(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self.spans)


def test_tracing_otlp_sends_the_spans_where_the_otel_variables_say(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    collector = Collector()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serve(collector.app()) as receiver:
        env = {
            "TRACING": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OPENAI_BASE_URL": f"{upstream.url}/v1",
        }
        with started("gateway", "--port", str(port), "--demo-data", cwd=tmp_path, env=env) as gw:
            gw.wait_ready(url + "/readyz")
            with openai.OpenAI(
                base_url=url + "/v1", api_key=original_key(max_tokens=1000), max_retries=0
            ) as client:
                client.chat.completions.create(model=DEMO_MODEL, messages=MESSAGES)
            wanted = {("dynaseal-gateway", stage) for stage in STAGES if "rate" not in stage}
            assert eventually(lambda: wanted <= collector.names(), timeout=30), gw.log


def test_an_unknown_tracing_exporter_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = run_dynaseal("gateway", "--port", "0", cwd=tmp_path, env={"TRACING": "jaeger"})
    assert result.returncode == 2, result.stderr
    assert "TRACING" in result.stderr and "Traceback" not in result.stderr


def test_otlp_without_the_opentelemetry_packages_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"TRACING: .*pip install 'dynaseal\[otel\]'"):
        load_settings(GatewaySettings, tracing="otlp")
