"""What talking to the backend means, written once for the sync and the async client.

Each flow is a generator that yields the :class:`Call` it needs made and receives the
response (the pattern of ``httpx.Auth.auth_flow``); :mod:`dynaseal.client.sync` and
:mod:`dynaseal.client.aio` only drive it with their HTTP client.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from dynaseal.client.device_key import DeviceKey, presented_token
from dynaseal.client.errors import DeviceClientError, error_from_response
from dynaseal.client.keys import DynamicKey, is_dead_key_refusal
from dynaseal.client.origins import GatewayOrigins

LOGIN_PATH = "/v1/user/login"
REFRESH_PATH = "/v1/user/refresh"
KEY_PATH = "/v1/key/create"

#: The password, or a function that asks for it (the user, a keychain) when needed.
Password = str | Callable[[], str]
#: Headers a re-sent request must not copy: they belong to the first attempt.
_NOT_RESENT = frozenset({"host", "authorization", "dpop", "content-length"})


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
    """Login tokens and the current key of one device user; no I/O of its own.

    A password given as a string is forgotten after the first successful login; from
    then on the refresh token renews the login. When that fails too (it expired, the
    backend restarted with a new secret) a new login needs the password again, so a
    client that must survive that should pass a function returning it instead.
    """

    def __init__(
        self,
        username: str,
        password: Password | None,
        *,
        model: str | None,
        renew_margin: float,
        device_key: DeviceKey | None = None,
        origins: GatewayOrigins | None = None,
    ) -> None:
        self.username = username
        self._password = password
        self.model = model
        self.renew_margin = renew_margin
        self.device_key = device_key
        self.origins = origins or GatewayOrigins()
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.key: DynamicKey | None = None

    def login(self) -> Flow[None]:
        password = self._password() if callable(self._password) else self._password
        if password is None:
            raise DeviceClientError(
                401,
                "the login expired and the password was not kept: pass a function that "
                "returns it as the password to log in again unattended",
            )
        form = {"username": self.username, "password": password}
        response = yield Call("POST", LOGIN_PATH, {"data": form})
        self._take_tokens(response)
        if not callable(self._password):
            self._password = None  # the refresh token carries on from here

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
        body: dict[str, Any] = {"model": model or self.model, "max_tokens": max_tokens}
        if self.device_key is not None:
            body["dpop_jkt"] = self.device_key.jkt
        body = {k: v for k, v in body.items() if v is not None}
        response = yield self._key_call(body)
        if response.status_code == 401:
            yield from self.refresh()
            response = yield self._key_call(body)
        if response.status_code != 200:
            raise error_from_response(response)
        key = DynamicKey.from_response(_json(response))
        self.origins.check(key.base_url)
        if self.device_key is not None:
            self._check_bound(key, self.device_key)
        self.key = key
        return key

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
        if key is not None and presented_token(authorization) == key.token:
            key.spent = True
        return True

    @staticmethod
    def _check_bound(key: DynamicKey, device_key: DeviceKey) -> None:
        """A bearer key where a bound one was asked for is refused, not silently used:
        it would work for anyone who copies it."""
        if key.jkt != device_key.jkt:
            raise DeviceClientError(
                None,
                "the backend sent a key that is not bound to this device's key "
                "(it does not support dpop_jkt?)",
            )

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


def new_session(
    username: str,
    password: Password | None,
    *,
    model: str | None,
    renew_margin: float,
    bind: bool,
    key_file: str | os.PathLike[str] | None,
    key_algorithm: str,
    gateway_origins: Sequence[str] | None,
) -> DeviceSession:
    """The session behind both clients' constructors (their arguments are documented on
    :class:`dynaseal.client.DeviceClient`)."""
    device_key = None
    if key_file is not None:
        device_key = DeviceKey.from_file(key_file, key_algorithm)
    elif bind:
        device_key = DeviceKey.generate(key_algorithm)
    return DeviceSession(
        username,
        password,
        model=model,
        renew_margin=renew_margin,
        device_key=device_key,
        origins=GatewayOrigins(gateway_origins),
    )


def replayable_body(request: Any) -> bytes | None:
    """The body of a gateway request if it can be sent again (not a streamed upload)."""
    try:
        content = request.content
    except Exception:  # httpx(2).RequestNotRead: whichever httpx the OpenAI SDK uses
        return None
    return content if isinstance(content, bytes) else None


def resend(
    client: Any, request: Any, body: bytes, refused: DynamicKey | None, key: DynamicKey
) -> Any:
    """``request`` again with ``key`` instead of the refused one, sent to ``key``'s
    gateway when the refused key's was another (``client`` builds the request)."""
    url = str(request.url)
    old_base = refused.base_url.rstrip("/") if refused is not None else None
    sent_token = presented_token(request.headers.get("Authorization"))
    if refused is not None and refused.token == sent_token and url.startswith(f"{old_base}/"):
        url = key.base_url.rstrip("/") + url[len(old_base or "") :]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_RESENT}
    headers["Authorization"] = f"Bearer {key.token}"
    return client.build_request(
        request.method, url, headers=headers, content=body, extensions=request.extensions
    )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise DeviceClientError(response.status_code, "backend answered with non-JSON") from None
