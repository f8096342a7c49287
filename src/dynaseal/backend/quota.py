"""What a user may still mint: the per-user mint rate and the daily quotas, of generated
tokens and of money.

A quota counts, per UTC day, the usage the gateway reported *and* the budget the user's
live keys have not spent yet — a key can spend all of it, so it is reserved from the
moment the key is minted: its ``max_tokens`` against the token quota (which counts
generated tokens, as ``max_tokens`` does), its ``max_cost`` against the money quota
(which counts what the gateway priced, prompts included). What a key did not spend is
released when it expires (after a grace period for the requests still running then and
their callbacks); what its callbacks report stays used. So minting many keys first and
spending them afterwards cannot outrun a quota: a new key gets at most what is left,
none left is a 429.

Minting runs in one transaction that locks the user's row, checks the limits and records
the new key, so a user's concurrent mints take turns and cannot all see the same quota
left.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.backend import crud
from dynaseal.backend.policy import KeyTerms, Policy
from dynaseal.backend.settings import BackendSettings
from dynaseal.core.errors import APIError, too_many_requests
from dynaseal.core.money import text

_RATE_WINDOW = timedelta(minutes=1)


def day_bounds(now: datetime) -> tuple[datetime, datetime]:
    """Start of the current UTC day and the next midnight, when the quota resets."""
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


async def key_terms(
    session: AsyncSession,
    user_id: str,
    policy: Policy,
    wanted: KeyTerms,
    settings: BackendSettings,
    now: datetime,
) -> KeyTerms:
    """The terms of the key about to be minted in this transaction: ``wanted``, its
    ``max_tokens`` and ``max_cost`` cut to what is left of the user's quotas. Raises 429
    when the user mints too fast or has no quota left. The caller records the key in the
    same transaction: that reserves it."""
    await crud.lock_user(session, user_id)
    await _check_mint_rate(session, user_id, settings.keys_per_user_per_minute, now)
    terms = wanted
    grace = timedelta(seconds=settings.key_settlement_grace_seconds)
    if policy.daily_token_quota:
        left = await _left(session, user_id, "tokens", policy.daily_token_quota, now, grace)
        terms = replace(terms, max_tokens=min(terms.max_tokens, left))
    if policy.daily_cost_quota:
        left = await _left(session, user_id, "cost", policy.daily_cost_quota, now, grace)
        cost = terms.max_cost
        terms = replace(terms, max_cost=left if cost is None else min(cost, left))
    return terms


async def _left(
    session: AsyncSession,
    user_id: str,
    what: crud.Measure,
    quota: Any,
    now: datetime,
    grace: timedelta,
) -> Any:
    """What is left today of one quota (generated tokens, or USD), or the 429."""
    start, reset = day_bounds(now)
    used = await crud.used_since(session, user_id, start, what)
    reserved, first_expiry = await crud.reserved_by_keys(session, user_id, now - grace, what)
    if used + reserved < quota:
        return quota - used - reserved

    def amount(value: Any) -> str:
        return f"{value} generated tokens" if what == "tokens" else f"{text(value)} USD"

    # Try again when the day ends, or sooner when a key's unspent budget comes back.
    retry_at = reset if first_expiry is None else min(reset, first_expiry + grace)
    raise APIError(
        429,
        f"Your daily quota of {amount(quota)} is spent or held by your unexpired keys "
        f"({amount(used)} used today, {amount(reserved)} not yet spent by live keys); it "
        f"resets at {reset.isoformat().replace('+00:00', 'Z')}, and what a key leaves "
        "unspent comes back when it expires.",
        code="insufficient_quota",
        type="insufficient_quota",
        headers={"Retry-After": str(max(1, math.ceil((retry_at - now).total_seconds())))},
    )


async def _check_mint_rate(
    session: AsyncSession, user_id: str, per_minute: int, now: datetime
) -> None:
    if not per_minute:
        return
    count, first = await crud.keys_issued_since(session, user_id, now - _RATE_WINDOW)
    if count < per_minute or first is None:
        return
    # The window slides: a mint is allowed again when the oldest one in it leaves it.
    raise too_many_requests(
        f"Too many keys: at most {per_minute} per minute; retry in {{retry_after}} seconds.",
        "rate_limit_exceeded",
        (first + _RATE_WINDOW - now).total_seconds(),
    )
