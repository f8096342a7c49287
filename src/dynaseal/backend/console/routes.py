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
        per_day = await queries.tokens_per_day(session, user.id, now, sqlite=db.is_sqlite)
        keys = await queries.minted_keys(session, user.id)
    profile = await users.me(user, backend.state.settings)
    quota = profile.policy.daily_token_quota
    days = queries.DAYS
    buckets = [
        Bucket(
            days.bucket_label(start)[:10], {"tokens": per_day.get(start, 0)}, days.tick(i, start)
        )
        for i, start in enumerate(days.starts(now))
    ]
    chart = stacked_bars(
        "chart-daily",
        "Generated tokens per day (UTC)",
        [Series("tokens", "Generated tokens", "s1")],
        buckets,
        line=(quota, "daily quota") if quota else None,
    )
    today = buckets[-1].values["tokens"]
    return console_of(request).render(
        request,
        "home.html",
        {
            "user": user,
            "policy": profile.policy,
            "chart": chart,
            "today": today,
            "keys": keys,
            "now": datetime.now(UTC),
        },
        login=login,
    )
