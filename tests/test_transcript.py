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
