"""OpenTelemetry tracing, optional and off by default: a span per stage of a request.

``TRACING=otlp`` turns it on (``pip install 'dynaseal[otel]'``); the standard ``OTEL_*``
variables configure the rest: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (default
``http://localhost:4318``), ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``,
``OTEL_TRACES_SAMPLER`` ... FastAPI's native telemetry makes each request's server span
(route, status, the caller's W3C ``traceparent``); the stages are its children, and the
work done in the background after the answer (ledger commits, callbacks) has traces of
its own.

Off, neither the SDK's tracing nor an exporter is imported, and :func:`span` hands back
one shared no-op context manager: a stage costs a global read.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from dynaseal import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from starlette.types import Scope

Exporter = Literal["off", "otlp"]
AttributeValue = str | int | float | bool
P = ParamSpec("P")
T = TypeVar("T")

#: Polled by load balancers and Prometheus: a trace each would drown the requests'.
_NOT_TRACED = frozenset({"/metrics", "/healthz", "/readyz"})
_NO_SPAN: AbstractContextManager[None] = nullcontext()

_provider: TracerProvider | None = None
_tracer: Tracer | None = None


def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None
) -> AbstractContextManager[Span | None]:
    """A span around a stage, child of the current one; a no-op while tracing is off."""
    tracer = _tracer
    if tracer is None:
        return _NO_SPAN
    return tracer.start_as_current_span(name, attributes=attributes)


def traced(
    name: str,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate a coroutine function: each call is a span (while tracing is on)."""

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(function)
        async def traced_call(*args: P.args, **kwargs: P.kwargs) -> T:
            tracer = _tracer
            if tracer is None:
                return await function(*args, **kwargs)
            with tracer.start_as_current_span(name):
                return await function(*args, **kwargs)

        return traced_call

    return decorate


def enabled() -> bool:
    return _tracer is not None


def annotate(attributes: Mapping[str, AttributeValue]) -> None:
    """Add attributes to the current span (nothing while tracing is off)."""
    if _tracer is not None:
        from opentelemetry import trace

        trace.get_current_span().set_attributes(attributes)


def start(exporter: Exporter, service_name: str) -> None:
    """Set tracing up for this process as ``TRACING`` says (once; later calls keep it)."""
    if exporter == "off" or _provider is not None:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    install(provider)


def install(provider: TracerProvider) -> None:
    """Trace with ``provider`` (the OTLP one :func:`start` makes, or a test's)."""
    global _provider, _tracer
    _provider = provider
    _tracer = provider.get_tracer("dynaseal", __version__)


def uninstall() -> None:
    global _provider, _tracer
    _provider = _tracer = None


def fastapi_options() -> dict[str, Any]:
    """``FastAPI(**fastapi_options())``: with tracing on, FastAPI's own request spans on
    our provider (its metrics and logs stay off: Prometheus and our log lines have them);
    with tracing off, none of it — nor FastAPI's look at the environment for a global
    provider on every request (a FastAPI that has no telemetry gets no options)."""
    if _provider is None:
        return {"telemetry": _OFF} if _fastapi_has_telemetry() else {}
    telemetry = {
        "tracer_provider": _provider,
        "metrics": False,
        "logs": False,
        "operation_spans": False,
        "exclude": _not_traced,
    }
    return {"telemetry": telemetry}


_OFF = {"tracing": False, "metrics": False, "logs": False}


def _fastapi_has_telemetry() -> bool:
    from fastapi import FastAPI

    return "telemetry" in inspect.signature(FastAPI.__init__).parameters


def _not_traced(scope: Scope) -> bool:
    return scope.get("path") in _NOT_TRACED


def check_installed(exporter: Exporter) -> None:
    """Raise :class:`ValueError` naming the extra when ``otlp`` lacks its packages (a
    settings check: the service refuses to start rather than trace nothing)."""
    if exporter == "off":
        return
    import importlib.util

    for module in ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            raise ValueError("otlp needs the OpenTelemetry packages: pip install 'dynaseal[otel]'")
