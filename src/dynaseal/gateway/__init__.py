"""The OpenAI-compatible gateway: verifies dynamic keys, budgets, proxies, reports usage.

Where a chat completion goes, in request order:

* :mod:`.routes.chat`            - ``POST /v1/chat/completions`` reads the body
* :mod:`.admission.gatekeeper`   - **verified**: the key's signature and claims
  (:mod:`.admission.key_ring` holds the tenant's keys), the model, the rate limits
  (:mod:`.admission.rate_limits`, counted in :mod:`.admission.limiters`), the body
  (:mod:`.admission.chat_request`)
* :mod:`.budget`                 - **budgeted**: the key's cumulative budget is reserved
  by its store (:mod:`.budget.database`, :mod:`.budget.memory` or :mod:`.budget.redis`,
  all applying :mod:`.budget.rules`)
* :mod:`.relay.proxy`            - **proxied**: upstream (:mod:`.relay.upstream` or
  :mod:`.relay.offline`) and back, streams relayed event by event (:mod:`.relay.sse`,
  :mod:`.relay.transcript`)
* :mod:`.settlement.settler`     - **settled**: once per request, whatever ended it: the
  reservation swapped for the usage (:mod:`.settlement.measure`), the ledger row, the
  budget booking and the callback written in one transaction (:mod:`.settlement.ledger`,
  grouped by :mod:`.settlement.writer`)
* :mod:`.callbacks.delivery`     - **reported**: the callback is sent from the outbox
  (:mod:`.callbacks.outbox`), signed (:mod:`.callbacks.sender`), retried
  (:mod:`.callbacks.retry`)

:mod:`.services` builds and wires all of it once per process; :mod:`.app` serves it.
:mod:`.metrics` counts each step where it runs, for ``GET /metrics``; with tracing on
(:mod:`dynaseal.core.tracing`) each step is a span.
"""
