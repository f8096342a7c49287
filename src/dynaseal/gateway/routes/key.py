"""``GET /v1/key``: a dynamic key looks at itself, with itself as the bearer."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel

from dynaseal.core.money import usd
from dynaseal.gateway.admission.gatekeeper import bearer_token
from dynaseal.gateway.admission.proofs import Presented
from dynaseal.gateway.budget.limits import budgets_of
from dynaseal.gateway.budget.report import BudgetFigures, figures
from dynaseal.gateway.deps import Services
from dynaseal.gateway.errors import invalid_key
from dynaseal.keys import peek_chain

router = APIRouter(tags=["OpenAI-compatible"])


class TokenBudget(BaseModel):
    limit: int
    used: int  # by finished requests
    reserved: int  # held by requests in progress
    remaining: int  # for new requests
    source: Literal["claim", "tenant_default"]


class CostBudget(BaseModel):
    """USD as decimal strings."""

    limit: str
    used: str
    reserved: str
    remaining: str
    source: Literal["claim", "tenant_default"]


class Requests(BaseModel):
    limit: int | None  # max_requests; None: no use count
    used: int
    remaining: int | None


class KeyBudgets(BaseModel):
    max_tokens: TokenBudget  # generated tokens
    max_total_tokens: TokenBudget | None  # prompt + generated tokens
    max_cost: CostBudget | None


class KeyOut(BaseModel):
    object: Literal["dynamic_key"] = "dynamic_key"
    event_id: str
    tenant_id: str
    format: str
    models: list[str]
    #: The key's payload as it was signed (the signature itself is never returned).
    claims: dict[str, Any]
    expires_at: int
    expires_in: int  # seconds, 0 once expired
    budgets: KeyBudgets
    requests: Requests


def _tokens(shown: BudgetFigures, source: Literal["claim", "tenant_default"]) -> TokenBudget:
    return TokenBudget(
        limit=shown.limit,
        used=shown.used,
        reserved=shown.reserved,
        remaining=shown.remaining,
        source=source,
    )


def _cost(shown: BudgetFigures, source: Literal["claim", "tenant_default"]) -> CostBudget:
    return CostBudget(
        limit=usd(shown.limit),
        used=usd(shown.used),
        reserved=usd(shown.reserved),
        remaining=usd(shown.remaining),
        source=source,
    )


@router.get(
    "/key",
    response_model=KeyOut,
    summary="The presented dynamic key: its claims, what it used and what remains",
)
async def key(
    request: Request, services: Services, authorization: Annotated[str | None, Header()] = None
) -> KeyOut:
    """Send the dynamic key as the bearer, as for chat completions (with a DPoP proof for
    a bound key). Revoked, expired or invalid keys get the same 401 as there."""
    proved = Presented(request, services.settings.public_url)
    grant, tenant_keys = await services.gatekeeper.verify(authorization, request=proved)
    usage = await services.budget.usage(grant)
    if usage.revoked or any([(await services.budget.usage(k)).revoked for k in grant.ancestors]):
        raise invalid_key()
    shown = figures(budgets_of(grant, tenant_keys.key_defaults), usage.spent, usage.reserved)
    total, cost = shown.get("max_total_tokens"), shown.get("max_cost")
    limit = grant.max_requests
    return KeyOut(
        event_id=grant.event_id,
        tenant_id=grant.tenant_id,
        format=grant.format,
        models=list(grant.models),
        claims=_own_claims(bearer_token(authorization)),
        expires_at=int(grant.expires_at),
        expires_in=max(0, int(grant.expires_at - time.time())),
        budgets=KeyBudgets(
            max_tokens=_tokens(shown["max_tokens"], "claim"),
            max_total_tokens=None
            if total is None
            else _tokens(total, "claim" if grant.max_total_tokens else "tenant_default"),
            max_cost=None
            if cost is None
            else _cost(cost, "claim" if grant.max_cost is not None else "tenant_default"),
        ),
        requests=Requests(
            limit=limit,
            used=usage.requests,
            remaining=None if limit is None else max(0, limit - usage.requests),
        ),
    )


def _own_claims(token: str) -> dict[str, Any]:
    """The presented key's own claims: a child key's, without its parent token inside."""
    chain = peek_chain(token)
    if not chain.is_child:
        return chain.root.claims
    return {name: value for name, value in chain.links[-1].claims.items() if name != "prt"}
