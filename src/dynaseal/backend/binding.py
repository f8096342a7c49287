"""Which device key a new dynamic key is bound to (issue 17, RFC 9449 section 10).

The device names its key either by thumbprint (``"dpop_jkt"`` in the body) or by
sending a DPoP proof with ``POST /key/create``, from which the thumbprint is taken.
Knowing a thumbprint proves nothing, and needs not: a key bound to someone else's
device key is useless to whoever asked for it. The proof, when sent, is checked fully
(minus ``ath``: no key exists yet) so that a malformed one is not silently ignored.
"""

from __future__ import annotations

import logging
import time

from fastapi import Request

from dynaseal.core.errors import APIError
from dynaseal.keys import DPOP_HEADER, InvalidDpopProof, verify_dpop_proof

log = logging.getLogger("dynaseal.backend")


def _bad_proof(message: str) -> APIError:
    return APIError(400, message, code="invalid_dpop_proof", param=DPOP_HEADER)


def device_key_of(request: Request, dpop_jkt: str | None, *, required: bool) -> str | None:
    """The thumbprint to put in ``cnf.jkt``, or ``None`` for a bearer key.

    400 when the proof is bad, when proof and body name different keys, or when the
    policy wants bound keys and the request names none.
    """
    proofs = request.headers.getlist(DPOP_HEADER)
    if len(proofs) > 1:
        raise _bad_proof("Send at most one DPoP header.")
    jkt = dpop_jkt
    if proofs:
        try:
            proof = verify_dpop_proof(
                proofs[0],
                htm=request.method,
                htu=str(request.url),
                access_token=None,
                expected_jkt=None,
                now=time.time(),
            )
        except InvalidDpopProof as exc:
            log.info("DPoP proof with a key request refused: %s", exc.reason)
            raise _bad_proof(
                "The DPoP proof is invalid: it must be a dpop+jwt signed by the key in its "
                "jwk header (EdDSA or ES256) for this method and URL, made within a minute."
            ) from None
        if dpop_jkt is not None and dpop_jkt != proof.jkt:
            raise _bad_proof("dpop_jkt is not the thumbprint of the key that signed the proof.")
        jkt = proof.jkt
    if jkt is None and required:
        raise APIError(
            400,
            "This backend only issues device-bound keys: send the RFC 7638 thumbprint of "
            "your device's public key as dpop_jkt, or a DPoP proof header.",
            code="binding_required",
            param="dpop_jkt",
        )
    return jkt
