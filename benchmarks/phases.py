"""The measurements that need a client reading answers as they arrive (asyncio)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from benchmarks.load import percentile
from benchmarks.meter import METER_PATH
from benchmarks.processes import memory_kib, reset_peak_memory
from benchmarks.rawhttp import Connection, build_request
from benchmarks.upstream import RELEASE_PATH

_FAILURES = (OSError, asyncio.IncompleteReadError, ValueError, KeyError)
_SAMPLE_SECONDS = 0.05
_WARM_UP_REQUESTS = 5


def ms(seconds: list[float], q: float) -> float:
    return percentile(sorted(seconds), q) * 1000


# ---------------------------------------------------------------- streaming timings


@dataclass(frozen=True, slots=True)
class StreamTimings:
    samples: int
    errors: int
    first_p50_ms: float
    first_p99_ms: float
    last_p50_ms: float
    last_p99_ms: float


async def _timed_stream(connection: Connection, request: bytes) -> tuple[float, float] | None:
    """(first event, last byte) in seconds since sending, or None if the stream failed."""
    first: list[float] = []

    def on_chunk(data: bytes) -> None:
        if not first and b"data:" in data:
            first.append(time.perf_counter())

    started = time.perf_counter()
    reply = await connection.exchange(request, on_chunk)
    ended = time.perf_counter()
    if reply.status != 200 or b"data: [DONE]" not in reply.body or not first:
        return None
    return first[0] - started, ended - started


async def stream_timings(port: int, request: bytes, samples: int, seconds: float) -> StreamTimings:
    """Sequential streams on one keep-alive connection: time to first token and to last."""
    first: list[float] = []
    last: list[float] = []
    errors = 0
    connection = await Connection.open(port)
    try:
        for _ in range(_WARM_UP_REQUESTS):
            await _timed_stream(connection, request)
        deadline = time.perf_counter() + seconds
        for _ in range(samples):
            if time.perf_counter() >= deadline:
                break
            timing = await _timed_stream(connection, request)
            if timing is None:
                errors += 1
                continue
            first.append(timing[0])
            last.append(timing[1])
    finally:
        await connection.close()
    return StreamTimings(
        len(first), errors, ms(first, 0.5), ms(first, 0.99), ms(last, 0.5), ms(last, 0.99)
    )


# ---------------------------------------------------------------- memory with open streams


@dataclass(frozen=True, slots=True)
class MemoryResult:
    streams: int
    opened: int
    refused: int  # answered with an error (or the connection failed) instead of a stream
    completed: int
    ramp_seconds: float
    rss_before_kib: int
    rss_peak_kib: int
    peak_source: str  # "VmHWM" when the kernel let us reset it, else "sampled VmRSS"

    @property
    def growth_kib(self) -> int:
        return self.rss_peak_kib - self.rss_before_kib


class _OpenStreams:
    """Counts streams that delivered their first event, those refused, and those that
    ended with ``[DONE]``; ``settled`` is set once every stream is open or refused."""

    def __init__(self, wanted: int) -> None:
        self.wanted = wanted
        self.opened = 0
        self.refused = 0
        self.completed = 0
        self.settled = asyncio.Event()

    def _count(self, opened: bool) -> None:
        if opened:
            self.opened += 1
        else:
            self.refused += 1
        if self.opened + self.refused >= self.wanted:
            self.settled.set()

    async def hold_one(self, port: int, request: bytes) -> None:
        seen = False

        def on_chunk(data: bytes) -> None:
            nonlocal seen
            if not seen and b"data:" in data:  # an error answer is not an open stream
                seen = True
                self._count(opened=True)

        try:
            connection = await Connection.open(port)
            try:
                reply = await connection.exchange(request, on_chunk)
                self.completed += reply.status == 200 and b"data: [DONE]" in reply.body
            finally:
                await connection.close()
        except _FAILURES:
            pass
        finally:
            if not seen:
                self._count(opened=False)


async def _sample_peak(pid: int, peak: list[int], seconds: float) -> None:
    for _ in range(int(seconds / _SAMPLE_SECONDS) + 1):
        peak[0] = max(peak[0], memory_kib(pid).get("VmRSS", 0))
        await asyncio.sleep(_SAMPLE_SECONDS)


async def post(port: int, path: str, body: bytes = b"", token: str | None = None) -> bytes:
    """One request on a fresh connection; the answer's body (raises unless 2xx)."""
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    connection = await Connection.open(port)
    try:
        reply = await connection.exchange(build_request("POST", path, port, headers, body))
    finally:
        await connection.close()
    if not 200 <= reply.status < 300:
        raise RuntimeError(f"POST {path} answered {reply.status}: {reply.body[:300]!r}")
    return reply.body


async def hold_streams(
    pid: int,
    port: int,
    upstream_port: int,
    requests: Sequence[bytes],
    count: int,
    hold: float,
) -> MemoryResult:
    """Open ``count`` slow streams through the gateway at once (taking ``requests`` in
    turn: one per device key), hold them ``hold`` seconds, then let the upstream end them;
    the gateway's RSS is watched throughout."""
    before = memory_kib(pid).get("VmRSS", 0)
    hwm_reset = reset_peak_memory(pid)
    ramp_limit = 30.0 + count / 20
    peak = [before]
    sampler = asyncio.create_task(_sample_peak(pid, peak, ramp_limit + hold + 120))
    streams = _OpenStreams(count)
    started = time.perf_counter()
    tasks = [
        asyncio.create_task(streams.hold_one(port, requests[i % len(requests)]))
        for i in range(count)
    ]
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(streams.settled.wait(), ramp_limit)
        ramp = time.perf_counter() - started
        await asyncio.sleep(hold)
        opened, refused = streams.opened, streams.refused
        await post(upstream_port, RELEASE_PATH)
        await asyncio.wait(tasks, timeout=60)
    finally:
        for task in (*tasks, sampler):
            task.cancel()
        await asyncio.gather(*tasks, sampler, return_exceptions=True)
    hwm = memory_kib(pid).get("VmHWM", 0)
    use_hwm = hwm_reset and hwm > 0
    return MemoryResult(
        streams=count,
        opened=opened,
        refused=refused,
        completed=streams.completed,
        ramp_seconds=ramp,
        rss_before_kib=before,
        rss_peak_kib=max(hwm, peak[0]) if use_hwm else peak[0],
        peak_source="VmHWM" if use_hwm else "sampled VmRSS",
    )


# ---------------------------------------------------------------- relay vs Dynaseal


@dataclass(frozen=True, slots=True)
class FlowResult:
    """One way of doing ``completions`` completions, seen by the device and the backend."""

    completions: int
    errors: int
    device_p50_ms: float
    device_p99_ms: float
    chat_p50_ms: float  # the chat call alone (the Dynaseal way also mints a key first)
    backend_bytes: dict[str, dict[str, int]]  # the backend meter's buckets

    def bytes_per_completion(self, *buckets: str) -> float:
        total = sum(
            self.backend_bytes.get(b, {}).get("bytes_in", 0)
            + self.backend_bytes.get(b, {}).get("bytes_out", 0)
            for b in buckets
        )
        return total / self.completions if self.completions else 0.0


async def read_meter(port: int, reset: bool = False) -> dict[str, dict[str, int]]:
    connection = await Connection.open(port)
    try:
        method = "POST" if reset else "GET"
        reply = await connection.exchange(build_request(method, METER_PATH, port))
    finally:
        await connection.close()
    return orjson.loads(reply.body)


async def _await_callbacks(backend_port: int, wanted: int, seconds: float) -> None:
    """Callbacks arrive after the answer; the bytes are counted once they are all in."""
    for _ in range(int(seconds / 0.1)):
        meter = await read_meter(backend_port)
        if meter.get("callback", {}).get("requests", 0) >= wanted:
            return
        await asyncio.sleep(0.1)


async def _relay_run(connection: Connection, chat: bytes, count: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    for _ in range(count):
        started = time.perf_counter()
        reply = await connection.exchange(chat)
        latencies.append(time.perf_counter() - started)
        errors += reply.status != 200
    return latencies, errors


async def relay_flow(relay_port: int, chat: bytes, completions: int) -> FlowResult:
    """(a) every completion goes device → backend → LLM → backend → device."""
    connection = await Connection.open(relay_port)
    try:
        await _relay_run(connection, chat, _WARM_UP_REQUESTS)
        await read_meter(relay_port, reset=True)
        latencies, errors = await _relay_run(connection, chat, completions)
    finally:
        await connection.close()
    return FlowResult(
        completions=completions,
        errors=errors,
        device_p50_ms=ms(latencies, 0.5),
        device_p99_ms=ms(latencies, 0.99),
        chat_p50_ms=ms(latencies, 0.5),
        backend_bytes=await read_meter(relay_port),
    )


@dataclass(frozen=True, slots=True)
class DynasealDevice:
    backend_port: int
    gateway_port: int
    access_token: str
    model: str
    chat_path: str
    chat_body: bytes

    def key_request(self) -> bytes:
        headers = {
            "content-type": "application/json",
            "authorization": f"Bearer {self.access_token}",
        }
        body = orjson.dumps({"model": self.model})
        return build_request("POST", "/v1/key/create", self.backend_port, headers, body)

    def chat_request(self, token: str) -> bytes:
        headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
        return build_request("POST", self.chat_path, self.gateway_port, headers, self.chat_body)


@dataclass(slots=True)
class _DeviceLog:
    total: list[float]
    chat: list[float]
    errors: int = 0


async def _dynaseal_run(device: DynasealDevice, count: int) -> _DeviceLog:
    log = _DeviceLog([], [])
    key_request = device.key_request()
    backend = await Connection.open(device.backend_port)
    gateway = await Connection.open(device.gateway_port)
    try:
        for _ in range(count):
            started = time.perf_counter()
            key = await backend.exchange(key_request)
            keyed = time.perf_counter()
            token = orjson.loads(key.body)["token"] if key.status == 200 else "refused"
            reply = await gateway.exchange(device.chat_request(token))
            ended = time.perf_counter()
            log.errors += reply.status != 200
            log.total.append(ended - started)
            log.chat.append(ended - keyed)
    finally:
        await backend.close()
        await gateway.close()
    await _await_callbacks(device.backend_port, count - log.errors, 60.0)
    return log


async def dynaseal_flow(device: DynasealDevice, completions: int) -> FlowResult:
    """(b) per completion: a key from the backend, the call straight to the gateway, and
    the gateway's callback to the backend."""
    await read_meter(device.backend_port, reset=True)
    await _dynaseal_run(device, _WARM_UP_REQUESTS)
    await read_meter(device.backend_port, reset=True)
    log = await _dynaseal_run(device, completions)
    return FlowResult(
        completions=completions,
        errors=log.errors,
        device_p50_ms=ms(log.total, 0.5),
        device_p99_ms=ms(log.total, 0.99),
        chat_p50_ms=ms(log.chat, 0.5),
        backend_bytes=await read_meter(device.backend_port),
    )
