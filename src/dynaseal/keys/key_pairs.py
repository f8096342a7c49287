"""Asymmetric tenant keys: the tenant keeps the private key, the gateway gets the public
one and so never holds anything that can mint dynamic keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

#: Asymmetric algorithms a tenant key may use (JOSE names).
ASYMMETRIC_ALGORITHMS = ("EdDSA", "ES256")


@dataclass(frozen=True, slots=True)
class KeyPair:
    algorithm: str
    private_pem: str  # keep in the business backend; mint with it
    public_pem: str  # register with the gateway


def new_private_key(algorithm: str) -> Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    """A fresh Ed25519 (``EdDSA``) or P-256 (``ES256``) private key."""
    if algorithm == "EdDSA":
        return Ed25519PrivateKey.generate()
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"algorithm must be one of {ASYMMETRIC_ALGORITHMS}")


def generate_key_pair(algorithm: str = "EdDSA") -> KeyPair:
    """A fresh Ed25519 (``EdDSA``) or P-256 (``ES256``) key pair as PEM strings."""
    private = new_private_key(algorithm)
    return KeyPair(algorithm, private_pem_of(private), public_pem_of(private.public_key()))


def private_pem_of(private_key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    """Unencrypted PKCS#8 PEM: for a place that is itself protected (a secret store, a
    file only its owner reads)."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem_of(public_key: Any) -> str:
    pem: bytes = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def load_public_key(algorithm: str, pem: str) -> Any:
    """Parse a PEM public key and check that it is of the kind ``algorithm`` needs."""
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("not a PEM public key") from exc
    if algorithm == "EdDSA" and isinstance(key, Ed25519PublicKey):
        return key
    if (
        algorithm == "ES256"
        and isinstance(key, ec.EllipticCurvePublicKey)
        and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise ValueError(f"the public key is not a {algorithm} key")
