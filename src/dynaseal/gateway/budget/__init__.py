"""The cumulative token budget of each dynamic key.

* :mod:`.rules`    - what a request may reserve from what is left (pure)
* :mod:`.store`    - the :class:`~.store.BudgetStore` protocol; the durable row's helpers
* :mod:`.database` - budgets in the database row itself (several processes, no Redis)
* :mod:`.memory`   - budgets in the process (the one gateway on a SQLite file)
* :mod:`.redis`    - budgets in Redis, one Lua script per step (many replicas)
"""
