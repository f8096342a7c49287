"""What talking to the backend means, written once for the sync and the async client.

Each flow is a generator that yields the :class:`Call` it needs made and receives the
response (the pattern of ``httpx.Auth.auth_flow``); :mod:`dynaseal.client.sync` and
:mod:`dynaseal.client.aio` only drive it with their HTTP client.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from dynaseal.client.errors import DeviceClientError, error_from_response
from dynaseal.client.keys import DynamicKey, is_dead_key_refusal

LOGIN_PATH = "/v1/user/login"
REFRESH_PATH = "/v1/user/refresh"
KEY_PATH = "/v1/key/create"


@dataclass(frozen=True, slots=True)
class Call:
    """One request to the backend, as keyword arguments for ``httpx`` ``request()``."""

    method: str
    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T")
#: A flow that ends with a value of type ``T``.
Flow = Generator[Call, httpx.Response, T]


class DeviceSession:
    """Login tokens and the current key of one device user; no I/O of its own."""

    def __init__(
        self, username: str, password: str, *, model: str | None, renew_margin: float
    ) -> None:
        self.username = username
        self._password = password
        self.model = model
        self.renew_margin = renew_margin
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.key: DynamicKey | None = None

    def login(self) -> Flow[None]:
        form = {"username": self.username, "password": self._password}
        response = yield Call("POST", LOGIN_PATH, {"data": form})
        self._take_tokens(response)

    def refresh(self) -> Flow[None]:
        """Swap the refresh token for new tokens; log in again if it is refused."""
        if self.refresh_token is not None:
            body = {"refresh_token": self.refresh_token}
            response = yield Call("POST", REFRESH_PATH, {"json": body})
            if response.status_code != 401:
                self._take_tokens(response)
                return
        yield from self.login()

    def get_key(self, model: str | None = None, max_tokens: int | None = None) -> Flow[DynamicKey]:
        """Mint a new key; an expired login is refreshed once on the way."""
        if self.access_token is None:
            yield from self.login()
        body = {"model": model or self.model, "max_tokens": max_tokens}
        body = {k: v for k, v in body.items() if v is not None}
        response = yield self._key_call(body)
        if response.status_code == 401:
            yield from self.refresh()
            response = yield self._key_call(body)
        if response.status_code != 200:
            raise error_from_response(response)
        self.key = DynamicKey.from_response(_json(response))
        return self.key

    def current_key(self) -> Flow[DynamicKey]:
        """The key in hand while it is usable, else a new one with the default policy."""
        if self.key is not None and self.key.is_usable(self.renew_margin):
            return self.key
        return (yield from self.get_key())

    def note_gateway_response(
        self, authorization: str | None, status: int, headers: Mapping[str, str]
    ) -> bool:
        """Mark the key spent if the gateway refused it for good; return whether it did.

        Only the key that was actually sent is marked, so a late answer about an old
        key does not throw away a fresh one.
        """
        if not is_dead_key_refusal(status, headers):
            return False
        key = self.key
        if key is not None and authorization == f"Bearer {key.token}":
            key.spent = True
        return True

    def _key_call(self, body: dict[str, Any]) -> Call:
        headers = {"Authorization": f"Bearer {self.access_token}"}
        return Call("POST", KEY_PATH, {"json": body, "headers": headers})

    def _take_tokens(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise error_from_response(response)
        data = _json(response)
        try:
            self.access_token = str(data["access_token"])
            self.refresh_token = str(data["refresh_token"])
        except (KeyError, TypeError) as exc:
            raise DeviceClientError(None, f"backend sent malformed tokens: {exc!r}") from None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise DeviceClientError(response.status_code, "backend answered with non-JSON") from None
