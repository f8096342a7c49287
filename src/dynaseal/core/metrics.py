"""Prometheus metrics both services share: a registry per app, the HTTP metrics the
access-log middleware records, ``GET /metrics`` and who may read it, and
prometheus-client's multi-process mode for ``--workers``.

A registry per app rather than prometheus-client's global one: ``dynaseal demo`` and the
tests run several services in one process, and each ``/metrics`` must show its own.
With ``--workers`` every worker writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
(:mod:`.metrics_processes`) and a scrape, whichever worker answers it, adds up every
worker's files.

Labels stay bounded: a route is its path template (never the raw path), an unknown
method is ``other``, and label values that come from keys (tenant, model) are capped by
:class:`BoundedValues`. Event ids and end users (``sub``) are never labels.
"""

from __future__ import annotations

import hmac
import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from dynaseal.core.errors import APIError, unauthorized
from dynaseal.core.metrics_processes import multiprocess_directory

PATH = "/metrics"

#: Whole requests, streams included: milliseconds for refusals, minutes for long answers.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: The label of a request no route matched (scanners: their paths are not labels).
UNMATCHED = "unmatched"
OTHER = "other"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

GaugeMode = Literal["livesum", "mostrecent"]


class BoundedValues:
    """At most ``limit`` distinct values of a label; later newcomers count as ``other``.

    Tenants and models reach the metrics only from verified keys, but a tenant may mint
    keys for any model name: the cap keeps one tenant from growing the series without end.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


class RouteLabels:
    """The ``route`` label of a request: the template of the route that served it,
    without the prefix it was reached under (``/v1/chat/completions``,
    ``/chat/completions`` and ``/api/v1/chat/completions`` are one route). Found once per
    endpoint, then cached: the labels are as many as the routes."""

    def __init__(self) -> None:
        self._prefixes: tuple[str, ...] = ()
        self._by_endpoint: dict[Any, str] = {}

    def served_under(self, prefixes: Sequence[str]) -> None:
        """The prefixes routes are served under as well as at the root."""
        self._prefixes = tuple(p for p in prefixes if p)

    def of(self, scope: Scope) -> str:
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED
        label = self._by_endpoint.get(endpoint)
        if label is None:
            label = self._by_endpoint[endpoint] = self._template(scope)
        return label

    def _template(self, scope: Scope) -> str:
        root: str = scope.get("root_path", "")  # the mount's path, inside a mounted app
        route = scope.get("route")
        template = getattr(route, "path_format", None) or getattr(route, "path", None)
        if isinstance(template, str) and template:
            template = root + template
        elif not (inspect.isroutine(scope["endpoint"]) or inspect.isclass(scope["endpoint"])):
            return root + "/{path}"  # an app mounted there (static files, a sub-app's 404)
        elif not scope.get("path_params"):  # a route without parameters: its path is its template
            template = scope["path"]
        else:
            return OTHER
        for prefix in self._prefixes:
            if template.startswith(prefix + "/"):
                return template.removeprefix(prefix)
        return template


class ServiceMetrics:
    """One service's metrics: its registry, its HTTP metrics, and its scrape."""

    def __init__(self) -> None:
        # No *_created twin of every counter and histogram: it would double each scrape.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self._directory = multiprocess_directory()
        if self._directory is None:  # per process: meaningless summed over workers
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._before_scrape: list[Callable[[], Awaitable[None]]] = []
        self.http = HttpMetrics(self)

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float],
    ) -> Histogram:
        return Histogram(name, documentation, labels, registry=self.registry, buckets=buckets)

    def gauge(
        self, name: str, documentation: str, labels: Sequence[str] = (), *, mode: GaugeMode
    ) -> Gauge:
        """``mode`` says how the workers' values add up: ``livesum`` for what each holds
        (requests in flight), ``mostrecent`` for what any of them can measure (a table)."""
        return Gauge(name, documentation, labels, registry=self.registry, multiprocess_mode=mode)

    def before_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Run ``refresh`` before each scrape (values read from the database)."""
        self._before_scrape.append(refresh)

    async def exposition(self) -> bytes:
        for refresh in self._before_scrape:
            await refresh()
        if self._directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


class HttpMetrics:
    """What the access-log middleware records for every request: counts by route, method
    and status, durations by route, and what is in flight."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.routes = RouteLabels()
        self._requests = metrics.counter(
            "dynaseal_http_requests_total",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
        )
        self._seconds = metrics.histogram(
            "dynaseal_http_request_duration_seconds",
            "From a request's arrival to the end of its answer (a stream's last event).",
            ("route",),
            buckets=REQUEST_BUCKETS,
        )
        self._in_flight = metrics.gauge(
            "dynaseal_http_requests_in_flight", "Requests being served.", mode="livesum"
        )
        self._streams = metrics.gauge(
            "dynaseal_http_streams_open",
            "Answers being streamed (text/event-stream).",
            mode="livesum",
        )
        # One lookup per request instead of prometheus-client's labels() each time.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def started(self) -> None:
        self._in_flight.inc()

    def stream_opened(self) -> None:
        self._streams.inc()

    def finished(self, scope: Scope, status: int, seconds: float, *, streamed: bool) -> None:
        self._in_flight.dec()
        if streamed:
            self._streams.dec()
        method = scope["method"]
        key = (self.routes.of(scope), method if method in _METHODS else OTHER, status)
        series = self._series.get(key)
        if series is None:
            route, method, _ = key
            series = self._series[key] = (
                self._requests.labels(route, method, str(status)),
                self._seconds.labels(route),
            )
        series[0].inc()
        series[1].observe(seconds)


class MetricsAccess:
    """Who may read ``/metrics``: it names tenants and their usage, which is business data.

    With ``METRICS_TOKEN`` set, whoever sends it as a bearer token (compared in constant
    time). Without, only a client on this machine talking to the service directly: a
    request that came through a proxy (it carries forwarding headers) is refused, so a
    load balancer on the same host cannot expose it.
    """

    _FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")

    def __init__(self, token: SecretStr | None) -> None:
        self._token = token.get_secret_value().encode() if token is not None else None

    def check(self, request: Request) -> None:
        if self._token is not None:
            scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self._token
            ):
                raise unauthorized("Send METRICS_TOKEN as a bearer token to read the metrics.")
            return
        headers = request.headers
        direct = not any(name in headers for name in self._FORWARDING_HEADERS)
        if not (direct and request.client is not None and _loopback(request.client.host)):
            raise APIError(
                403,
                "The metrics are served to this machine only; set METRICS_TOKEN to scrape "
                "them from elsewhere.",
                code="metrics_forbidden",
            )


def _loopback(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def scrape_endpoint(
    metrics: ServiceMetrics, token: SecretStr | None
) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics``: the Prometheus text format, to those :class:`MetricsAccess` lets in."""
    access = MetricsAccess(token)

    async def scrape(request: Request) -> Response:
        access.check(request)
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return scrape
