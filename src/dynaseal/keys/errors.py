"""The one exception the key format raises."""


class InvalidKey(Exception):
    """A dynamic key was refused.

    ``reason`` is for the operator's log only: devices always get the same generic
    answer so that a forger learns nothing about which check failed (RFC 8725 3.x).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidDpopProof(InvalidKey):
    """A DPoP proof was missing or refused (RFC 9449).

    A subclass so that code catching :class:`InvalidKey` refuses the request anyway; the
    gateway tells it apart to answer ``WWW-Authenticate: DPoP error="invalid_dpop_proof"``.
    """
