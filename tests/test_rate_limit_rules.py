"""The rate-limit judgement (``admission.rate_limits.judge``): which limit refuses, and the
``x-ratelimit-*`` figures a client reads, from the counts of a window."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dynaseal.gateway.admission.rate_limits import Scope, judge, window_at

KEY = Scope("key", "t:e", rpm=10, tpm=1000)
TENANT = Scope("tenant", "t", rpm=100, tpm=0)


def test_within_every_limit_the_tightest_figures_are_reported() -> None:
    verdict = judge([KEY, TENANT], [(4, 200), (50, 9000)], reset=30)
    assert verdict.refused is None
    assert (verdict.request_limit, verdict.requests_left) == (10, 5)  # 6 left, minus this one
    assert (verdict.token_limit, verdict.tokens_left) == (1000, 800)  # the tenant has no tpm
    assert verdict.headers() == {
        "x-ratelimit-limit-requests": "10",
        "x-ratelimit-remaining-requests": "5",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "800",
        "x-ratelimit-reset-tokens": "30s",
    }


def test_the_first_limit_reached_refuses_requests_before_tokens() -> None:
    verdict = judge([KEY, TENANT], [(10, 1000), (100, 0)], reset=7)
    assert verdict.refused == KEY and verdict.refused_on == "requests"
    error = verdict.error()
    assert error.status == 429 and error.code == "rate_limit_exceeded"
    assert error.headers is not None and error.headers["Retry-After"] == "7"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"


def test_a_spent_token_limit_refuses_too() -> None:
    verdict = judge([KEY, TENANT], [(3, 1200), (3, 0)], reset=1)
    assert verdict.refused == KEY and verdict.refused_on == "tokens"
    assert verdict.headers()["x-ratelimit-remaining-tokens"] == "0"


def test_the_window_resets_at_the_next_minute() -> None:
    assert window_at(120.0) == (2, 60)
    assert window_at(179.2) == (2, 1)
    assert window_at(179.9) == (2, 1)  # never 0 s: Retry-After: 0 would mean retry now


limits = st.integers(0, 20)  # 0: unlimited
scopes = st.lists(
    st.builds(Scope, st.sampled_from(["key", "sub", "tenant"]), st.just("id"), limits, limits),
    min_size=1,
    max_size=3,
)


@given(scopes=scopes, data=st.data())
def test_a_request_is_refused_exactly_when_a_limit_is_reached(
    scopes: list[Scope], data: st.DataObject
) -> None:
    counts = data.draw(
        st.lists(
            st.tuples(st.integers(0, 25), st.integers(0, 25)),
            min_size=len(scopes),
            max_size=len(scopes),
        )
    )
    verdict = judge(scopes, counts, reset=5)
    reached = [
        (scope, on)
        for scope, (requests, tokens) in zip(scopes, counts, strict=True)
        for on, limit, count in (("requests", scope.rpm, requests), ("tokens", scope.tpm, tokens))
        if limit > 0 and count >= limit
    ]
    if reached:
        assert (verdict.refused, verdict.refused_on) == reached[0]
    else:
        assert verdict.refused is None
    request_limits = [s.rpm - r for s, (r, _) in zip(scopes, counts, strict=True) if s.rpm > 0]
    if request_limits:
        taken = 0 if reached else 1  # an admitted request counts itself
        assert verdict.requests_left == min(request_limits) - taken
    else:
        assert (
            verdict.request_limit is None and "x-ratelimit-limit-requests" not in verdict.headers()
        )
    assert all(int(v) >= 0 for k, v in verdict.headers().items() if "remaining" in k)
