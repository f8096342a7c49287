"""The device's own key pair, which bound dynamic keys are bound to, and the DPoP proof
it adds to every gateway request.

Kept in memory by default (a new pair per process: keys bound to it die with it), or in
a file created with mode 0600 so that the device keeps its identity across restarts.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path
from typing import Any

import openai

from dynaseal.client.errors import DeviceClientError
from dynaseal.keys import (
    DPOP_HEADER,
    PrivateKey,
    generate_private_key,
    key_thumbprint,
    load_private_key,
    make_dpop_proof,
)
from dynaseal.keys.jwk import algorithm_of
from dynaseal.keys.key_pairs import private_pem_of

_SCHEMES = ("bearer", "dpop")


def presented_token(authorization: str | None) -> str | None:
    """The dynamic key in an ``Authorization: Bearer|DPoP <key>`` header."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() in _SCHEMES else None


class DeviceKey:
    """An Ed25519 or P-256 private key that never leaves the device."""

    __slots__ = ("_private_key", "algorithm", "jkt")

    def __init__(self, private_key: PrivateKey | str | bytes) -> None:
        self._private_key = load_private_key(private_key)
        self.algorithm = algorithm_of(self._private_key)
        #: RFC 7638 thumbprint of the public key: what bound keys name in ``cnf.jkt``.
        self.jkt = key_thumbprint(self._private_key)

    @classmethod
    def generate(cls, algorithm: str = "EdDSA") -> DeviceKey:
        return cls(generate_private_key(algorithm))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], algorithm: str = "EdDSA") -> DeviceKey:
        """The key kept in ``path``, created (mode 0600, ``algorithm``) if missing.

        A file other users may read is refused: whoever reads it can use every key
        bound to it.
        """
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls._load(path)
        except OSError as exc:
            raise DeviceClientError(None, f"cannot create the device key file: {exc}") from None
        key = cls.generate(algorithm)
        with os.fdopen(fd, "w") as file:
            file.write(private_pem_of(key._private_key))
        return key

    @classmethod
    def _load(cls, path: Path) -> DeviceKey:
        try:
            mode = path.stat().st_mode
            if os.name == "posix" and stat.S_IMODE(mode) & 0o077:
                raise DeviceClientError(
                    None, f"the device key file {path} is readable by others: chmod 600 it"
                )
            return cls(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise DeviceClientError(None, f"cannot read the device key file: {exc}") from None

    @property
    def private_key(self) -> PrivateKey:
        return self._private_key

    def proof(
        self, method: str, url: str, access_token: str | None, *, nonce: str | None = None
    ) -> str:
        """A fresh DPoP proof for one request (a new ``jti`` each time)."""
        return make_dpop_proof(
            self._private_key, method, url, access_token, now=time.time(), nonce=nonce
        )

    def sign(self, request: Any) -> None:
        """httpx request hook: a proof for this very request, or none when it carries no
        key (such as after a redirect to another origin, which drops ``Authorization``)."""
        request.headers.pop(DPOP_HEADER, None)
        token = presented_token(request.headers.get("Authorization"))
        if token is not None:
            request.headers[DPOP_HEADER] = self.proof(request.method, str(request.url), token)

    async def async_sign(self, request: Any) -> None:
        self.sign(request)

    def http_client(self, **options: Any) -> openai.DefaultHttpxClient:
        """An HTTP client for ``openai.OpenAI(http_client=...)`` that proves possession
        of this key with every request."""
        return openai.DefaultHttpxClient(event_hooks={"request": [self.sign]}, **options)

    def async_http_client(self, **options: Any) -> openai.DefaultAsyncHttpxClient:
        return openai.DefaultAsyncHttpxClient(event_hooks={"request": [self.async_sign]}, **options)

    def __repr__(self) -> str:
        return f"DeviceKey({self.algorithm}, jkt={self.jkt!r})"
