"""The end user's page: their policy, usage per day against the daily quota, their keys."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from dynaseal.backend.console import queries
from dynaseal.backend.routes import users
from dynaseal.storage.backend_models import User
from dynaseal.webui.app import CurrentLogin, LoginRequired, console_of
from dynaseal.webui.charts import Bucket, Series, stacked_bars
from dynaseal.webui.formats import usd

router = APIRouter()


@router.get("/", include_in_schema=False)
async def home(request: Request, login: CurrentLogin) -> Response:
    backend = request.app.state.backend
    db = backend.state.db
    async with db.sessions() as session:
        user = await session.get(User, login.subject)
        if user is None:
            raise LoginRequired
        now = time.time()
        per_day = await queries.usage_per_day(session, user.id, now, sqlite=db.is_sqlite)
        keys = await queries.minted_keys(session, user.id)
    profile = await users.me(user, backend.state.settings)
    policy = profile.policy
    days = queries.DAYS
    buckets = [
        Bucket(days.bucket_label(start)[:10], per_day.get(start, {}), days.tick(i, start))
        for i, start in enumerate(days.starts(now))
    ]
    tokens_chart = stacked_bars(
        "chart-daily",
        "Generated tokens per day (UTC)",
        [Series("tokens", "Generated tokens", "s1")],
        buckets,
        line=(policy.daily_token_quota, "daily quota") if policy.daily_token_quota else None,
    )
    cost_quota = float(policy.daily_cost_quota) if policy.daily_cost_quota else None
    cost_chart = stacked_bars(
        "chart-daily-cost",
        "Cost per day (USD, UTC)",
        [Series("cost", "Cost", "s5")],
        buckets,
        fmt=usd,
        line=(cost_quota, "daily quota") if cost_quota else None,
    )
    today = buckets[-1].values
    return console_of(request).render(
        request,
        "home.html",
        {
            "user": user,
            "policy": policy,
            "charts": [tokens_chart, cost_chart],
            "today_tokens": today.get("tokens", 0),
            "today_cost": today.get("cost", 0),
            "keys": keys,
            "now": datetime.now(UTC),
        },
        login=login,
    )
