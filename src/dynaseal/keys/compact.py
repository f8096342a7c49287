"""Strict parsing of compact JWS segments, shared by keys, DPoP proofs and child keys.

PyJWT checks signatures; what it accepts before that (padding, stray characters, JSON
that is not an object) is looser than a verifier facing attackers should be, so every
token is split and decoded here first.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import orjson

from dynaseal.keys.errors import InvalidKey

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(segment: str) -> bytes:
    """The inverse of :func:`b64url_encode`; ``ValueError`` for anything else,
    including non-canonical encodings (stray bits in the last character)."""
    if not isinstance(segment, str) or not _B64URL.match(segment):
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
    if b64url_encode(raw) != segment:
        raise ValueError("not canonical base64url")
    return raw


def decode_json_segment(segment: str, error: type[InvalidKey] = InvalidKey) -> dict[str, Any]:
    """One base64url segment holding a JSON object, or ``error``."""
    try:
        value = orjson.loads(b64url_decode(segment))
    except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
        raise error("segment is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise error("segment is not a JSON object")
    return value


def split_compact(
    token: object, *, max_length: int, error: type[InvalidKey] = InvalidKey
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a three-part compact JWS, nothing trusted yet."""
    if not isinstance(token, str) or not token:
        raise error("no token")
    if len(token) > max_length:
        raise error("token too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise error("not a three-part compact JWS")
    try:
        b64url_decode(parts[2])  # one encoding per signature: no malleable copies
    except ValueError:
        raise error("signature is not canonical base64url") from None
    return decode_json_segment(parts[0], error), decode_json_segment(parts[1], error)
