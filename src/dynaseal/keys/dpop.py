"""DPoP proofs (RFC 9449): what makes a copied bound key useless without the device.

The device signs, for every request, a short JWT naming the method, the URL, the time
and a hash of the dynamic key it sends. The verifier checks all of it against the
request it received and against the key's ``cnf.jkt``; the one check that needs state,
"this ``jti`` was not seen before", is left to the caller (see :class:`DpopProof`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import jwt

from dynaseal.keys.claims import KeyGrant
from dynaseal.keys.compact import b64url_encode, split_compact
from dynaseal.keys.errors import InvalidDpopProof
from dynaseal.keys.jwk import (
    PrivateKey,
    algorithm_of,
    jwk_thumbprint,
    load_private_key,
    public_jwk,
    public_key_from_jwk,
)

#: ``typ`` header of a proof (RFC 9449 section 4.2).
DPOP_TYPE = "dpop+jwt"
#: Name of the request header that carries the proof.
DPOP_HEADER = "DPoP"
#: Proofs longer than this are refused before any parsing.
MAX_PROOF_LENGTH = 4096
#: Seconds a proof's ``iat`` may be away from the verifier's clock, either way.
DEFAULT_MAX_AGE = 60.0
#: Header parameters that would point the verifier at a key other than ``jwk``, or
#: demand processing we do not do.
_REFUSED_HEADERS = frozenset({"jku", "x5u", "x5c", "x5t", "x5t#S256", "crit", "b64"})
_MAX_JTI_LENGTH = 256
_MAX_NONCE_LENGTH = 512
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True, slots=True)
class DpopProof:
    """A proof whose every stateless check passed.

    The caller must still refuse a ``replay_key`` it has seen before; remembering it
    until ``fresh_until`` is enough, since the proof is refused as stale after that.
    """

    jkt: str
    jti: str
    issued_at: float
    fresh_until: float

    @property
    def replay_key(self) -> str:
        """What a replay cache stores: the ``jti`` within its key's namespace, so that
        one device cannot burn another device's ``jti`` values."""
        return f"{self.jkt}:{self.jti}"


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim: base64url SHA-256 of the token's ASCII bytes."""
    return b64url_encode(hashlib.sha256(access_token.encode()).digest())


def _normalise_path(path: str) -> str:
    """RFC 3986 section 6.2.2.2: upper-case percent-encodings, decode unreserved ones."""

    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group()[1:], 16))
        return char if char in _UNRESERVED else match.group().upper()

    return _PERCENT.sub(fix, path) or "/"


def normalise_htu(url: str) -> str:
    """The form in which ``htu`` values are compared (RFC 9449 section 4.3): query and
    fragment dropped, scheme and host in lower case, default port omitted, empty path
    as ``/``. ``ValueError`` for anything that is not an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("not an absolute http(s) URL")
    if "@" in parts.netloc:
        raise ValueError("URL carries credentials")
    host = parts.hostname  # lower-cased by urllib
    if ":" in host:
        host = f"[{host}]"
    port = parts.port  # ValueError for a port that is not a number in range
    authority = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{authority}{_normalise_path(parts.path)}"


def make_dpop_proof(
    private_key: PrivateKey | str | bytes,
    htm: str,
    htu: str,
    access_token: str | None,
    *,
    now: float,
    jti: str | None = None,
    nonce: str | None = None,
) -> str:
    """A proof for one request: ``htm`` the method, ``htu`` the URL (query and fragment
    are dropped), ``access_token`` the dynamic key sent with it (``None`` when there is
    none, as for ``POST /key/create``, RFC 9449 section 10)."""
    key = load_private_key(private_key)
    parts = urlsplit(htu)
    claims: dict[str, object] = {
        "jti": jti or uuid.uuid4().hex,
        "htm": htm.upper(),
        "htu": parts._replace(query="", fragment="").geturl(),
        "iat": int(now),
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    algorithm = algorithm_of(key)
    headers = {"typ": DPOP_TYPE, "jwk": public_jwk(key)}
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _string_claim(claims: dict[str, object], name: str, max_length: int) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise InvalidDpopProof(f"proof claim {name} is missing or malformed")
    return value


def verify_dpop_proof(
    proof: object,
    *,
    htm: str,
    htu: str,
    access_token: str | None,
    expected_jkt: str | None,
    now: float,
    max_age: float = DEFAULT_MAX_AGE,
    nonce: str | None = None,
) -> DpopProof:
    """Check a ``DPoP`` header value against the request it came with.

    ``htm``/``htu`` are the method and the URL as the *client* addressed it (behind a
    proxy: the public URL); ``access_token`` the presented dynamic key (its hash must
    be the proof's ``ath``), or ``None`` where no token is sent; ``expected_jkt`` the
    key's ``cnf.jkt`` (``None``: any key, whose thumbprint is returned); ``nonce`` the
    server nonce the proof must echo, if one was demanded. Raises
    :class:`InvalidDpopProof` with a reason for the log.
    """
    header, claims = split_compact(proof, max_length=MAX_PROOF_LENGTH, error=InvalidDpopProof)
    assert isinstance(proof, str)
    if header.get("typ") != DPOP_TYPE:
        raise InvalidDpopProof("proof typ is not dpop+jwt")
    refused = _REFUSED_HEADERS.intersection(header)
    if refused:
        raise InvalidDpopProof(f"refused proof header parameter(s): {sorted(refused)}")
    try:
        algorithm, public_key = public_key_from_jwk(header.get("jwk"))
        jkt = jwk_thumbprint(header["jwk"])
    except ValueError as exc:
        raise InvalidDpopProof(f"proof jwk refused: {exc}") from None
    if header.get("alg") != algorithm:  # the key decides the algorithm, never the token
        raise InvalidDpopProof("proof alg does not match its jwk")
    if expected_jkt is not None and not hmac.compare_digest(jkt, expected_jkt):
        raise InvalidDpopProof("proof signed by a key other than the one the token is bound to")
    try:
        jwt.api_jws.decode_complete(proof, public_key, algorithms=[algorithm])
    except jwt.InvalidTokenError:
        raise InvalidDpopProof("proof signature does not verify") from None

    jti = _string_claim(claims, "jti", _MAX_JTI_LENGTH)
    if claims.get("htm") != htm:
        raise InvalidDpopProof("proof htm is not the request method")
    claimed_htu = _string_claim(claims, "htu", MAX_PROOF_LENGTH)
    try:
        htu_matches = normalise_htu(claimed_htu) == normalise_htu(htu)
    except ValueError:
        htu_matches = False
    if not htu_matches:
        raise InvalidDpopProof("proof htu is not the request URL")
    issued_at = claims.get("iat")
    if (
        isinstance(issued_at, bool)
        or not isinstance(issued_at, int | float)
        or not math.isfinite(issued_at)
    ):
        raise InvalidDpopProof("proof iat is missing or malformed")
    if abs(now - issued_at) > max_age:
        raise InvalidDpopProof("proof iat is outside the accepted window")
    if access_token is not None:
        ath = claims.get("ath")
        if (
            not isinstance(ath, str)
            or not access_token.isascii()
            or not hmac.compare_digest(ath, access_token_hash(access_token))
        ):
            raise InvalidDpopProof("proof ath is not the hash of the presented key")
    if nonce is not None:
        claimed_nonce = _string_claim(claims, "nonce", _MAX_NONCE_LENGTH)
        if not hmac.compare_digest(claimed_nonce, nonce):
            raise InvalidDpopProof("proof nonce is not the one the server gave")
    return DpopProof(
        jkt=jkt, jti=jti, issued_at=float(issued_at), fresh_until=float(issued_at) + max_age
    )


def verify_binding(
    grant: KeyGrant,
    access_token: str,
    dpop_headers: Sequence[str],
    *,
    htm: str,
    htu: str,
    now: float,
    max_age: float = DEFAULT_MAX_AGE,
    nonce: str | None = None,
) -> DpopProof | None:
    """The per-request check of a presented key's binding, for the gateway.

    ``grant`` is the presented key's grant (the last of its chain), ``dpop_headers``
    every ``DPoP`` header of the request. ``None`` for a key that is not bound (a proof
    sent along with it is ignored, RFC 9449 section 7.2); otherwise exactly one proof
    must verify against ``grant.jkt`` - and its ``replay_key`` is the caller's to check.
    """
    if grant.jkt is None:
        return None
    if len(dpop_headers) != 1:
        raise InvalidDpopProof(
            f"a bound key needs exactly one DPoP header, got {len(dpop_headers)}"
        )
    return verify_dpop_proof(
        dpop_headers[0],
        htm=htm,
        htu=htu,
        access_token=access_token,
        expected_jkt=grant.jkt,
        now=now,
        max_age=max_age,
        nonce=nonce,
    )
