"""Device public keys as JWKs and their RFC 7638 thumbprints.

A bound key names its device key by thumbprint (``cnf.jkt``, RFC 7800 / RFC 9449); DPoP
proofs and child keys carry the public key itself as a ``jwk`` header. Only Ed25519
(``OKP``, alg ``EdDSA``) and P-256 (``EC``, alg ``ES256``) keys are accepted, and the
algorithm follows from the key, never from the token's own ``alg`` choice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dynaseal.keys.compact import b64url_decode, b64url_encode
from dynaseal.keys.key_pairs import new_private_key

PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey

#: A SHA-256 JWK thumbprint: 32 bytes in base64url, 43 characters.
THUMBPRINT = re.compile(r"^[A-Za-z0-9_-]{43}$")
#: RFC 7638 section 3.2: the members a thumbprint covers, per key type.
_REQUIRED_MEMBERS = {
    "OKP": ("crv", "kty", "x"),
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
}
#: Members that would make a JWK a private key (RFC 7517/7518/8037).
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: What a public JWK may hold (Web Crypto's exportKey adds ``ext`` and ``key_ops``).
_PUBLIC_MEMBERS = frozenset({"kty", "crv", "x", "y", "alg", "use", "kid", "key_ops", "ext"})
_COORDINATE_BYTES = 32


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint: the required members, sorted, no whitespace."""
    members = _REQUIRED_MEMBERS.get(jwk.get("kty"))  # type: ignore[arg-type]
    if members is None:
        raise ValueError("unsupported JWK key type")
    if not all(isinstance(jwk.get(name), str) for name in members):
        raise ValueError("JWK is missing a required member")
    canonical = orjson.dumps({name: jwk[name] for name in members})  # members listed sorted
    return b64url_encode(hashlib.sha256(canonical).digest())


def is_thumbprint(value: object) -> bool:
    return isinstance(value, str) and bool(THUMBPRINT.match(value))


def algorithm_of(key: PublicKey | PrivateKey) -> str:
    """The JOSE algorithm a device key signs with."""
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return "ES256"
    raise ValueError("device keys are Ed25519 or P-256")


def public_jwk(key: PublicKey | PrivateKey) -> dict[str, str]:
    """The public JWK of a device key (only the required members)."""
    private = isinstance(key, Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    public = key.public_key() if private else key  # type: ignore[union-attr]
    if algorithm_of(public) == "EdDSA":
        assert isinstance(public, Ed25519PublicKey)
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"crv": "Ed25519", "kty": "OKP", "x": b64url_encode(raw)}
    assert isinstance(public, ec.EllipticCurvePublicKey)
    numbers = public.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url_encode(numbers.x.to_bytes(_COORDINATE_BYTES, "big")),
        "y": b64url_encode(numbers.y.to_bytes(_COORDINATE_BYTES, "big")),
    }


def key_thumbprint(key: PublicKey | PrivateKey) -> str:
    """The ``jkt`` of a device key: what ``cnf.jkt`` and ``dpop_jkt`` hold."""
    return jwk_thumbprint(public_jwk(key))


def _coordinate(jwk: Mapping[str, Any], name: str) -> bytes:
    try:
        raw = b64url_decode(jwk.get(name))  # type: ignore[arg-type]
    except ValueError:
        raise ValueError(f"JWK member {name} is not base64url") from None
    if len(raw) != _COORDINATE_BYTES:
        raise ValueError(f"JWK member {name} has the wrong length")
    return raw


def public_key_from_jwk(jwk: object) -> tuple[str, PublicKey]:
    """The algorithm and public key of a ``jwk`` header, refusing anything private,
    unknown or malformed."""
    if not isinstance(jwk, dict):
        raise ValueError("jwk is not a JSON object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise ValueError("jwk holds private key material")
    if not _PUBLIC_MEMBERS.issuperset(jwk):
        raise ValueError("jwk has unknown members")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("jwk is not a signing key")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "OKP" and crv == "Ed25519" and "y" not in jwk:
        algorithm = "EdDSA"
        key: PublicKey = Ed25519PublicKey.from_public_bytes(_coordinate(jwk, "x"))
    elif kty == "EC" and crv == "P-256":
        algorithm = "ES256"
        x, y = (int.from_bytes(_coordinate(jwk, name), "big") for name in ("x", "y"))
        # cryptography refuses a point that is not on the curve.
        key = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    else:
        raise ValueError("jwk is neither an Ed25519 nor a P-256 public key")
    if jwk.get("alg", algorithm) != algorithm:
        raise ValueError("jwk alg does not match its key type")
    return algorithm, key


def load_private_key(key: PrivateKey | str | bytes) -> PrivateKey:
    """A device private key from a key object or an unencrypted PKCS#8 PEM."""
    if isinstance(key, str | bytes):
        try:
            loaded = serialization.load_pem_private_key(
                key.encode() if isinstance(key, str) else key, password=None
            )
        except (ValueError, TypeError) as exc:
            raise ValueError("not an unencrypted PEM private key") from exc
    else:
        loaded = key
    if not isinstance(loaded, Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("device keys are Ed25519 or P-256")
    algorithm_of(loaded)  # refuses other curves
    return loaded


def generate_private_key(algorithm: str = "EdDSA") -> PrivateKey:
    """A fresh device key: ``EdDSA`` (Ed25519) or ``ES256`` (P-256)."""
    return new_private_key(algorithm)
