"""Reading the upstream's answer as it is relayed (``relay.transcript``): the text and the
usage are taken, each event goes to the device as the upstream framed it, and the usage
chunk the gateway asked for on the device's behalf is dropped unless it asked too."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from dynaseal.gateway.relay.sse import DONE, frame
from dynaseal.gateway.relay.transcript import Transcript

USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


def delta(text: str) -> bytes:
    # Spaced and key-ordered oddly on purpose: the relay must not re-serialise.
    return b'{"choices": [ {"index": 0, "delta": {"content": ' + orjson.dumps(text) + b"}}]}"


def usage_chunk() -> bytes:
    return orjson.dumps({"choices": [], "usage": USAGE})


def test_events_are_relayed_byte_for_byte_and_the_text_taken() -> None:
    transcript = Transcript()
    for text in ("Hel", "", "lo"):
        assert transcript.relay_event(delta(text)) == frame(delta(text))
    assert transcript.content == "Hello"
    assert transcript.first_token_at is not None
    assert not transcript.done


def test_the_first_token_time_is_that_of_the_first_text() -> None:
    transcript = Transcript()
    transcript.relay_event(b'{"choices": [{"delta": {"role": "assistant", "content": ""}}]}')
    assert transcript.first_token_at is None
    transcript.relay_event(delta("Hi"))
    first = transcript.first_token_at
    transcript.relay_event(delta(" there"))
    assert first is not None and transcript.first_token_at == first


def test_the_usage_chunk_is_kept_only_when_the_device_asked_for_it() -> None:
    asked, not_asked = Transcript(wants_usage_chunk=True), Transcript(wants_usage_chunk=False)
    assert asked.relay_event(usage_chunk()) == frame(usage_chunk())
    assert not_asked.relay_event(usage_chunk()) is None
    assert asked.usage == not_asked.usage == USAGE


def test_done_ends_the_relay() -> None:
    transcript = Transcript()
    assert transcript.relay_event(DONE) == frame(DONE)
    assert transcript.done


def test_an_error_event_is_recorded_and_still_relayed() -> None:
    transcript = Transcript()
    event = b'{"error": {"message": "overloaded", "type": "server_error"}}'
    assert transcript.relay_event(event) == frame(event)
    assert transcript.error == "overloaded"


def test_events_that_are_not_json_objects_pass_through_untouched() -> None:
    transcript = Transcript()
    for data in (b"not json", b"[1, 2]", b'"text"', b"null"):
        assert transcript.relay_event(data) == frame(data)
    assert transcript.content == "" and transcript.usage is None and not transcript.done


def test_a_whole_completion_is_read_too() -> None:
    transcript = Transcript()
    body = {"choices": [{"message": {"content": "Hi!"}}], "usage": USAGE}
    transcript.read_completion(orjson.dumps(body))
    assert (transcript.content, transcript.usage) == ("Hi!", USAGE)
    broken = Transcript()
    broken.read_completion(b"<html>bad gateway</html>")
    assert broken.content == "" and broken.usage is None


@given(texts=st.lists(st.text(max_size=12), max_size=12), wants_usage=st.booleans())
def test_a_stream_is_read_whole_and_relayed_unchanged(texts: list[str], wants_usage: bool) -> None:
    transcript = Transcript(wants_usage_chunk=wants_usage)
    relayed = [transcript.relay_event(delta(t)) for t in texts]
    relayed.append(transcript.relay_event(usage_chunk()))
    relayed.append(transcript.relay_event(DONE))
    expected = [frame(delta(t)) for t in texts]
    expected += [frame(usage_chunk())] if wants_usage else [None]
    assert relayed == [*expected, frame(DONE)]
    assert transcript.content == "".join(texts)
    assert transcript.usage == USAGE and transcript.done
    assert (transcript.first_token_at is None) == (not any(texts))


def choice_delta(index: int, **delta: object) -> bytes:
    return orjson.dumps({"id": "c1", "model": "m", "choices": [{"index": index, "delta": delta}]})


def test_a_choice_past_its_cap_stops_the_relay_before_its_event() -> None:
    transcript = Transcript(cap=3, choices_asked=2)
    for _ in range(3):
        assert transcript.relay_event(choice_delta(0, content="a")) is not None
        assert transcript.relay_event(choice_delta(1, content="b")) is not None
    assert not transcript.past_cap
    assert transcript.relay_event(choice_delta(1, content="b")) is None  # choice 1's fourth
    assert transcript.past_cap
    assert transcript.content == "ababab"  # the cut event is not kept
    assert transcript.fewest_completion_tokens() == 7  # but it was generated
    end = orjson.loads(transcript.length_finish()[6:])
    assert end["id"] == "c1" and end["model"] == "m"
    assert [c["index"] for c in end["choices"]] == [0, 1]
    assert {c["finish_reason"] for c in end["choices"]} == {"length"}


def test_finished_choices_are_not_ended_again() -> None:
    transcript = Transcript(cap=1, choices_asked=2)
    transcript.relay_event(
        orjson.dumps(
            {"choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]}
        )
    )
    transcript.relay_event(choice_delta(1, content="b"))
    transcript.relay_event(choice_delta(1, content="c"))
    assert transcript.past_cap
    end = orjson.loads(transcript.length_finish()[6:])
    assert [c["index"] for c in end["choices"]] == [1]


def test_usage_sent_with_every_chunk_cuts_at_the_cap() -> None:
    transcript = Transcript(cap=5)

    def chunk(completion: int) -> bytes:
        return orjson.dumps(
            {
                "choices": [{"index": 0, "delta": {"content": "xy"}}],
                "usage": {"completion_tokens": completion},
            }
        )

    assert transcript.relay_event(chunk(5)) is not None
    assert transcript.relay_event(chunk(6)) is None and transcript.past_cap


def test_a_final_usage_over_the_cap_is_reported_not_cut() -> None:
    transcript = Transcript(cap=2, wants_usage_chunk=True)
    assert transcript.relay_event(delta("hi")) is not None
    final = orjson.dumps({"choices": [], "usage": {"completion_tokens": 9}})
    assert transcript.relay_event(final) == frame(final)
    assert not transcript.past_cap and transcript.fewest_completion_tokens() == 9


def test_reasoning_and_tool_calls_count_as_generated() -> None:
    transcript = Transcript(cap=2)
    transcript.relay_event(choice_delta(0, reasoning_content="thinking"))
    transcript.relay_event(
        choice_delta(0, tool_calls=[{"index": 0, "function": {"name": "f", "arguments": "{}"}}])
    )
    assert transcript.content == ""
    assert transcript.estimated_completion_tokens() == 4  # 11 bytes
    assert transcript.relay_event(choice_delta(0, refusal="no")) is None  # a third piece


def test_long_answers_are_kept_only_up_to_the_limit() -> None:
    transcript = Transcript(content_limit=10)
    for _ in range(4):
        transcript.relay_event(delta("abcd"))
    assert transcript.content == "abcdabcdab" and transcript.content_truncated
    assert transcript.estimated_completion_tokens() == 6  # all 16 bytes still count
