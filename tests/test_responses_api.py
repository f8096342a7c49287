"""The Responses API through the gateway, driven by the official OpenAI SDK: against an
upstream that has it (``native``) and against one that has only chat completions, which
the gateway translates to and from (``translated``)."""

from __future__ import annotations

import httpx
import openai
import pytest

from support.callbacks import CallbackSink
from support.servers import ServerThread
from support.tenants import DEMO_MODEL, event_of, mint
from support.upstream import FakeUpstream

WORDS = "w0 w1 w2 w3 w4 w5 w6 w7 "
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture(params=["native", "translated"])
def kind(request: pytest.FixtureRequest, upstream: FakeUpstream) -> str:
    if request.param == "translated":
        upstream.script.endpoints = frozenset({"chat"})  # a /responses call would be a 404
    return str(request.param)


@pytest.fixture
def through(kind: str, request: pytest.FixtureRequest) -> ServerThread:
    """The gateway in front of the upstream as ``kind`` wants it."""
    name = "gateway" if kind == "native" else "chat_only_gateway"
    return request.getfixturevalue(name)


def sdk(gateway: ServerThread, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)


def upstream_path(kind: str) -> str:
    return "/v1/responses" if kind == "native" else "/v1/chat/completions"


def test_a_response_has_the_text_and_the_usage(
    through: ServerThread, kind: str, upstream: FakeUpstream
) -> None:
    response = sdk(through, mint()).responses.create(
        model=DEMO_MODEL, input="Say hello", instructions="Be brief.", max_output_tokens=50
    )
    assert response.output_text == WORDS
    assert response.status == "completed"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (11, 8)
    assert upstream.paths == [upstream_path(kind)]
    sent = upstream.requests[0]
    if kind == "native":
        assert sent["max_output_tokens"] == 50 and sent["input"] == "Say hello"
    else:
        assert sent["max_tokens"] == 50
        assert sent["messages"] == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello"},
        ]


def test_a_streamed_response_arrives_as_semantic_events(
    through: ServerThread, kind: str, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    key = mint()
    events = list(
        sdk(through, key).responses.create(model=DEMO_MODEL, input="Say hello", stream=True)
    )
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == WORDS
    numbers = [e.sequence_number for e in events]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    final = events[-1].response
    assert final.output_text == WORDS and final.usage is not None
    assert final.usage.total_tokens == 19
    if kind == "translated":  # the chat upstream was asked for its usage
        assert upstream.requests[0]["stream_options"] == {"include_usage": True}
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["endpoint"] == "responses" and payload["stream"] is True
    assert payload["tokens"] == 19 and payload["content"] == WORDS
    assert payload["usage_source"] == "upstream"


def test_the_wire_has_named_events_and_no_done(through: ServerThread) -> None:
    with httpx.stream(
        "POST",
        through.url + "/v1/responses",
        headers={"Authorization": f"Bearer {mint()}"},
        json={"model": DEMO_MODEL, "input": "hi", "stream": True},
    ) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == "event: response.created"
    assert lines[-2] == "event: response.completed"
    assert not any("[DONE]" in line for line in lines)


def test_the_sdk_stream_helper_builds_the_final_response(through: ServerThread) -> None:
    with sdk(through, mint()).responses.stream(model=DEMO_MODEL, input="Say hello") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == WORDS and final.output_text == WORDS


def test_max_output_tokens_is_the_completion_cap(
    through: ServerThread, kind: str, upstream: FakeUpstream
) -> None:
    client = sdk(through, mint(max_tokens=300))
    response = client.responses.create(model=DEMO_MODEL, input="Say hello", max_output_tokens=3)
    assert response.output_text == "w0 w1 w2 "
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    # Without one, what remains of the key's budget is forwarded as the cap.
    client.responses.create(model=DEMO_MODEL, input="Say hello")
    field = "max_output_tokens" if kind == "native" else "max_tokens"
    assert 0 < upstream.requests[1][field] < 300
    # More than the key has left: refused before anything goes upstream.
    with pytest.raises(openai.RateLimitError) as refused:
        client.responses.create(model=DEMO_MODEL, input="Say hello", max_output_tokens=5000)
    assert refused.value.code == "insufficient_quota"
    assert upstream.count == 2


def test_stateless_requests_work(through: ServerThread, upstream: FakeUpstream) -> None:
    response = sdk(through, mint()).responses.create(
        model=DEMO_MODEL, input="Say hello", store=False
    )
    assert response.output_text == WORDS


def test_previous_response_id_is_passed_to_an_upstream_that_keeps_responses(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    client = sdk(gateway, mint())
    first = client.responses.create(model=DEMO_MODEL, input="Say hello")
    second = client.responses.create(
        model=DEMO_MODEL, input="And again", previous_response_id=first.id
    )
    assert upstream.requests[1]["previous_response_id"] == first.id
    assert second.usage is not None and second.usage.input_tokens == 11 + 19  # the first turn
    with pytest.raises(openai.BadRequestError) as unknown:
        client.responses.create(model=DEMO_MODEL, input="x", previous_response_id="resp_nope")
    assert unknown.value.code == "previous_response_not_found"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools[0]"),
        ({"tools": [WEATHER], "tool_choice": {"type": "web_search"}}, "tool_choice"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format"),
        ({"top_logprobs": 2}, "top_logprobs"),
    ],
)
def test_what_chat_completions_cannot_express_is_refused_with_a_400(
    chat_only_gateway: ServerThread, upstream: FakeUpstream, extra: dict, param: str
) -> None:
    upstream.script.endpoints = frozenset({"chat"})
    key = mint(max_tokens=200)
    body = {"model": DEMO_MODEL, "input": "hi", "max_output_tokens": 150, **extra}
    refused = httpx.post(
        chat_only_gateway.url + "/v1/responses",
        headers={"Authorization": f"Bearer {key}"},
        json=body,
    )
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == param and "no Responses API" in error["message"]
    assert upstream.count == 0
    # Nothing was reserved: the whole budget is still there.
    ok = sdk(chat_only_gateway, key).responses.create(
        model=DEMO_MODEL, input="hi", max_output_tokens=150
    )
    assert ok.output_text == WORDS


def test_background_responses_are_refused(gateway: ServerThread, upstream: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(gateway, mint()).responses.create(model=DEMO_MODEL, input="hi", background=True)
    assert refused.value.param == "background" and upstream.count == 0


@pytest.mark.parametrize("stream", [False, True])
def test_function_tools_round_trip(
    through: ServerThread, kind: str, upstream: FakeUpstream, stream: bool
) -> None:
    upstream.script.tool_call = True
    client = sdk(through, mint())
    asked = {"model": DEMO_MODEL, "input": "Weather in Paris?", "tools": [WEATHER]}
    if stream:
        events = list(client.responses.create(**asked, stream=True))
        arguments = "".join(
            e.delta for e in events if e.type == "response.function_call_arguments.delta"
        )
        assert arguments == '{"city": "Paris"}'
        response = events[-1].response
    else:
        response = client.responses.create(**asked)
    [call] = response.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert call.arguments == '{"city": "Paris"}'
    if kind == "translated":
        assert call.call_id == "call_1"
        assert upstream.requests[0]["tools"] == [
            {
                "type": "function",
                "function": {k: WEATHER[k] for k in ("name", "description", "parameters")},
            }
        ]
    # The next turn gives the call and its output back.
    upstream.script.tool_call = False
    answer = client.responses.create(
        model=DEMO_MODEL,
        tools=[WEATHER],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"},
        ],
    )
    assert answer.output_text == WORDS
    if kind == "translated":
        messages = upstream.requests[1]["messages"]
        assert messages[1]["role"] == "assistant"
        assert messages[1]["tool_calls"][0]["id"] == call.call_id
        assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny"}


def test_images_as_input_are_translated(
    chat_only_gateway: ServerThread, upstream: FakeUpstream
) -> None:
    upstream.script.endpoints = frozenset({"chat"})
    image = "data:image/png;base64,iVBORw0KGgo="
    sdk(chat_only_gateway, mint()).responses.create(
        model=DEMO_MODEL,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": image, "detail": "low"},
                ],
            }
        ],
    )
    assert upstream.requests[0]["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": image, "detail": "low"}},
            ],
        }
    ]


def test_a_stream_that_breaks_ends_with_an_error_event(
    through: ServerThread, upstream: FakeUpstream, sink: CallbackSink
) -> None:
    upstream.script.break_after = 3
    key = mint()
    stream = sdk(through, key).responses.create(model=DEMO_MODEL, input="hi", stream=True)
    deltas = []
    with pytest.raises(openai.APIError) as failed:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    assert "".join(deltas) == "w0 w1 w2 "
    assert "broke off" in failed.value.message
    [payload] = sink.wait_for(1, event_id=event_of(key))
    assert payload["status"] == "failed" and payload["content"] == "w0 w1 w2 "


def test_a_stream_past_its_cap_is_cut_with_response_incomplete(
    gateway: ServerThread, upstream: FakeUpstream
) -> None:
    upstream.script.length_fields = ()  # ignores max_output_tokens
    events = list(
        sdk(gateway, mint()).responses.create(
            model=DEMO_MODEL, input="hi", stream=True, max_output_tokens=3
        )
    )
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["w0 ", "w1 ", "w2 "]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
