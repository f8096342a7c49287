"""Requests in flight (intents): what the database must know of an admitted request while
the upstream works on it, so that a gateway dying mid-request does not lose it.

:func:`row` is written (group-committed by :mod:`.writer`, not awaited before the
request goes upstream) when the request goes upstream, and removed in the transaction
that writes its ledger row. If its process dies first, :mod:`.recovery` turns what is
left into a request settled as ``interrupted`` (:func:`interrupted`), charged its
reservation: the upstream may have generated all of it, and a key must never get to
spend it again.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dynaseal.gateway.admission.gatekeeper import Admission
from dynaseal.gateway.budget.rules import Amounts, Budgets, Reservation
from dynaseal.gateway.endpoints.base import Endpoint
from dynaseal.gateway.endpoints.chat import CHAT
from dynaseal.gateway.endpoints.completions import COMPLETIONS
from dynaseal.gateway.endpoints.embeddings import EMBEDDINGS
from dynaseal.gateway.endpoints.responses import RESPONSES
from dynaseal.gateway.settlement.measure import Settled, Timing, Usage
from dynaseal.keys import KeyGrant
from dynaseal.storage.gateway_models import RequestInFlight

_ENDPOINTS: dict[str, Endpoint] = {e.name: e for e in (CHAT, RESPONSES, EMBEDDINGS, COMPLETIONS)}
INTERRUPTED = "interrupted: the gateway process serving it stopped before the answer ended"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _ancestor(grant: KeyGrant) -> dict[str, Any]:
    """What booking a request to an ancestor of a child key needs (its budget row)."""
    return {
        "event_id": grant.event_id,
        "max_tokens": grant.max_tokens,
        "expires_at": grant.expires_at,
    }


def _ancestors(intent: RequestInFlight) -> tuple[KeyGrant, ...]:
    """A child key's ancestors, root first: an interrupted request is charged to each."""
    return tuple(
        KeyGrant(
            tenant_id=intent.tenant_id,
            event_id=key["event_id"],
            models=(intent.model,),
            max_tokens=key["max_tokens"],
            expires_at=key["expires_at"],
            format="dynaseal" if depth == 0 else "child",
            depth=depth,
        )
        for depth, key in enumerate(intent.key_ancestors or ())
    )


def row(admission: Admission, owner: str) -> dict[str, Any]:
    """The intent of an admitted request served by process ``owner``."""
    grant, reservation = admission.grant, admission.reservation
    held = reservation.amounts
    price = admission.price
    return {
        "request_id": admission.request_id,
        "owner": owner,
        "tenant_id": grant.tenant_id,
        "event_id": grant.event_id,
        "sub": grant.sub,
        "key_metadata": grant.metadata or None,
        "key_max_tokens": grant.max_tokens,
        "key_expires_at": _utc(grant.expires_at),
        "key_ancestors": [_ancestor(key) for key in grant.ancestors] or None,
        "model": admission.model,
        "endpoint": admission.endpoint.name,
        "stream": admission.stream,
        "reserved_tokens": held.tokens,
        "reserved_total_tokens": held.total_tokens,
        "reserved_cost": held.cost,
        "completion_cap": reservation.completion_cap,
        "prompt_estimate": reservation.prompt_estimate,
        "cost_estimate": (
            None if price is None else price.cost(reservation.prompt_estimate, 0, held.tokens)
        ),
        "started_at": _utc(admission.started_at),
    }


def interrupted(intent: RequestInFlight) -> Settled:
    """The request an intent stands for, settled as ``interrupted`` with its reservation
    as its usage (the most it may have generated)."""
    grant = KeyGrant(
        tenant_id=intent.tenant_id,
        event_id=intent.event_id,
        models=(intent.model,),
        max_tokens=intent.key_max_tokens,
        expires_at=intent.key_expires_at.timestamp(),
        format="child" if intent.key_ancestors else "dynaseal",
        sub=intent.sub,
        metadata=intent.key_metadata or {},
        depth=len(intent.key_ancestors or ()),
        ancestors=_ancestors(intent),
    )
    held = Amounts(intent.reserved_tokens, intent.reserved_total_tokens, intent.reserved_cost)
    reservation = Reservation(held, intent.completion_cap, intent.prompt_estimate, Budgets(0))
    endpoint = _ENDPOINTS[intent.endpoint]
    body = {"model": intent.model, "stream": intent.stream}
    admission = Admission(
        grant,
        reservation,
        body,
        {},
        endpoint=endpoint,
        request_id=intent.request_id,
        started_at=intent.started_at.timestamp(),
    )
    transcript = endpoint.transcript(body)
    transcript.error = INTERRUPTED
    usage = Usage(intent.prompt_estimate, intent.reserved_tokens, "estimated")
    timing = Timing(admission.started_at, time.time(), None)
    return Settled(admission, transcript, "interrupted", usage, timing, intent.cost_estimate)
