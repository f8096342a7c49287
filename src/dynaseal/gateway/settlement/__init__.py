"""Settlement: a request ended; book what it used and report it.

* :mod:`.settler`  - :class:`~.settler.Settler`, the one place a request is settled
* :mod:`.measure`  - how it ended (:data:`~.measure.Status`), what it used, the callback
* :mod:`.ledger`   - one transaction: budgets booked, ledger rows, callbacks queued
* :mod:`.writer`   - group commit: the ledger transactions, many requests each
* :mod:`.intents`  - requests in flight, recorded while the upstream works
* :mod:`.leases`   - each gateway process's lease: alive, or its requests are orphans
* :mod:`.recovery` - what a dead process left in flight, settled as ``interrupted``
"""
