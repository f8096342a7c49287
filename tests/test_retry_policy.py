"""What one callback attempt's outcome means for its delivery (``callbacks.retry``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dynaseal.gateway.callbacks.retry import AttemptResult, Outcome, RetryPolicy, Step

SCHEDULE = (5.0, 60.0, 600.0)


def result(
    outcome: Outcome,
    status: int | None = None,
    *,
    error: str | None = None,
    retry_after: float | None = None,
) -> AttemptResult:
    return AttemptResult(outcome, status, retry_after, error, 12)


def test_a_delivered_callback_is_done() -> None:
    assert RetryPolicy(SCHEDULE).after(result(Outcome.DELIVERED, 204), 1) == Step("delivered", None)


def test_gone_disables_the_endpoint_at_once() -> None:
    step = RetryPolicy(SCHEDULE).after(result(Outcome.GONE, 410, error="HTTP 410"), 1)
    assert step == Step("disabled", "HTTP 410: endpoint disabled")


def test_a_refused_url_is_not_retried() -> None:
    refused = result(Outcome.REFUSED_URL, error="callback URL refused: private address")
    assert RetryPolicy(SCHEDULE).after(refused, 1) == Step(
        "failed", "callback URL refused: private address"
    )


def test_failures_follow_the_schedule_then_give_up() -> None:
    policy = RetryPolicy(SCHEDULE, jitter=lambda: 1.0)
    failed = result(Outcome.FAILED, 503, error="HTTP 503")
    assert [policy.after(failed, n).retry_in for n in (1, 2, 3)] == list(SCHEDULE)
    assert policy.after(failed, 4) == Step("failed", "HTTP 503", exhausted=True)


def test_retry_after_stretches_a_wait_up_to_the_longest_planned_one() -> None:
    policy = RetryPolicy(SCHEDULE, jitter=lambda: 1.0)
    assert (
        policy.after(result(Outcome.FAILED, 429, error="HTTP 429", retry_after=30.0), 1).retry_in
        == 30.0
    )
    assert (
        policy.after(result(Outcome.FAILED, 429, error="HTTP 429", retry_after=1.0), 1).retry_in
        == 5.0
    )
    assert (
        policy.after(result(Outcome.FAILED, 429, error="HTTP 429", retry_after=1e6), 1).retry_in
        == 600.0
    )


def test_the_default_jitter_keeps_within_a_fifth_of_the_plan() -> None:
    policy = RetryPolicy(SCHEDULE)
    failed = result(Outcome.FAILED, 503, error="HTTP 503")
    waits = {policy.after(failed, 2).retry_in for _ in range(200)}
    assert len(waits) > 1 and all(w is not None and 48.0 <= w <= 72.0 for w in waits)


@given(
    schedule=st.lists(st.floats(0.0, 1e5), min_size=1, max_size=10),
    attempt=st.integers(1, 12),
    retry_after=st.none() | st.floats(0.0, 1e6),
    jitter=st.floats(0.8, 1.2),
)
def test_a_failed_attempt_is_retried_within_the_jitter_or_given_up(
    schedule: list[float], attempt: int, retry_after: float | None, jitter: float
) -> None:
    policy = RetryPolicy(schedule, jitter=lambda: jitter)
    step = policy.after(
        AttemptResult(Outcome.FAILED, None, retry_after, "no answer within 5 s", 5000), attempt
    )
    if attempt > len(schedule):
        assert step == Step("failed", "no answer within 5 s", exhausted=True)
        return
    planned = schedule[attempt - 1] * jitter
    stretched = planned if retry_after is None else max(planned, min(retry_after, max(schedule)))
    assert step == Step("pending", "no answer within 5 s", retry_in=stretched)
