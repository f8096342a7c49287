"""Minting a dynamic key for the logged-in user."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from dynaseal.backend import crud, quota
from dynaseal.backend.binding import device_key_of
from dynaseal.backend.deps import CurrentUser, DatabaseDep, SettingsDep
from dynaseal.backend.policy import narrow, policy_for
from dynaseal.backend.schemas import KeyCreate, KeyCreated
from dynaseal.core.errors import APIError
from dynaseal.keys import mint_key

router = APIRouter(prefix="/key", tags=["keys"])


@router.post("/create")
async def create_key(
    request: Request,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
    body: KeyCreate | None = None,
) -> KeyCreated:
    """The body is optional: without it the key gets the user's whole policy. A key's
    budgets never exceed what is left of the user's daily quotas (generated tokens, USD),
    counting the unspent budgets of the user's live keys; none left, or too many keys a
    minute, is a 429."""
    if settings.llm_key is None or not settings.llm_user_id:
        raise APIError(
            503,
            "This backend cannot mint keys: set LLM_KEY (the tenant's API key secret) "
            "and LLM_USER_ID (the tenant id) from the gateway.",
            code="backend_not_configured",
        )
    body = body or KeyCreate()
    policy = policy_for(user, settings)
    wanted = narrow(
        policy,
        body.model,
        body.max_tokens,
        max_total_tokens=body.max_total_tokens,
        max_cost=body.max_cost,
    )
    jkt = device_key_of(request, body.dpop_jkt, required=policy.require_bound_keys)
    async with db.transaction() as session:
        now = datetime.now(UTC)
        grant = await quota.key_terms(session, user.id, policy, wanted, settings, now)
        minted = mint_key(
            settings.llm_key.get_secret_value(),
            tenant_id=settings.llm_user_id,
            model=grant.models,
            max_tokens=grant.max_tokens,
            max_total_tokens=grant.max_total_tokens,
            max_cost=grant.max_cost,
            ttl_seconds=grant.ttl_seconds,
            kid=settings.llm_key_id,
            algorithm=settings.llm_key_algorithm,
            audience=settings.gateway_audience,
            sub=user.id,
            now=now.timestamp(),
            cnf_jkt=jkt,
        )
        crud.record_issued_key(session, minted, user.id)
    request.app.state.metrics.key_minted()
    gateway_url = settings.gateway_url.rstrip("/")
    return KeyCreated(
        token=minted.token,
        event_id=minted.event_id,
        model=minted.models[0],
        models=list(minted.models),
        max_tokens=minted.max_tokens,
        max_total_tokens=minted.max_total_tokens,
        max_cost=minted.max_cost,
        expires_at=minted.expires_at,
        expiring=minted.expires_at,
        gateway_url=gateway_url,
        base_url=f"{gateway_url}/v1",
        dpop_jkt=jkt,
    )
