"""The cumulative budgets of each dynamic key: generated tokens, total tokens, money.

* :mod:`.rules`    - what a request may reserve from what is left (pure)
* :mod:`.limits`   - which budgets a key has: its claims, else its tenant's defaults
* :mod:`.report`   - what a key has left, as its holder sees it (headers, ``GET /v1/key``)
* :mod:`.store`    - the :class:`~.store.BudgetStore` protocol; the durable row's helpers
* :mod:`.database` - budgets in the database row itself (several processes, no Redis)
* :mod:`.memory`   - budgets in the process (the one gateway on a SQLite file)
* :mod:`.redis`    - budgets in Redis, one Lua script per step (many replicas)
"""
