"""Tenant HS secrets are stored encrypted (AES-GCM, key derived from SECRET_KEY by HKDF),
so a database dump alone cannot mint dynamic keys."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dynaseal.core.server_secret import ServerSecret

_NONCE_BYTES = 12


class SecretsBox:
    def __init__(self, server_secret: ServerSecret) -> None:
        self._server_secret = server_secret
        self._cipher: AESGCM | None = None

    @property
    def _aead(self) -> AESGCM:
        # Derived on first use: the server secret is only known once start-up loaded it.
        if self._cipher is None:
            key = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"dynaseal tenant secrets v1"
            ).derive(self._server_secret.value.encode())
            self._cipher = AESGCM(key)
        return self._cipher

    def seal(self, plaintext: bytes, context: str) -> bytes:
        """Encrypt, binding the ciphertext to ``context`` (the key id) so rows can't be swapped."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def open(self, sealed: bytes, context: str) -> bytes | None:
        """Decrypt; ``None`` when the row was sealed under another SECRET_KEY or tampered with."""
        try:
            return self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context.encode()
            )
        except (InvalidTag, ValueError):
            return None
