"""The blocking device client."""

from __future__ import annotations

import logging
import os
import threading
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


class DeviceClient:
    """Logs a device user in to the backend and keeps them supplied with dynamic keys.

    ``password`` may be a function returning it: a string is forgotten after the first
    login (the refresh token renews the session), so re-logging in unattended after the
    refresh token itself expires needs the function. With ``bind=True`` the client makes
    a device key pair (Ed25519, or P-256 with ``key_algorithm="ES256"``; kept in
    ``key_file``, created with mode 0600, when given - which implies ``bind``), asks
    for keys bound to it, and proves possession with a DPoP header on every gateway
    request. ``gateway_origins`` are the gateways keys may be sent to (see
    :mod:`dynaseal.client.origins`; unset: the first key's, https unless loopback).

    Safe to share between threads: key renewal happens under a lock.
    """

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
        self._http = httpx.Client(base_url=backend_url.rstrip("/"), timeout=timeout)
        self._lock = threading.RLock()

    @property
    def key(self) -> DynamicKey | None:
        """The key in hand, if any (it may have expired)."""
        return self._session.key

    @property
    def device_key(self) -> DeviceKey | None:
        """The device key pair keys are bound to (``None`` unless ``bind``)."""
        return self._session.device_key

    def login(self) -> None:
        self._run(self._session.login())

    def refresh(self) -> None:
        """New login tokens from the refresh token, or by logging in again."""
        self._run(self._session.refresh())

    def get_key(self, model: str | None = None, max_tokens: int | None = None) -> DynamicKey:
        """A new key; ``model`` and ``max_tokens`` may narrow the user's policy."""
        return self._run(self._session.get_key(model, max_tokens))

    def current_key(self) -> DynamicKey:
        """The key in hand while it is neither expiring nor spent, else a new one."""
        return self._run(self._session.current_key())

    def child_key(
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
        """A narrower key for a sub-agent, derived offline from the current bound key.

        Caps left out are the parent's; the child never outlives the parent and every
        request it makes is charged to the parent too. ``bind=True`` gives the child its
        own key pair (returned with it); a thumbprint string binds it to a key the
        sub-agent already has. Needs ``bind`` on the client; ``ValueError`` for caps
        wider than the parent's.
        """
        device_key = self._session.device_key
        if device_key is None:
            raise DeviceClientError(None, "child keys need bound keys: DeviceClient(bind=True)")
        return derive_child(
            self.current_key(),
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

    def openai(self, **options: Any) -> openai.OpenAI:
        """An OpenAI client for the gateway that always sends a usable key.

        The key is fetched per request, so an expiring key is renewed before it is
        sent, and a renewed key naming another (allowed) gateway URL is followed. When
        the gateway answers that the key is spent (429 ``insufficient_quota``), the
        client gets a new key and sends that call once more; any other refusal of the
        key (401 ``invalid_key``) raises as usual, unretried, and the next call gets a
        fresh key. ``options`` go to ``openai.OpenAI`` (``max_retries``, ``timeout``
        ...).
        """
        base_url = self.current_key().base_url

        def api_key() -> str:
            nonlocal base_url
            key = self.current_key()
            if key.base_url != base_url:
                base_url = llm.base_url = key.base_url
            return key.token

        llm = openai.OpenAI(
            api_key=api_key, base_url=base_url, http_client=_GatewayHttpClient(self), **options
        )
        return llm

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _sign_gateway_request(self, request: Any) -> None:
        if self._session.device_key is not None:
            self._session.device_key.sign(request)

    def _note_gateway_response(self, response: Any) -> None:
        # Any: the OpenAI SDK's own HTTP package (httpx2) has the same Response API.
        authorization = response.request.headers.get("Authorization")
        with self._lock:
            refused = self._session.note_gateway_response(
                authorization, response.status_code, response.headers
            )
        if refused:
            response.headers["x-should-retry"] = "false"

    def _renewed_request(self, client: Any, request: Any) -> Any | None:
        """``request`` with a new key after the gateway said the sent one is spent, or
        ``None`` when it cannot be sent again."""
        body = replayable_body(request)
        if body is None:
            return None
        with self._lock:
            refused = self._session.key
            try:
                key = self.current_key()
            except DeviceClientError as exc:
                log.warning("could not renew a spent key: %s", exc)
                return None
        return resend(client, request, body, refused, key)

    def _run(self, flow: Flow[T]) -> T:
        with self._lock:
            try:
                call = next(flow)
                while True:
                    call = flow.send(self._send(call))
            except StopIteration as done:
                result: T = done.value
                return result

    def _send(self, call: Call) -> httpx.Response:
        try:
            return self._http.request(call.method, call.path, **call.kwargs)
        except httpx.HTTPError as exc:
            raise DeviceClientError(None, f"backend unreachable: {exc}") from exc


class _GatewayHttpClient(openai.DefaultHttpxClient):
    """The OpenAI SDK's HTTP client with the device's rules for gateway requests: a
    DPoP proof on each (when bound), and one retry with a new key when the sent one is
    spent, below the SDK so that its own retries never see the spent-key refusal."""

    def __init__(self, device: DeviceClient) -> None:
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [device._sign_gateway_request],
            "response": [device._note_gateway_response],
        }
        super().__init__(event_hooks=hooks)
        self._device = device

    def send(self, request: Any, **kwargs: Any) -> Any:
        response = super().send(request, **kwargs)
        if not is_spent_key_refusal(response.status_code, response.headers):
            return response
        retry = self._device._renewed_request(self, request)
        if retry is None:
            return response
        response.close()
        return super().send(retry, **kwargs)
