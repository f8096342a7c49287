"""The translation between the Responses API and chat completions, as pure functions: the
request one way, the answer and the stream's events the other."""

from __future__ import annotations

from dynaseal.gateway.translation.answers import to_response
from dynaseal.gateway.translation.events import ChatToResponseEvents
from dynaseal.gateway.translation.requests import to_chat


def test_roles_structured_output_reasoning_and_earlier_reasoning_items() -> None:
    chat = to_chat(
        {
            "model": "m",
            "input": [
                {"role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
            ],
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {}, "strict": True}},
            "reasoning": {"effort": "low", "summary": "auto"},
            "store": False,
            "metadata": {"a": "b"},
        }
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "x", "schema": {}, "strict": True},
    }
    assert chat["reasoning_effort"] == "low"
    assert "store" not in chat and "metadata" not in chat


def test_a_whole_answer_with_text_and_a_call_and_a_cut() -> None:
    response = to_response(
        {
            "model": "m-upstream",
            "choices": [
                {
                    "message": {
                        "content": "Let me look.",
                        "tool_calls": [
                            {"id": "c1", "function": {"name": "f", "arguments": "{}"}},
                        ],
                    },
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        },
        {"model": "m", "max_output_tokens": 4},
    )
    assert [item["type"] for item in response["output"]] == ["message", "function_call"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["usage"]["input_tokens"] == 3 and response["usage"]["output_tokens"] == 4


def test_stream_events_are_ordered_and_closed() -> None:
    events = ChatToResponseEvents({"model": "m"})
    out = []
    out += events.chunk({"model": "m", "choices": [{"delta": {"role": "assistant"}}]})
    out += events.chunk({"choices": [{"delta": {"content": "Hi"}}]})
    call = {"index": 0, "id": "c1", "function": {"name": "f", "arguments": '{"a"'}}
    out += events.chunk({"choices": [{"delta": {"tool_calls": [call]}}]})
    more = {"index": 0, "function": {"arguments": ": 1}"}}
    out += events.chunk({"choices": [{"delta": {"tool_calls": [more]}, "finish_reason": "stop"}]})
    out += events.chunk({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    out += events.finish()
    kinds = [e["type"] for e in out]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    final = out[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["output"][1]["arguments"] == '{"a": 1}'
    assert final["usage"]["total_tokens"] == 3
