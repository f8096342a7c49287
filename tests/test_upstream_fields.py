"""The body sent upstream (``admission.upstream_fields``), as pure functions: whatever the
device writes, no length field reaches the upstream above the cap, and only allowed
fields pass."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dynaseal.gateway.admission.upstream_fields import (
    ALWAYS,
    DEFAULT_FIELDS,
    LENGTH_FIELDS,
    NEVER_FORWARDED,
    allowed_fields,
    forward,
)

NAMES = sorted(LENGTH_FIELDS | NEVER_FORWARDED | {"temperature", "options", "parameters", "x"})
values = st.one_of(
    st.integers(min_value=-5, max_value=10**9),
    st.none(),
    st.booleans(),
    st.text(max_size=3),
    st.floats(allow_nan=False),
)
objects = st.dictionaries(st.sampled_from(NAMES), values, max_size=6)
bodies = st.dictionaries(st.sampled_from(NAMES), st.one_of(values, objects), max_size=10)
allow_lists = st.one_of(st.none(), st.sets(st.sampled_from(NAMES)))


def length_values(body: dict[str, Any]) -> list[Any]:
    found = [v for k, v in body.items() if k in LENGTH_FIELDS]
    for value in body.values():
        if isinstance(value, dict):
            found += [v for k, v in value.items() if k in LENGTH_FIELDS]
    return found


@given(
    body=bodies,
    cap=st.integers(min_value=1, max_value=10**6),
    tenant=allow_lists,
    cap_fields=st.lists(st.sampled_from(sorted(LENGTH_FIELDS)), max_size=3),
)
def test_no_length_field_passes_above_the_cap(
    body: dict[str, Any], cap: int, tenant: set[str] | None, cap_fields: list[str]
) -> None:
    allowed = allowed_fields(tenant)
    sent = forward(body, cap, allowed, cap_fields).body
    for value in length_values(sent):
        assert isinstance(value, int) and 1 <= value <= cap
    assert "max_tokens" in sent or "max_completion_tokens" in sent
    assert set(sent) <= allowed | {"max_tokens"} | set(cap_fields)
    assert not set(sent) & NEVER_FORWARDED
    for value in sent.values():
        if isinstance(value, dict):
            assert not set(value) & NEVER_FORWARDED


def test_what_is_dropped_is_named_safely() -> None:
    body = {"model": "m", "messages": [], "top_k": 1, "bad\r\nname": 1, "best_of": 3}
    forwarded = forward(body, 10, DEFAULT_FIELDS | {"best_of"})  # best_of: never, even allowed
    assert forwarded.dropped == ("top_k", "bad\r\nname", "best_of")
    assert forwarded.headers() == {"x-dynaseal-dropped-fields": "top_k,best_of,..."}
    assert forward({"model": "m"}, 10, DEFAULT_FIELDS).headers() == {}


def test_the_device_keeps_a_lower_cap_of_its_own() -> None:
    sent = forward({"max_tokens": 3, "n_predict": 0}, 10, allowed_fields({"n_predict"})).body
    assert sent == {"max_tokens": 3, "n_predict": 10}


def test_what_the_gateway_needs_always_passes() -> None:
    sent = forward(dict.fromkeys(ALWAYS, 1), 5, allowed_fields(set())).body
    assert set(sent) == ALWAYS
