"""The OpenAI-compatible gateway: verifies dynamic keys, budgets, proxies, reports usage.

Where things happen, in request order:

* :mod:`.routes.chat`   - ``POST /v1/chat/completions``
* :mod:`.admission`     - the key is verified (:mod:`.key_ring` finds the tenant's keys)
* :mod:`.budget`        - the key's cumulative budget is reserved
* :mod:`.proxy`         - the request goes upstream (:mod:`.upstream` / :mod:`.offline`)
* :mod:`.settlement`    - real usage is booked, the ledger row and callback written
* :mod:`.delivery`      - the callback is delivered from the outbox
"""
