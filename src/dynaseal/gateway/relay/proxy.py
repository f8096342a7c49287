"""Proxying an admitted request upstream and relaying the answer to the device.

Non-streaming answers are passed through byte for byte; streams are relayed event by
event as the upstream sends them and end as their endpoint's streams do (chat and
legacy completions with ``data: [DONE]``). A stream that goes past its completion cap
(an upstream ignoring the length fields it was sent) is cut: the upstream is closed and
the device gets its endpoint's end for a length cut (chat: ``finish_reason:
"length"``). Whatever happens — finished, cut, upstream failure, device gone — the
request is settled exactly once. The answer carries the upstream's request id as
``x-upstream-request-id``; no other upstream header reaches the device (its rate limits
describe the operator's account).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import orjson
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from dynaseal.core.errors import APIError
from dynaseal.gateway.admission.gatekeeper import Admission
from dynaseal.gateway.errors import upstream_unavailable
from dynaseal.gateway.relay import sse
from dynaseal.gateway.relay.transcript import Transcript
from dynaseal.gateway.relay.upstream import Upstream, UpstreamError, UpstreamReply
from dynaseal.gateway.settlement.measure import Settled, Status
from dynaseal.gateway.settlement.settler import Settler

log = logging.getLogger("dynaseal.gateway")

_JSON = "application/json"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _error_reply(status_code: int, raw: bytes) -> Response:
    """Pass an upstream error through when it is OpenAI-shaped, else wrap it."""
    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return Response(raw, status_code=status_code, media_type=_JSON)
    if status_code >= 500:
        return upstream_unavailable(f"The upstream answered HTTP {status_code}.").response()
    return APIError(
        status_code,
        f"The upstream refused the request (HTTP {status_code}).",
        code="upstream_error",
    ).response()


async def _open(upstream: Upstream, admission: Admission, settler: Settler) -> UpstreamReply:
    settler.begin(admission)  # recorded in flight while the upstream works
    try:
        return await upstream.send(
            admission.upstream_body, path=admission.endpoint.path, attempts=admission.attempts
        )
    except BaseException as exc:
        # Whatever stops the request here, its reservation and its place are given back.
        log.warning("upstream unreachable for %s: %s", admission.request_id, exc)
        transcript = admission.endpoint.transcript(admission.body)
        transcript.error = str(exc)
        with anyio.CancelScope(shield=True):
            await settler.settle(admission, transcript, "failed")
        if isinstance(exc, UpstreamError):
            raise upstream_unavailable() from None
        raise


def _transcript(admission: Admission, settings: RelaySettings) -> Transcript:
    return admission.endpoint.transcript(
        admission.body,
        cap=admission.reservation.completion_cap,
        content_limit=settings.content_limit,
    )


def _from_upstream(headers: Mapping[str, str]) -> dict[str, str]:
    """The one upstream header a device sees: the upstream's own request id."""
    request_id = headers.get("x-request-id")
    return {"x-upstream-request-id": request_id} if request_id else {}


@dataclass(frozen=True, slots=True)
class RelaySettings:
    content_limit: int  # generated characters kept for the callback
    write_timeout: float  # a device slower than this to take the next event is gone


async def complete(
    upstream: Upstream, admission: Admission, settler: Settler, settings: RelaySettings
) -> Response:
    """A non-streaming completion: forward, read the answer, settle, answer.

    An answer longer than the cap cannot be taken back once generated: it is booked as it
    is (the key's budget may then go below zero, which refuses its next request) and its
    overshoot reported in the ledger and the callback.
    """
    reply = await _open(upstream, admission, settler)
    transcript = _transcript(admission, settings)
    try:
        raw = await reply.aread()
    except BaseException as exc:
        transcript.error = str(exc)
        with anyio.CancelScope(shield=True):
            await reply.aclose()
            await settler.settle(admission, transcript, "failed")
        if isinstance(exc, UpstreamError):
            raise upstream_unavailable("The upstream broke off its answer.") from None
        raise
    await reply.aclose()
    transcript.read_completion(raw)
    if reply.status_code != 200:
        await settler.settle(admission, transcript, "failed")
        response = _error_reply(reply.status_code, raw)
    else:
        await settler.settle(admission, transcript, "completed")
        response = Response(raw, media_type=_JSON)
    response.headers.update(_from_upstream(reply.headers))
    return response


async def stream(
    upstream: Upstream, admission: Admission, settler: Settler, settings: RelaySettings
) -> Response:
    """A streaming completion: errors before the first byte get a normal error answer."""
    reply = await _open(upstream, admission, settler)
    if reply.status_code != 200:
        transcript = _transcript(admission, settings)
        try:
            raw = await reply.aread()
        except UpstreamError:
            raw = b""
        finally:
            await reply.aclose()
        transcript.read_completion(raw)
        await settler.settle(admission, transcript, "failed")
        response: Response = _error_reply(reply.status_code, raw)
    else:
        relay = _Relay(reply, admission, settler, _transcript(admission, settings))
        response = _RelayResponse(relay, settings.write_timeout)
    response.headers.update(_from_upstream(reply.headers))
    return response


class _Relay:
    """One stream, relayed event by event and settled exactly once, whatever ends it:
    the end of the answer, the upstream breaking off, the cap, or the device going."""

    def __init__(
        self, reply: UpstreamReply, admission: Admission, settler: Settler, transcript: Transcript
    ) -> None:
        self._reply = reply
        self._admission = admission
        self._settler = settler
        self.transcript = transcript
        self.status: Status = "client_disconnected"  # unless the relay gets to the end
        self._settled = False

    @property
    def request_id(self) -> str:
        return self._admission.request_id

    async def events(self) -> AsyncGenerator[bytes, None]:
        """The events for the device. The request is settled before the device sees
        ``[DONE]``, so the next request with the same key already finds the budget booked."""
        transcript = self.transcript
        try:
            async for data in sse.iter_event_data(self._reply.aiter_raw()):
                out = transcript.relay_event(data)
                if transcript.done or transcript.past_cap:
                    break
                if out is not None:
                    yield out
            self.status = "failed" if transcript.error else "completed"
        except UpstreamError as exc:
            log.warning("upstream stream broke for %s: %s", self._admission.request_id, exc)
            transcript.error = f"upstream stream broke off: {type(exc).__name__}"
            self.status = "failed"
            yield transcript.error_frame(
                "The upstream broke off the stream.", "upstream_unavailable"
            )
        if transcript.past_cap:
            log.warning(
                "upstream misbehaving: stream %s went past its cap of %d tokens; cut",
                self._admission.request_id,
                self._admission.reservation.completion_cap,
            )
            yield transcript.length_finish()
        settled = await self.finish()
        if transcript.past_cap and transcript.wants_usage_chunk and settled is not None:
            usage = settled.usage
            yield transcript.usage_chunk(
                {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                }
            )
        closing = transcript.closing_frame()
        if closing is not None:
            yield closing

    async def finish(self) -> Settled | None:
        """Close the upstream and settle, once (later calls do nothing)."""
        if self._settled:
            return None
        self._settled = True
        with anyio.CancelScope(shield=True):  # the device may be gone: book regardless
            await self._reply.aclose()
            settled = await self._settler.settle(self._admission, self.transcript, self.status)
        return settled


class _RelayResponse(StreamingResponse):
    """Sends the relay's events; the moment the device is gone (disconnected, or not
    taking the next event within ``write_timeout``) the upstream is closed and the
    request settled, rather than whenever the abandoned stream would end."""

    def __init__(self, relay: _Relay, write_timeout: float) -> None:
        self._relay = relay
        self._events = relay.events()
        self._write_timeout = write_timeout
        super().__init__(self._events, media_type="text/event-stream", headers=_SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:  # even if the device left before the stream started
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
                await self._relay.finish()

    async def stream_response(self, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status_code}
        await send({**start, "headers": self.raw_headers})
        async for chunk in self._events:
            with anyio.move_on_after(self._write_timeout) as waited:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if waited.cancelled_caught:
                log.info("device stopped reading %s: closing", self._relay.request_id)
                return  # the answer stays incomplete: the server closes the connection
        await send({"type": "http.response.body", "body": b"", "more_body": False})
