"""The asyncio device client."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai

from dynaseal.client.errors import DeviceClientError
from dynaseal.client.flows import Call, DeviceSession, Flow, T
from dynaseal.client.keys import DynamicKey


class AsyncDeviceClient:
    """The asyncio twin of :class:`dynaseal.client.DeviceClient`; same methods, awaited."""

    def __init__(
        self,
        backend_url: str,
        username: str,
        password: str,
        *,
        model: str | None = None,
        timeout: float = 30.0,
        renew_margin: float = 15.0,
    ) -> None:
        self._session = DeviceSession(username, password, model=model, renew_margin=renew_margin)
        self._http = httpx.AsyncClient(base_url=backend_url.rstrip("/"), timeout=timeout)
        self._lock = asyncio.Lock()

    @property
    def key(self) -> DynamicKey | None:
        return self._session.key

    async def login(self) -> None:
        await self._run(self._session.login())

    async def refresh(self) -> None:
        await self._run(self._session.refresh())

    async def get_key(self, model: str | None = None, max_tokens: int | None = None) -> DynamicKey:
        return await self._run(self._session.get_key(model, max_tokens))

    async def current_key(self) -> DynamicKey:
        return await self._run(self._session.current_key())

    async def openai(self, **options: Any) -> openai.AsyncOpenAI:
        """See :meth:`dynaseal.client.DeviceClient.openai`."""
        key = await self.current_key()

        async def api_key() -> str:
            return (await self.current_key()).token

        hooks = {"response": [self._note_gateway_response]}
        return openai.AsyncOpenAI(
            api_key=api_key,
            base_url=key.base_url,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks=hooks),
            **options,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncDeviceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _note_gateway_response(self, response: Any) -> None:
        authorization = response.request.headers.get("Authorization")
        if self._session.note_gateway_response(
            authorization, response.status_code, response.headers
        ):
            response.headers["x-should-retry"] = "false"

    async def _run(self, flow: Flow[T]) -> T:
        async with self._lock:
            try:
                call = next(flow)
                while True:
                    call = flow.send(await self._send(call))
            except StopIteration as done:
                result: T = done.value
                return result

    async def _send(self, call: Call) -> httpx.Response:
        try:
            return await self._http.request(call.method, call.path, **call.kwargs)
        except httpx.HTTPError as exc:
            raise DeviceClientError(None, f"backend unreachable: {exc}") from exc
