"""The blocking device client."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import openai

from dynaseal.client.errors import DeviceClientError
from dynaseal.client.flows import Call, DeviceSession, Flow, T
from dynaseal.client.keys import DynamicKey


class DeviceClient:
    """Logs a device user in to the backend and keeps them supplied with dynamic keys.

    Safe to share between threads: key renewal happens under a lock.
    """

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
        self._http = httpx.Client(base_url=backend_url.rstrip("/"), timeout=timeout)
        self._lock = threading.RLock()

    @property
    def key(self) -> DynamicKey | None:
        """The key in hand, if any (it may have expired)."""
        return self._session.key

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

    def openai(self, **options: Any) -> openai.OpenAI:
        """An OpenAI client for the gateway that always sends a usable key.

        The key is fetched per request, so an expiring key is renewed before it is
        sent. When the gateway answers that the key is spent or dead (429
        ``insufficient_quota`` / 401 ``invalid_key``), that call raises as usual and
        is not retried; the next call gets a fresh key. ``options`` go to
        ``openai.OpenAI`` (``max_retries``, ``timeout`` ...).
        """
        key = self.current_key()
        hooks = {"response": [self._note_gateway_response]}
        return openai.OpenAI(
            api_key=lambda: self.current_key().token,
            base_url=key.base_url,
            http_client=openai.DefaultHttpxClient(event_hooks=hooks),
            **options,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _note_gateway_response(self, response: Any) -> None:
        # Any: the OpenAI SDK's own HTTP package (httpx2) has the same Response API.
        authorization = response.request.headers.get("Authorization")
        with self._lock:
            refused = self._session.note_gateway_response(
                authorization, response.status_code, response.headers
            )
        if refused:
            response.headers["x-should-retry"] = "false"

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
