"""Devices that keep a gateway busy until it is killed, and what its database recorded:
for the tests that SIGKILL a gateway mid-answer (tests/test_crash_recovery.py)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

import openai
from sqlalchemy import func, select

from dynaseal.storage import Database
from dynaseal.storage.gateway_models import RequestInFlight, UsageRecord
from support.tenants import DEMO_MODEL

MESSAGES = [{"role": "user", "content": "Say hello"}]


def device(gateway_url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway_url + "/v1", api_key=key, max_retries=0, timeout=30)


@dataclass
class BackToBack:
    """Non-streaming requests one after the other until the gateway stops answering."""

    gateway_url: str
    key: str
    answered: list[str] = field(default_factory=list)  # the request ids of full answers
    thread: threading.Thread | None = None

    def start(self) -> BackToBack:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        client = device(self.gateway_url, self.key)
        while True:
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model=DEMO_MODEL, messages=MESSAGES, max_tokens=5
                )
                raw.parse()  # the whole body arrived
            except openai.APIError:
                return  # the gateway is gone
            self.answered.append(raw.headers["x-request-id"])


@dataclass
class SlowStream:
    """One stream read chunk by chunk, which the gateway's death cuts."""

    gateway_url: str
    key: str
    request_id: str | None = None
    chunks: int = 0
    finished: bool = False  # saw the end of the answer
    thread: threading.Thread | None = None

    def start(self) -> SlowStream:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        client = device(self.gateway_url, self.key)
        try:
            with client.chat.completions.with_streaming_response.create(
                model=DEMO_MODEL, messages=MESSAGES, stream=True
            ) as response:
                self.request_id = response.headers["x-request-id"]
                for _ in response.parse():
                    self.chunks += 1
            self.finished = True
        except (openai.APIError, ConnectionError, OSError):
            return  # cut

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(timeout=30)


@dataclass(frozen=True)
class Recorded:
    """The ledger (request id -> status) and the intents left, as the database has them."""

    ledger: dict[str, str]
    in_flight: int


def recorded(database_url: str) -> Recorded:
    async def read() -> Recorded:
        db = Database(database_url)
        try:
            async with db.reads() as session:
                rows = await session.execute(select(UsageRecord.request_id, UsageRecord.status))
                ledger = {request_id: status for request_id, status in rows}
                in_flight = await session.scalar(select(func.count()).select_from(RequestInFlight))
            return Recorded(ledger, in_flight or 0)
        finally:
            await db.dispose()

    return asyncio.run(read())
