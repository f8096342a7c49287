"""Admission: everything before a request may go upstream.

* :mod:`.gatekeeper`   - :class:`~.gatekeeper.Gatekeeper` admits a request: key, model,
  rate limits, budget; the result is an :class:`~.gatekeeper.Admission`
* :mod:`.key_ring`     - the tenants' verification keys, behind a short cache
* :mod:`.chains`       - a presented key verified down to its root (child keys)
* :mod:`.proofs`       - DPoP proofs of device-bound keys, replays refused
* :mod:`.chat_request` - the request body is checked and the upstream body derived
* :mod:`.rate_limits`  - the per-minute limits and their judgement (pure)
* :mod:`.limiters`     - where the rate-limit counts live: the process or Redis
"""
