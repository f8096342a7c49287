"""Reading server-sent events off an upstream byte stream (``relay.sse``), however the
network happens to cut it into reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from hypothesis import given
from hypothesis import strategies as st

from dynaseal.gateway.relay.sse import DONE, frame, iter_event_data


def events(reads: Sequence[bytes]) -> list[bytes]:
    """The data of each event, as the relay gets it from these reads."""

    async def stream() -> AsyncIterator[bytes]:
        for read in reads:
            yield read

    async def collect() -> list[bytes]:
        return [data async for data in iter_event_data(stream())]

    return asyncio.run(collect())


STREAM = b'data: {"n": 1}\n\n: keep-alive\n\ndata: {"n": 2}\n\ndata: [DONE]\n\n'
EXPECTED = [b'{"n": 1}', b'{"n": 2}', DONE]


def test_events_in_one_read() -> None:
    assert events([STREAM]) == EXPECTED


def test_events_cut_at_every_byte() -> None:
    for stream in (STREAM, STREAM.replace(b"\n", b"\r\n")):
        for cut in range(len(stream) + 1):
            assert events([stream[:cut], stream[cut:]]) == EXPECTED, (stream, cut)
        assert events([bytes([b]) for b in stream]) == EXPECTED


def test_crlf_line_ends() -> None:
    assert events([b"data: a\r\n\r\ndata: b\r\n\r\n"]) == [b"a", b"b"]


def test_comments_and_other_fields_carry_no_data() -> None:
    assert events([b": ping\n\nevent: note\nid: 7\n\nretry: 10\ndata: x\n\n"]) == [b"x"]


def test_data_lines_of_one_event_are_joined_by_newlines() -> None:
    assert events([b"data: one\ndata:two\ndata:  three\n\n"]) == [b"one\ntwo\n three"]


def test_a_last_event_without_its_blank_line_is_still_read() -> None:
    assert events([b"data: a\n\ndata: b"]) == [b"a", b"b"]
    assert events([b"data: a\n\ndata: b\n"]) == [b"a", b"b"]


def test_frame_is_what_the_parser_reads() -> None:
    assert events([frame(b'{"x": 1}'), frame(DONE)]) == [b'{"x": 1}', DONE]


payloads = st.lists(
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    max_size=6,
)


@given(payloads=payloads, crlf=st.booleans(), data=st.data())
def test_any_cutting_into_reads_gives_the_same_events(
    payloads: list[bytes], crlf: bool, data: st.DataObject
) -> None:
    stream = b"".join(b"data: " + p + b"\n\n" for p in payloads)
    if crlf:
        stream = stream.replace(b"\n", b"\r\n")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert events(reads) == payloads
