"""Device keys, thumbprints and DPoP proofs (RFC 7638, RFC 9449): pure functions."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynaseal.keys import (
    DEFAULT_AUDIENCE,
    InvalidDpopProof,
    InvalidKey,
    VerificationKey,
    access_token_hash,
    generate_private_key,
    jwk_thumbprint,
    key_thumbprint,
    make_dpop_proof,
    mint_key,
    normalise_htu,
    peek_key,
    public_jwk,
    public_key_from_jwk,
    verify_binding,
    verify_dpop_proof,
    verify_key,
)

URL = "https://gateway.example/v1/chat/completions"
TOKEN = "header.payload.signature"
NOW = 1_750_000_000.0
ED_KEY = generate_private_key("EdDSA")
EC_KEY = generate_private_key("ES256")

# RFC 7638 section 3.1 (RSA), RFC 8037 appendix A.3 (Ed25519), RFC 9449 sections 4.1
# and 6.1 (P-256): the published keys and thumbprints.
RFC_7638_RSA = {
    "kty": "RSA",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_"
    "BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2"
    "QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
    "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
}
RFC_8037_OKP = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC_9449_EC = {
    "kty": "EC",
    "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "crv": "P-256",
}


@pytest.mark.parametrize(
    ("jwk", "thumbprint"),
    [
        (RFC_7638_RSA, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"),
        (RFC_8037_OKP, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"),
        (RFC_9449_EC, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"),
    ],
)
def test_thumbprints_match_the_rfc_examples(jwk: dict[str, str], thumbprint: str) -> None:
    assert jwk_thumbprint(jwk) == thumbprint


def test_ath_matches_the_rfc_9449_example() -> None:
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


@pytest.mark.parametrize("key", [ED_KEY, EC_KEY], ids=["EdDSA", "ES256"])
def test_a_device_key_round_trips_through_its_jwk(key: Any) -> None:
    jwk = public_jwk(key)
    algorithm, public = public_key_from_jwk(jwk)
    assert algorithm == ("EdDSA" if jwk["kty"] == "OKP" else "ES256")
    assert key_thumbprint(public) == key_thumbprint(key) == jwk_thumbprint(jwk)
    decorated = jwk | {"ext": True, "key_ops": ["verify"], "alg": algorithm, "use": "sig"}
    assert key_thumbprint(public_key_from_jwk(decorated)[1]) == key_thumbprint(key)


@pytest.mark.parametrize(
    "change",
    [
        {"d": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},  # a private key
        {"x": "AAAA"},  # wrong length
        {"x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo="},  # padding
        {"crv": "Ed448"},
        {"kty": "RSA"},
        {"alg": "ES256"},  # contradicts the key type
        {"use": "enc"},
        {"x5c": ["MIIB"]},  # unknown member
    ],
)
def test_jwks_other_than_public_ed25519_or_p256_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        public_key_from_jwk(RFC_8037_OKP | change)


def test_a_point_off_the_curve_is_refused() -> None:
    off_curve = RFC_9449_EC | {"y": RFC_9449_EC["x"]}
    with pytest.raises(ValueError):
        public_key_from_jwk(off_curve)


@pytest.mark.parametrize("key", [ED_KEY, EC_KEY], ids=["EdDSA", "ES256"])
def test_a_good_proof_verifies(key: Any) -> None:
    proof = make_dpop_proof(key, "POST", URL + "?q=1#frag", TOKEN, now=NOW, jti="j-1")
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
    claims = jwt.decode(proof, options={"verify_signature": False})
    assert claims == {
        "jti": "j-1",
        "htm": "POST",
        "htu": URL,
        "iat": int(NOW),
        "ath": access_token_hash(TOKEN),
    }
    verified = verify_dpop_proof(
        proof,
        htm="POST",
        htu=URL,
        access_token=TOKEN,
        expected_jkt=key_thumbprint(key),
        now=NOW + 59,
    )
    assert verified.jkt == key_thumbprint(key) and verified.jti == "j-1"
    assert verified.issued_at == int(NOW) and verified.fresh_until == int(NOW) + 60
    assert verified.replay_key == f"{key_thumbprint(key)}:j-1"


def test_without_an_expected_key_the_thumbprint_is_returned() -> None:
    """RFC 9449 section 10: the backend learns which key to bind from the proof."""
    proof = make_dpop_proof(ED_KEY, "POST", URL, None, now=NOW)
    assert "ath" not in jwt.decode(proof, options={"verify_signature": False})
    verified = verify_dpop_proof(
        proof, htm="POST", htu=URL, access_token=None, expected_jkt=None, now=NOW
    )
    assert verified.jkt == key_thumbprint(ED_KEY)


@pytest.mark.parametrize(
    ("proof_url", "request_url"),
    [
        ("HTTPS://Gateway.EXAMPLE:443/v1/chat/completions", URL),
        ("https://gateway.example/v1/chat/completions?stream=1", URL + "?other=2#x"),
        ("http://127.0.0.1:80/v1/%7euser/a%2fb", "http://127.0.0.1/v1/~user/a%2Fb"),
        ("https://gateway.example", "https://gateway.example/"),
        ("http://[::1]:80/v1", "HTTP://[::1]/v1"),
    ],
)
def test_htu_is_compared_as_rfc_9449_says(proof_url: str, request_url: str) -> None:
    assert normalise_htu(proof_url) == normalise_htu(request_url)
    proof = make_dpop_proof(ED_KEY, "GET", proof_url, TOKEN, now=NOW)
    verify_dpop_proof(
        proof,
        htm="GET",
        htu=request_url,
        access_token=TOKEN,
        expected_jkt=key_thumbprint(ED_KEY),
        now=NOW,
    )


@pytest.mark.parametrize(
    "other_url",
    [
        "http://gateway.example/v1/chat/completions",  # another scheme
        "https://gateway.example:8443/v1/chat/completions",  # another port
        "https://evil.example/v1/chat/completions",  # another host
        "https://gateway.example/v1/completions",  # another path
        "https://gateway.example/v1/chat/completions/",
    ],
)
def test_a_proof_for_another_url_is_refused(other_url: str) -> None:
    proof = make_dpop_proof(ED_KEY, "POST", other_url, TOKEN, now=NOW)
    with pytest.raises(InvalidDpopProof, match="htu"):
        verify(proof)


def verify(proof: object, **overrides: Any) -> Any:
    options: dict[str, Any] = {
        "htm": "POST",
        "htu": URL,
        "access_token": TOKEN,
        "expected_jkt": key_thumbprint(ED_KEY),
        "now": NOW,
    }
    return verify_dpop_proof(proof, **(options | overrides))


def forged(
    header: dict[str, Any] | None = None,
    claims: dict[str, Any] | None = None,
    *,
    key: Any = ED_KEY,
    algorithm: str = "EdDSA",
    drop: tuple[str, ...] = (),
) -> str:
    """A proof built field by field, signed by ``key``."""
    good_header = {"typ": "dpop+jwt", "jwk": public_jwk(ED_KEY)} | (header or {})
    good_claims = {
        "jti": "jti-1",
        "htm": "POST",
        "htu": URL,
        "iat": int(NOW),
        "ath": access_token_hash(TOKEN),
    } | (claims or {})
    for name in drop:
        good_claims.pop(name, None)
        good_header.pop(name, None)
    return jwt.encode(good_claims, key, algorithm=algorithm, headers=good_header)


def test_the_forging_helper_makes_good_proofs() -> None:
    assert verify(forged()).jti == "jti-1"


@pytest.mark.parametrize(
    ("proof", "reason"),
    [
        (lambda: forged(drop=("typ",)), "typ"),
        (lambda: forged({"typ": "JWT"}), "typ"),
        (lambda: forged({"typ": "DPOP+JWT"}), "typ"),
        (lambda: forged(drop=("jwk",)), "jwk"),
        (lambda: forged({"jwk": public_jwk(ED_KEY) | {"d": "x" * 43}}), "jwk"),
        (lambda: forged({"jku": "https://evil.example/keys"}), "jku"),
        (lambda: forged({"crit": ["exp"]}), "crit"),
        (lambda: forged({"jwk": public_jwk(EC_KEY)}, key=EC_KEY, algorithm="ES256"), "other"),
        (lambda: forged({"jwk": public_jwk(EC_KEY)}, key=ED_KEY), "alg"),
        (lambda: forged(key=generate_private_key("EdDSA")), "signature"),
        (lambda: forged(key=b"a-shared-secret-of-some-good-length", algorithm="HS256"), "alg"),
        (lambda: forged(drop=("jti",)), "jti"),
        (lambda: forged({}, {"jti": ""}), "jti"),
        (lambda: forged({}, {"jti": "j" * 257}), "jti"),
        (lambda: forged({}, {"jti": 7}), "jti"),
        (lambda: forged({}, {"htm": "GET"}), "htm"),
        (lambda: forged({}, {"htm": "post"}), "htm"),
        (lambda: forged(drop=("htm",)), "htm"),
        (lambda: forged(drop=("htu",)), "htu"),
        (lambda: forged({}, {"htu": "not a url"}), "htu"),
        (lambda: forged({}, {"htu": "https://user:pw@gateway.example/v1/chat/completions"}), "htu"),
        (lambda: forged({}, {"iat": int(NOW) - 61}), "iat"),
        (lambda: forged({}, {"iat": int(NOW) + 61}), "iat"),
        (lambda: forged({}, {"iat": "now"}), "iat"),
        (lambda: forged({}, {"iat": True}), "iat"),
        (lambda: forged(drop=("iat",)), "iat"),
        (lambda: forged(drop=("ath",)), "ath"),
        (lambda: forged({}, {"ath": access_token_hash("another.token.here")}), "ath"),
        (lambda: "x" * 5000, "too long"),
        (lambda: "not-a-jws", "three-part"),
        (lambda: None, "no token"),
    ],
)
def test_every_field_is_checked(proof: Any, reason: str) -> None:
    with pytest.raises(InvalidDpopProof, match=reason):
        verify(proof())


def test_the_expected_key_is_required() -> None:
    other = generate_private_key("EdDSA")
    with pytest.raises(InvalidDpopProof, match="other than"):
        verify(make_dpop_proof(other, "POST", URL, TOKEN, now=NOW))


def test_server_nonces_are_checked_when_demanded() -> None:
    with_nonce = make_dpop_proof(ED_KEY, "POST", URL, TOKEN, now=NOW, nonce="n-1")
    assert verify(with_nonce, nonce="n-1").jti
    with pytest.raises(InvalidDpopProof, match="nonce"):
        verify(with_nonce, nonce="n-2")
    with pytest.raises(InvalidDpopProof, match="nonce"):
        verify(make_dpop_proof(ED_KEY, "POST", URL, TOKEN, now=NOW), nonce="n-1")


def test_max_age_is_the_callers_choice() -> None:
    proof = make_dpop_proof(ED_KEY, "POST", URL, TOKEN, now=NOW - 20)
    assert verify(proof, max_age=30).jti
    with pytest.raises(InvalidDpopProof, match="iat"):
        verify(proof, max_age=10)


def test_a_non_ascii_access_token_is_refused_not_crashed() -> None:
    with pytest.raises(InvalidDpopProof, match="ath"):
        verify(forged(), access_token="tökén")


_PROOF = make_dpop_proof(ED_KEY, "POST", URL, TOKEN, now=NOW)
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="


@settings(max_examples=300)
@given(st.integers(min_value=0, max_value=len(_PROOF) - 1), st.sampled_from(_ALPHABET))
def test_any_single_character_change_is_refused(position: int, char: str) -> None:
    if _PROOF[position] == char:
        char = "A" if char != "A" else "B"
    tampered = _PROOF[:position] + char + _PROOF[position + 1 :]
    with pytest.raises(InvalidDpopProof):
        verify(tampered)


@given(st.text(max_size=400))
def test_garbage_is_an_invalid_proof_never_a_crash(proof: str) -> None:
    with pytest.raises(InvalidDpopProof):
        verify(proof)


# --- the binding claims in dynamic keys -------------------------------------------------

SECRET = "a-tenant-secret-of-decent-length"
HS_KEY = VerificationKey("k1", "HS256", SECRET.encode())


def grant_of(token: str) -> Any:
    return verify_key(peek_key(token), [HS_KEY], audience=DEFAULT_AUDIENCE, now=time.time())


def test_a_bound_key_carries_cnf_and_its_grant_the_jkt() -> None:
    jkt = key_thumbprint(ED_KEY)
    minted = mint_key(SECRET, tenant_id="t1", model="m", max_tokens=5, cnf_jkt=jkt)
    assert minted.claims["cnf"] == {"jkt": jkt} and minted.jkt == jkt
    assert grant_of(minted.token).jkt == jkt
    unbound = mint_key(SECRET, tenant_id="t1", model="m", max_tokens=5)
    assert "cnf" not in unbound.claims and grant_of(unbound.token).jkt is None


@pytest.mark.parametrize("jkt", ["", "short", "x" * 44, "a+b/" * 10 + "abc"])
def test_mint_refuses_a_malformed_thumbprint(jkt: str) -> None:
    with pytest.raises(ValueError, match="cnf_jkt"):
        mint_key(SECRET, tenant_id="t1", model="m", max_tokens=5, cnf_jkt=jkt)


def original(**extra: Any) -> str:
    claims = {
        "api-key": "t1",
        "model": "m",
        "max_tokens": 100,
        "expiring": int(time.time()) + 60,
        "event_id": "e",
    }
    return jwt.encode(claims | extra, SECRET)


@pytest.mark.parametrize(
    "cnf",
    [
        {"jkt": "x"},
        {"jkt": key_thumbprint(ED_KEY), "x5t#S256": "abc"},  # a method we do not check
        {"jwk": public_jwk(ED_KEY)},
        "jkt",
        [],
    ],
)
def test_a_cnf_we_cannot_enforce_is_refused_not_ignored(cnf: Any) -> None:
    with pytest.raises(InvalidKey, match="cnf"):
        grant_of(original(cnf=cnf))


def test_budget_claims_are_parsed_from_root_keys() -> None:
    grant = grant_of(original(max_total_tokens=500, max_cost="0.25"))
    assert grant.max_total_tokens == 500 and str(grant.max_cost) == "0.25"
    plain = grant_of(original())
    assert plain.max_total_tokens is None and plain.max_cost is None


@pytest.mark.parametrize(
    "claims",
    [
        {"max_cost": 0.25},  # a float would lose cents
        {"max_cost": "1e3"},
        {"max_cost": "-1"},
        {"max_cost": "0"},
        {"max_cost": "0.0000000000001"},
        {"max_cost": "NaN"},
        {"max_total_tokens": 0},
        {"max_total_tokens": "10"},
        {"max_total_tokens": 2**63},
    ],
)
def test_malformed_budget_claims_are_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(InvalidKey):
        grant_of(original(**claims))


def test_verify_binding_is_the_gateways_per_request_check() -> None:
    jkt = key_thumbprint(ED_KEY)
    bound = grant_of(mint_key(SECRET, tenant_id="t1", model="m", max_tokens=5, cnf_jkt=jkt).token)
    bearer = grant_of(mint_key(SECRET, tenant_id="t1", model="m", max_tokens=5).token)
    good = make_dpop_proof(ED_KEY, "POST", URL, TOKEN, now=time.time())
    options: dict[str, Any] = {"htm": "POST", "htu": URL, "now": time.time()}
    assert verify_binding(bearer, TOKEN, ["garbage"], **options) is None  # RFC 9449 7.2
    assert verify_binding(bound, TOKEN, [good], **options).jkt == jkt  # type: ignore[union-attr]
    for headers in ([], [good, good]):
        with pytest.raises(InvalidDpopProof, match="exactly one"):
            verify_binding(bound, TOKEN, headers, **options)
    with pytest.raises(InvalidDpopProof, match="ath"):
        verify_binding(bound, "another.presented.key", [good], **options)
