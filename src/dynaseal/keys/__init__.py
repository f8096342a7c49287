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
"""

from dynaseal.keys.claims import DEFAULT_AUDIENCE, KEY_TYPE, ORIGINAL_CLAIMS, KeyGrant
from dynaseal.keys.errors import InvalidKey
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
    "DEFAULT_AUDIENCE",
    "KEY_TYPE",
    "MAX_TOKEN_LENGTH",
    "ORIGINAL_CLAIMS",
    "SUPPORTED_ALGORITHMS",
    "InvalidKey",
    "KeyGrant",
    "KeyPair",
    "MintedKey",
    "UnverifiedKey",
    "VerificationKey",
    "generate_key_pair",
    "load_public_key",
    "mint_key",
    "peek_key",
    "verify_key",
]
