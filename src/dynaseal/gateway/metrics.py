"""The gateway's Prometheus metrics, counted where the work already happens.

No middleware of its own: the access-log middleware counts HTTP requests
(:class:`~dynaseal.core.metrics.HttpMetrics`); the refusal counter counts refusals; the
Settler counts each admitted request once it is measured (tokens, cost, time to first
token); the gatekeeper and the Settler time the budget store; :class:`MeasuredUpstream`
times the upstream; the ledger writer times its group commits; the delivery worker
counts callback attempts. The outbox backlog is read from the database at scrape time.

Each hook is a dictionary lookup and a few additions: a request costs a few microseconds
(``benchmarks/metrics_overhead.py`` measures it). With tracing on
(:mod:`dynaseal.core.tracing`) the timed stages are spans as well.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

from dynaseal.core import tracing
from dynaseal.core.metrics import REQUEST_BUCKETS, BoundedValues, ServiceMetrics
from dynaseal.gateway.callbacks import outbox
from dynaseal.gateway.callbacks.retry import Outcome
from dynaseal.gateway.refusals import REASONS
from dynaseal.gateway.relay.attempts import Attempt as UpstreamAttempt
from dynaseal.gateway.relay.upstream import Upstream, UpstreamError, UpstreamReply

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from dynaseal.gateway.callbacks.outbox import Attempt
    from dynaseal.gateway.settlement.measure import Settled
    from dynaseal.storage import Database

log = logging.getLogger("dynaseal.gateway")

#: Distinct tenants and models labelled per process; more are counted as ``other``.
MAX_TENANTS = 1000
MAX_MODELS = 100
#: How long a scrape waits for the outbox count before reporting it unknown (NaN).
OUTBOX_QUERY_SECONDS = 2.0

FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60)
STORE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50)
CALLBACK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Outbox rows still to go: ``pending`` (being sent or retried), ``disabled`` (held while
#: the tenant's endpoint answered 410).
BACKLOG_STATUSES = ("pending", "disabled")


@dataclass(slots=True)
class _Series:
    """The children of one (tenant, model): looked up once, then only added to."""

    prompt: Counter
    completion: Counter
    cost: Counter
    first_token: Histogram


class GatewayMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__()
        self._tenants = BoundedValues(MAX_TENANTS)
        self._models = BoundedValues(MAX_MODELS)
        self._refusals = self.counter(
            "dynaseal_gateway_refusals_total",
            "Requests with a dynamic key refused before going upstream, by reason.",
            ("reason",),
        )
        for reason in REASONS:
            self._refusals.labels(reason)
        self._requests = self.counter(
            "dynaseal_gateway_requests_settled_total",
            "Admitted requests, settled: by tenant, model and how they ended "
            "(completed, failed, client_disconnected).",
            ("tenant", "model", "status"),
        )
        self._tokens = self.counter(
            "dynaseal_gateway_tokens_total",
            "Tokens used by settled requests, by tenant, model and kind (prompt, completion).",
            ("tenant", "model", "kind"),
        )
        self._cost = self.counter(
            "dynaseal_gateway_cost_usd_total",
            "What settled requests cost by the gateway's price table, in USD.",
            ("tenant", "model"),
        )
        self._first_token = self.histogram(
            "dynaseal_gateway_time_to_first_token_seconds",
            "From admission (key verified, budget reserved) to the first generated token.",
            ("model",),
            buckets=FIRST_TOKEN_BUCKETS,
        )
        self._upstream = self.histogram(
            "dynaseal_gateway_upstream_response_seconds",
            "From sending a request upstream to the upstream's response headers, by "
            "outcome (2xx, 4xx, 5xx, or error: no answer).",
            ("outcome",),
            buckets=REQUEST_BUCKETS,
        )
        self._budget = self.histogram(
            "dynaseal_gateway_budget_store_seconds",
            "Calls to the budget store (memory, database or Redis), by operation.",
            ("operation",),
            buckets=STORE_BUCKETS,
        )
        self._commit = self.histogram(
            "dynaseal_gateway_ledger_commit_seconds",
            "Group commits of settled requests (ledger rows, budgets, callbacks).",
            buckets=COMMIT_BUCKETS,
        )
        self._batch = self.histogram(
            "dynaseal_gateway_ledger_batch_size",
            "Settled requests written per group commit.",
            buckets=BATCH_BUCKETS,
        )
        self._commit_failures = self.counter(
            "dynaseal_gateway_ledger_commit_failures_total",
            "Group commits that failed (the batch is kept and retried).",
        )
        self._ledger_waiting = self.gauge(
            "dynaseal_gateway_ledger_waiting",
            "Settled requests not yet written, as of the last group commit.",
            mode="livesum",
        )
        self._attempts = self.counter(
            "dynaseal_gateway_callback_attempts_total",
            "Usage callback delivery attempts, by outcome.",
            ("outcome",),
        )
        for outcome in Outcome:
            self._attempts.labels(outcome.value)
        self._attempt_seconds = self.histogram(
            "dynaseal_gateway_callback_attempt_seconds",
            "How long one callback delivery attempt took.",
            buckets=CALLBACK_BUCKETS,
        )
        self._given_up = self.counter(
            "dynaseal_gateway_callbacks_given_up_total",
            "Callbacks that will not be sent again, by reason (exhausted: every retry "
            "failed; refused_url: the URL policy refused the target).",
            ("reason",),
        )
        self._outbox = self.gauge(
            "dynaseal_gateway_outbox_backlog",
            "Callbacks in the outbox not yet delivered, by status (pending; disabled: "
            "held while the endpoint answered 410). Counted in the database at scrape.",
            ("status",),
            mode="mostrecent",
        )
        self._outbox_age = self.gauge(
            "dynaseal_gateway_outbox_oldest_pending_seconds",
            "Age of the oldest callback still pending (0 when none).",
            mode="mostrecent",
        )
        self._series: dict[tuple[str, str], _Series] = {}
        self._settled: dict[tuple[str, str, str], Counter] = {}
        self._budget_operations: dict[str, Histogram] = {}
        self._upstream_outcomes: dict[str, Histogram] = {}

    # -- admission ------------------------------------------------------------------------

    def refused(self, reason: str) -> None:
        """A request refused before going upstream (``reason`` as the console counts it)."""
        self._refusals.labels(reason).inc()

    def budget_call(self, operation: str) -> _Stage:
        """Times a call to the budget store (``reserve``, ``release``), and traces it."""
        child = self._budget_operations.get(operation)
        if child is None:
            child = self._budget_operations[operation] = self._budget.labels(operation)
        return _Stage(child, f"dynaseal.budget.{operation}")

    # -- settlement -----------------------------------------------------------------------

    def settled(self, settled: Settled) -> None:
        """An admitted request ended and was measured: count it, its tokens, its wait."""
        admission = settled.admission
        tenant = self._tenants(admission.grant.tenant_id)
        model = self._models(admission.model)
        series = self._of(tenant, model)
        usage = settled.usage
        series.prompt.inc(usage.prompt_tokens)
        series.completion.inc(usage.completion_tokens)
        timing = settled.timing
        if timing.first_token_at is not None:
            series.first_token.observe(max(0.0, timing.first_token_at - timing.started_at))
        key = (tenant, model, settled.status)
        requests = self._settled.get(key)
        if requests is None:
            requests = self._settled[key] = self._requests.labels(*key)
        requests.inc()
        if tracing.enabled():
            tracing.annotate(
                {
                    "dynaseal.tenant_id": admission.grant.tenant_id,
                    "dynaseal.status": settled.status,
                    "gen_ai.request.model": admission.model,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                }
            )

    def cost(self, tenant_id: str, model: str, usd: Decimal) -> None:
        """Add what a settled request cost (USD, from the gateway's price table)."""
        self._of(self._tenants(tenant_id), self._models(model)).cost.inc(float(usd))

    def _of(self, tenant: str, model: str) -> _Series:
        series = self._series.get((tenant, model))
        if series is None:
            series = self._series[tenant, model] = _Series(
                self._tokens.labels(tenant, model, "prompt"),
                self._tokens.labels(tenant, model, "completion"),
                self._cost.labels(tenant, model),
                self._first_token.labels(model),
            )
        return series

    @contextmanager
    def ledger_commit(self, batch: int, waiting: int) -> Iterator[None]:
        """Times one group commit of ``batch`` settled requests, ``waiting`` more queued
        (once per batch, not per request: a generator is cheap enough)."""
        self._ledger_waiting.set(batch + waiting)
        with tracing.span("dynaseal.ledger.commit", {"dynaseal.batch_size": batch}):
            started = time.perf_counter()
            try:
                yield
            except Exception:  # not a cancellation at shutdown: that is no failed commit
                self._commit_failures.inc()
                raise
        self._commit.observe(time.perf_counter() - started)
        self._batch.observe(batch)
        self._ledger_waiting.set(waiting)

    def upstream_answered(self, outcome: str, seconds: float) -> None:
        """The upstream answered with headers (``2xx`` ...) or not at all (``error``)."""
        child = self._upstream_outcomes.get(outcome)
        if child is None:
            child = self._upstream_outcomes[outcome] = self._upstream.labels(outcome)
        child.observe(seconds)

    # -- callbacks ------------------------------------------------------------------------

    def callback_attempted(self, attempt: Attempt) -> None:
        result, step = attempt.result, attempt.step
        self._attempts.labels(result.outcome.value).inc()
        self._attempt_seconds.observe(result.duration_ms / 1000)
        if step.exhausted:
            self._given_up.labels("exhausted").inc()
        elif result.outcome is Outcome.REFUSED_URL:
            self._given_up.labels("refused_url").inc()

    def watch_outbox(self, db: Database) -> None:
        """Count the outbox's backlog in ``db`` at each scrape."""

        async def refresh() -> None:
            try:
                counts, oldest = await asyncio.wait_for(
                    outbox.backlog(db, BACKLOG_STATUSES), OUTBOX_QUERY_SECONDS
                )
            except Exception as exc:  # unknown, rather than an old value taken for news
                log.warning("metrics: could not count the callback outbox: %s", exc)
                for status in BACKLOG_STATUSES:
                    self._outbox.labels(status).set(math.nan)
                self._outbox_age.set(math.nan)
                return
            for status in BACKLOG_STATUSES:
                self._outbox.labels(status).set(counts.get(status, 0))
            age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
            self._outbox_age.set(max(0.0, age))

        self.before_scrape(refresh)


class _Stage:
    """Times a stage into a histogram and, with tracing on, makes it a span."""

    __slots__ = ("_histogram", "_span", "_started")

    def __init__(self, histogram: Histogram, span_name: str) -> None:
        self._histogram = histogram
        self._span: AbstractContextManager[Any] = tracing.span(span_name)
        self._started = 0.0

    def __enter__(self) -> None:
        self._span.__enter__()
        self._started = time.perf_counter()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._histogram.observe(time.perf_counter() - self._started)
        self._span.__exit__(kind, error, traceback)


def _outcome(status_code: int) -> str:
    return f"{status_code // 100}xx" if 200 <= status_code < 600 else "error"


class MeasuredUpstream:
    """The upstream, timed from sending a request to its answer's headers (and traced)."""

    def __init__(self, upstream: Upstream, metrics: GatewayMetrics) -> None:
        self._upstream = upstream
        self._metrics = metrics
        self.description = upstream.description

    async def send(
        self,
        body: dict[str, Any],
        *,
        path: str = "/chat/completions",
        attempts: list[UpstreamAttempt] | None = None,
    ) -> UpstreamReply:
        started = time.perf_counter()
        with tracing.span("dynaseal.upstream") as span:
            try:
                reply = await self._upstream.send(body, path=path, attempts=attempts)
            except UpstreamError:
                self._metrics.upstream_answered("error", time.perf_counter() - started)
                raise
            if span is not None:
                span.set_attribute("http.response.status_code", reply.status_code)
        self._metrics.upstream_answered(_outcome(reply.status_code), time.perf_counter() - started)
        return reply

    async def probe(self) -> None:
        await self._upstream.probe()

    async def aclose(self) -> None:
        await self._upstream.aclose()
