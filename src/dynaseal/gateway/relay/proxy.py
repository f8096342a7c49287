"""Proxying an admitted request upstream and relaying the answer to the device.

Non-streaming answers are passed through byte for byte; streams are relayed event by
event as the upstream sends them and end as their endpoint's streams do (chat and
legacy completions with ``data: [DONE]``). Whatever happens — finished, upstream
failure, device gone — the request is settled exactly once. The answer carries the
upstream's request id as ``x-upstream-request-id``; no other upstream header reaches
the device (its rate limits describe the operator's account).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import anyio
import orjson
from starlette.responses import Response, StreamingResponse

from dynaseal.core.errors import APIError
from dynaseal.gateway.admission.gatekeeper import Admission
from dynaseal.gateway.errors import upstream_unavailable
from dynaseal.gateway.relay import sse
from dynaseal.gateway.relay.upstream import Upstream, UpstreamError, UpstreamReply
from dynaseal.gateway.settlement.measure import Status
from dynaseal.gateway.settlement.settler import Settler

log = logging.getLogger("dynaseal.gateway")

_JSON = "application/json"
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _from_upstream(headers: Mapping[str, str]) -> dict[str, str]:
    """The one upstream header a device sees: the upstream's own request id."""
    request_id = headers.get("x-request-id")
    return {"x-upstream-request-id": request_id} if request_id else {}


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
    try:
        return await upstream.send(
            admission.upstream_body, path=admission.endpoint.path, attempts=admission.attempts
        )
    except UpstreamError as exc:
        log.warning("upstream unreachable for %s: %s", admission.request_id, exc)
        transcript = admission.endpoint.transcript(admission.body)
        transcript.error = str(exc)
        await settler.settle(admission, transcript, "failed")
        raise upstream_unavailable() from None


async def complete(upstream: Upstream, admission: Admission, settler: Settler) -> Response:
    """A non-streaming completion: forward, read the answer, settle, answer."""
    reply = await _open(upstream, admission, settler)
    transcript = admission.endpoint.transcript(admission.body)
    try:
        raw = await reply.aread()
    except UpstreamError as exc:
        transcript.error = str(exc)
        await settler.settle(admission, transcript, "failed")
        raise upstream_unavailable("The upstream broke off its answer.") from None
    finally:
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


async def stream(upstream: Upstream, admission: Admission, settler: Settler) -> Response:
    """A streaming completion: errors before the first byte get a normal error answer."""
    reply = await _open(upstream, admission, settler)
    if reply.status_code != 200:
        transcript = admission.endpoint.transcript(admission.body)
        try:
            raw = await reply.aread()
        except UpstreamError:
            raw = b""
        finally:
            await reply.aclose()
        transcript.read_completion(raw)
        await settler.settle(admission, transcript, "failed")
        response = _error_reply(reply.status_code, raw)
    else:
        response = _RelayResponse(_relay(reply, admission, settler))
    response.headers.update(_from_upstream(reply.headers))
    return response


class _RelayResponse(StreamingResponse):
    """Closes the relay as soon as the device goes, so settlement runs at once rather
    than whenever the abandoned generator is garbage-collected."""

    def __init__(self, relay: AsyncGenerator[bytes, None]) -> None:
        super().__init__(relay, media_type="text/event-stream", headers=_SSE_HEADERS)
        self._relay = relay

    async def stream_response(self, send: Any) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._relay.aclose()


async def _relay(
    reply: UpstreamReply, admission: Admission, settler: Settler
) -> AsyncGenerator[bytes, None]:
    """Relay events; the request is settled before the device sees ``[DONE]``, so the next
    request with the same key already finds the budget booked."""
    transcript = admission.endpoint.transcript(admission.body)
    status: Status = "client_disconnected"  # unless we get to the end
    settled = False

    async def finish() -> None:
        nonlocal settled
        if not settled:
            settled = True
            with anyio.CancelScope(shield=True):  # the device may be gone: book regardless
                await reply.aclose()
                await settler.settle(admission, transcript, status)

    try:
        try:
            async for data in sse.iter_event_data(reply.aiter_raw()):
                out = transcript.relay_event(data)
                if transcript.done:
                    break
                if out is not None:
                    yield out
            status = "failed" if transcript.error else "completed"
        except UpstreamError as exc:
            log.warning("upstream stream broke for %s: %s", admission.request_id, exc)
            transcript.error = f"upstream stream broke off: {type(exc).__name__}"
            status = "failed"
            yield transcript.error_frame(
                "The upstream broke off the stream.", "upstream_unavailable"
            )
        await finish()
        closing = transcript.closing_frame()
        if closing is not None:
            yield closing
    finally:
        await finish()
