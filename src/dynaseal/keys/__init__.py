"""The dynamic-key format: pure functions, no I/O, importable by any backend.

Mint a key in a business backend::

    from dynaseal.keys import mint_key
    minted = mint_key(secret, tenant_id="671249a93f1cf2f8bf9b2b82",
                      model="deepseek-chat", max_tokens=1000, ttl_seconds=600)
    minted.token  # hand this to the device

With an asymmetric key the gateway never holds a secret able to mint::

    pair = generate_key_pair("EdDSA")   # register pair.public_pem with the gateway
    mint_key(pair.private_pem, algorithm="EdDSA", kid="<kid>", tenant_id=..., ...)

Verify one (what the gateway does)::

    unverified = peek_key(token)                      # which tenant, which kid?
    grant = verify_key(unverified, tenant_keys, audience=..., now=time.time())

Device-bound keys and child keys (RFC 9449 DPoP, RFC 7800 ``cnf``)::

    device = generate_private_key("EdDSA")              # stays on the device
    minted = mint_key(secret, ..., cnf_jkt=key_thumbprint(device))
    proof = make_dpop_proof(device, "POST", url, minted.token, now=time.time())
    child = mint_child_key(minted.token, device, models=[...], max_tokens=100, now=...)

What the gateway calls for every presented token::

    chain = peek_chain(token)                          # a root key gives no links
    root = verify_key(chain.root, tenant_keys, audience=..., now=now)
    grants = verify_child_chain(chain, root, now=now)  # root first, presented key last
    proof = verify_binding(grants[-1], token, request_dpop_headers,
                           htm=method, htu=public_url, now=now)
    # None for a bearer key; else refuse proof.replay_key if seen before proof.fresh_until
"""

from dynaseal.keys.children import (
    CHILD_KEY_TYPE,
    MAX_CHAIN_LENGTH,
    MAX_CHILD_DEPTH,
    ChildLink,
    KeyChain,
    MintedChild,
    child_event_id,
    is_child_key,
    mint_child_key,
    peek_chain,
    verify_child_chain,
)
from dynaseal.keys.claims import DEFAULT_AUDIENCE, KEY_TYPE, ORIGINAL_CLAIMS, KeyGrant
from dynaseal.keys.dpop import (
    DEFAULT_MAX_AGE,
    DPOP_HEADER,
    DPOP_TYPE,
    MAX_PROOF_LENGTH,
    DpopProof,
    access_token_hash,
    make_dpop_proof,
    normalise_htu,
    verify_binding,
    verify_dpop_proof,
)
from dynaseal.keys.errors import InvalidDpopProof, InvalidKey
from dynaseal.keys.jwk import (
    PrivateKey,
    PublicKey,
    generate_private_key,
    is_thumbprint,
    jwk_thumbprint,
    key_thumbprint,
    load_private_key,
    public_jwk,
    public_key_from_jwk,
)
from dynaseal.keys.key_pairs import (
    ASYMMETRIC_ALGORITHMS,
    KeyPair,
    generate_key_pair,
    load_public_key,
)
from dynaseal.keys.mint import MintedKey, mint_key
from dynaseal.keys.verify import (
    MAX_TOKEN_LENGTH,
    SUPPORTED_ALGORITHMS,
    UnverifiedKey,
    VerificationKey,
    peek_key,
    verify_key,
)

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "CHILD_KEY_TYPE",
    "DEFAULT_AUDIENCE",
    "DEFAULT_MAX_AGE",
    "DPOP_HEADER",
    "DPOP_TYPE",
    "KEY_TYPE",
    "MAX_CHAIN_LENGTH",
    "MAX_CHILD_DEPTH",
    "MAX_PROOF_LENGTH",
    "MAX_TOKEN_LENGTH",
    "ORIGINAL_CLAIMS",
    "SUPPORTED_ALGORITHMS",
    "ChildLink",
    "DpopProof",
    "InvalidDpopProof",
    "InvalidKey",
    "KeyChain",
    "KeyGrant",
    "KeyPair",
    "MintedChild",
    "MintedKey",
    "PrivateKey",
    "PublicKey",
    "UnverifiedKey",
    "VerificationKey",
    "access_token_hash",
    "child_event_id",
    "generate_key_pair",
    "generate_private_key",
    "is_child_key",
    "is_thumbprint",
    "jwk_thumbprint",
    "key_thumbprint",
    "load_private_key",
    "load_public_key",
    "make_dpop_proof",
    "mint_child_key",
    "mint_key",
    "normalise_htu",
    "peek_chain",
    "peek_key",
    "public_jwk",
    "public_key_from_jwk",
    "verify_binding",
    "verify_child_chain",
    "verify_dpop_proof",
    "verify_key",
]
