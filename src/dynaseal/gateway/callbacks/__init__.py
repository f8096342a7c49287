"""Usage callbacks: the outbox and its delivery to the tenants' backends.

* :mod:`.outbox`          - the outbox rows: queue, list, re-send
* :mod:`.delivery`        - sending what is due: claim, sign, POST, record, retry
* :mod:`.url_policy`      - which callback URLs the gateway may call
* :mod:`.webhook_secrets` - the tenants' Standard Webhooks signing secrets
"""
