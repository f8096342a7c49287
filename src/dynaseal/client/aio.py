"""The asyncio device client."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import httpx
import openai

from dynaseal.client.children import ChildKey, derive_child
from dynaseal.client.device_key import DeviceKey
from dynaseal.client.errors import DeviceClientError
from dynaseal.client.flows import Call, Flow, Password, T, new_session, replayable_body, resend
from dynaseal.client.keys import DynamicKey, is_spent_key_refusal

log = logging.getLogger("dynaseal.client")


class AsyncDeviceClient:
    """The asyncio twin of :class:`dynaseal.client.DeviceClient`; same methods, awaited."""

    def __init__(
        self,
        backend_url: str,
        username: str,
        password: Password,
        *,
        model: str | None = None,
        timeout: float = 30.0,
        renew_margin: float = 15.0,
        bind: bool = False,
        key_file: str | os.PathLike[str] | None = None,
        key_algorithm: str = "EdDSA",
        gateway_origins: Sequence[str] | None = None,
    ) -> None:
        self._session = new_session(
            username,
            password,
            model=model,
            renew_margin=renew_margin,
            bind=bind,
            key_file=key_file,
            key_algorithm=key_algorithm,
            gateway_origins=gateway_origins,
        )
        self._http = httpx.AsyncClient(base_url=backend_url.rstrip("/"), timeout=timeout)
        self._lock = asyncio.Lock()

    @property
    def key(self) -> DynamicKey | None:
        return self._session.key

    @property
    def device_key(self) -> DeviceKey | None:
        return self._session.device_key

    async def login(self) -> None:
        await self._run(self._session.login())

    async def refresh(self) -> None:
        await self._run(self._session.refresh())

    async def get_key(self, model: str | None = None, max_tokens: int | None = None) -> DynamicKey:
        return await self._run(self._session.get_key(model, max_tokens))

    async def current_key(self) -> DynamicKey:
        return await self._run(self._session.current_key())

    async def child_key(
        self,
        *,
        models: Sequence[str] | None = None,
        max_tokens: int | None = None,
        max_total_tokens: int | None = None,
        max_cost: Decimal | str | None = None,
        max_requests: int | None = None,
        ttl: float | None = None,
        bind: bool | str = False,
        key_algorithm: str = "EdDSA",
    ) -> ChildKey:
        """See :meth:`dynaseal.client.DeviceClient.child_key`."""
        device_key = self._session.device_key
        if device_key is None:
            raise DeviceClientError(
                None, "child keys need bound keys: AsyncDeviceClient(bind=True)"
            )
        return derive_child(
            await self.current_key(),
            device_key,
            models=models,
            max_tokens=max_tokens,
            max_total_tokens=max_total_tokens,
            max_cost=max_cost,
            max_requests=max_requests,
            ttl=ttl,
            bind=bind,
            key_algorithm=key_algorithm,
        )

    async def openai(self, **options: Any) -> openai.AsyncOpenAI:
        """See :meth:`dynaseal.client.DeviceClient.openai`."""
        base_url = (await self.current_key()).base_url

        async def api_key() -> str:
            nonlocal base_url
            key = await self.current_key()
            if key.base_url != base_url:
                base_url = llm.base_url = key.base_url
            return key.token

        llm = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            http_client=_AsyncGatewayHttpClient(self),
            **options,
        )
        return llm

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncDeviceClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _sign_gateway_request(self, request: Any) -> None:
        if self._session.device_key is not None:
            self._session.device_key.sign(request)

    async def _note_gateway_response(self, response: Any) -> None:
        authorization = response.request.headers.get("Authorization")
        if self._session.note_gateway_response(
            authorization, response.status_code, response.headers
        ):
            response.headers["x-should-retry"] = "false"

    async def _renewed_request(self, client: Any, request: Any) -> Any | None:
        """See :meth:`dynaseal.client.DeviceClient._renewed_request`."""
        body = replayable_body(request)
        if body is None:
            return None
        refused = self._session.key
        try:
            key = await self.current_key()
        except DeviceClientError as exc:
            log.warning("could not renew a spent key: %s", exc)
            return None
        return resend(client, request, body, refused, key)

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


class _AsyncGatewayHttpClient(openai.DefaultAsyncHttpxClient):
    """See :class:`dynaseal.client.sync._GatewayHttpClient`."""

    def __init__(self, device: AsyncDeviceClient) -> None:
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [device._sign_gateway_request],
            "response": [device._note_gateway_response],
        }
        super().__init__(event_hooks=hooks)
        self._device = device

    async def send(self, request: Any, **kwargs: Any) -> Any:
        response = await super().send(request, **kwargs)
        if not is_spent_key_refusal(response.status_code, response.headers):
            return response
        retry = await self._device._renewed_request(self, request)
        if retry is None:
            return response
        await response.aclose()
        return await super().send(retry, **kwargs)
