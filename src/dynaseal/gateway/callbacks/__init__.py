"""Usage callbacks: the outbox and its delivery to the tenants' backends.

* :mod:`.outbox`          - the outbox rows: queue, list, claim, record, re-send
* :mod:`.delivery`        - the background loop that sends what is due
* :mod:`.sender`          - one signed HTTP POST of one callback
* :mod:`.pinned`          - the only HTTP client for tenants' URLs: resolve once, check,
                            connect to exactly the checked addresses
* :mod:`.retry`           - what an attempt's outcome means for the row (pure)
* :mod:`.url_policy`      - which callback URLs the gateway may call; their one spelling
* :mod:`.addresses`       - which IP addresses are public (IANA special-purpose registries)
* :mod:`.webhook_secrets` - the tenants' Standard Webhooks signing secrets
"""
