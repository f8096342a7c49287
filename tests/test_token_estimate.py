"""Token estimates (``relay.token_estimate``): what budgets reserve for a prompt and count
for an answer when the upstream gives no usage. They may over-estimate, never under: at
least one token per three UTF-8 bytes, plus the chat format's overhead."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dynaseal.gateway.relay.token_estimate import estimate_prompt_tokens, estimate_text_tokens

PER_REQUEST, PER_MESSAGE = 3, 4  # the documented chat overhead


def test_known_values() -> None:
    assert estimate_text_tokens("") == 0
    assert estimate_text_tokens("abc") == 1
    assert estimate_text_tokens("abcd") == 2
    assert estimate_text_tokens("你好") == 2  # six bytes
    messages = [{"role": "user", "content": "Say hello"}]
    assert estimate_prompt_tokens({"messages": messages}) == PER_REQUEST + PER_MESSAGE + 3


def test_every_part_of_a_message_counts_but_its_role() -> None:
    plain = {"messages": [{"role": "user", "content": "x" * 30}]}
    parts = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x" * 30}]},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]},
        ]
    }
    assert estimate_prompt_tokens(parts) > estimate_prompt_tokens(plain) + PER_MESSAGE


def test_tools_count_too() -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    assert estimate_prompt_tokens({**body, "tools": tools}) > estimate_prompt_tokens(body)


@given(text=st.text())
def test_text_is_never_under_one_token_per_three_bytes(text: str) -> None:
    assert estimate_text_tokens(text) >= len(text.encode()) / 3


@given(first=st.text(), more=st.text())
def test_more_text_never_estimates_fewer_tokens(first: str, more: str) -> None:
    assert estimate_text_tokens(first + more) >= estimate_text_tokens(first)


contents = st.lists(st.text(max_size=200), max_size=8)


@given(contents=contents, more=st.text(max_size=200))
def test_a_prompt_is_never_under_its_bytes_and_overhead_and_grows_with_messages(
    contents: list[str], more: str
) -> None:
    messages = [{"role": "user", "content": c} for c in contents]
    estimate = estimate_prompt_tokens({"messages": messages})
    floor = PER_REQUEST + PER_MESSAGE * len(messages) + sum(len(c.encode()) for c in contents) / 3
    assert estimate >= math.ceil(floor)
    longer = estimate_prompt_tokens({"messages": [*messages, {"role": "user", "content": more}]})
    assert longer >= estimate + PER_MESSAGE
