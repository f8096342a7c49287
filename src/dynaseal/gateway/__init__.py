"""The OpenAI-compatible gateway: verifies dynamic keys, budgets, proxies, reports usage.

Where a request goes, in request order (every OpenAI endpoint takes the same path; what
differs is described once per endpoint in :mod:`.endpoints`):

* :mod:`dynaseal.core.body_limit` - the body's bytes counted as they arrive (413 past
  the route's limit); :mod:`.routes.device` - ``POST /v1/chat/completions``
  (``/responses``, ``/embeddings``, ``/completions``) reads it; :mod:`.device_cors` lets
  web pages call it
* :mod:`.admission.gatekeeper`   - **verified**: the key's signature and claims
  (:mod:`.admission.key_ring` holds the tenant's keys and allowed origins; a child key's
  chain :mod:`.admission.chains`, a bound key's DPoP proof :mod:`.admission.proofs`),
  the model, the rate limits (:mod:`.admission.rate_limits`, counted in
  :mod:`.admission.limiters`), the requests in flight and a fair place in the upstream
  pool (:mod:`.admission.concurrency`, :mod:`.relay.pool`), the body (the endpoint's,
  e.g. :mod:`.admission.chat_request`, its depth :mod:`.admission.json_depth`, what of
  it goes upstream :mod:`.admission.upstream_fields`), whether an upstream serves it
  (:meth:`.routing.router.Router.screen`)
* :mod:`.budget`                 - **budgeted**: the key's cumulative budgets (generated
  tokens, total tokens, money priced by :mod:`.pricing`; :mod:`.budget.limits`) are
  reserved by its store (:mod:`.budget.database`, :mod:`.budget.memory` or
  :mod:`.budget.redis`, all applying :mod:`.budget.rules`)
* :mod:`.relay.proxy`            - **proxied**: upstream and back, streams relayed event
  by event (:mod:`.relay.sse`, the endpoint's transcript, which also cuts a stream past
  its cap); the upstream is the :mod:`.routing` router: deployments chosen by weight,
  fallover before the first byte, each one :mod:`.relay.upstream` or
  :mod:`.relay.offline`, Responses requests for chat-only ones translated
  (:mod:`.translation`)
* :mod:`.settlement.settler`     - **settled**: once per request, whatever ended it: its
  place in flight freed, the reservation swapped for the usage
  (:mod:`.settlement.measure`), the ledger row, the budget booking and the callback
  written in one transaction (:mod:`.settlement.ledger`, grouped by
  :mod:`.settlement.writer`) before the answer ends; recorded in flight meanwhile
  (:mod:`.settlement.intents`), settled as ``interrupted`` by another process if its
  own dies (:mod:`.settlement.leases`, :mod:`.settlement.recovery`)
* :mod:`.callbacks.delivery`     - **reported**: the callback is sent from the outbox
  (:mod:`.callbacks.outbox`), signed (:mod:`.callbacks.sender`), retried
  (:mod:`.callbacks.retry`)

:mod:`.services` builds and wires all of it once per process; :mod:`.app` serves it.
:mod:`.metrics` counts each step where it runs, for ``GET /metrics``; with tracing on
(:mod:`dynaseal.core.tracing`) each step is a span.
"""
