"""The overview: requests, tokens and cost over time, refusals by reason, top users and
models."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import RedirectResponse, Response

from dynaseal.gateway.console.pages import TenantPage
from dynaseal.gateway.console.queries import overview as queries
from dynaseal.storage.gateway_models import UsageRecord
from dynaseal.webui.charts import Bucket, Series, stacked_bars
from dynaseal.webui.formats import number, usd

router = APIRouter()

#: chart id, title, series (stacked bottom-up), how values are written: what the ledger
#: sums are drawn as.
CHARTS = (
    ("chart-requests", "Requests", (Series("requests", "Requests", "s1"),), number),
    (
        "chart-tokens",
        "Tokens",
        (
            Series("prompt_tokens", "Prompt", "s2"),
            Series("completion_tokens", "Completion", "s1"),
        ),
        number,
    ),
    ("chart-cost", "Cost (USD)", (Series("cost", "Cost", "s5"),), usd),
)
_REFUSAL_COLOURS = ("s4", "s3", "s6", "s2", "s5", "s1", "s7")
REFUSAL_SERIES = tuple(
    Series(reason, label, css)
    for (reason, label), css in zip(queries.REFUSAL_LABELS.items(), _REFUSAL_COLOURS, strict=True)
)


@router.get("/", include_in_schema=False)
async def overview(page: TenantPage, range: Annotated[str, Query(max_length=8)] = "") -> Response:
    if page.tenant.is_admin and not range:
        return RedirectResponse(page.base + "/admin", 303)  # the operator's home
    window = queries.WINDOWS.get(range) or queries.WINDOWS["24h"]
    now = time.time()
    since = window.since(now)
    tenant_id, db = page.tenant.id, page.services.db
    async with db.sessions() as session:
        usage = await queries.usage_buckets(session, tenant_id, window, now, sqlite=db.is_sqlite)
        refused = await queries.refusal_buckets(
            session, tenant_id, window, now, sqlite=db.is_sqlite
        )
        refusals = await queries.refusal_totals(session, tenant_id, since)
        top_users = await queries.top(session, tenant_id, since, UsageRecord.sub)
        top_models = await queries.top(session, tenant_id, since, UsageRecord.model)
    starts = window.starts(now)
    usage_buckets = [
        Bucket(window.bucket_label(start), usage.get(start, {}), window.tick(i, start))
        for i, start in enumerate(starts)
    ]
    refusal_buckets = [
        Bucket(
            window.bucket_label(start),
            {**refused.get(start, {}), "upstream": usage.get(start, {}).get("upstream", 0)},
            window.tick(i, start),
        )
        for i, start in enumerate(starts)
    ]
    charts = [
        stacked_bars(id, title, series, usage_buckets, fmt=fmt) for id, title, series, fmt in CHARTS
    ]
    return page.render(
        "overview.html",
        section="overview",
        window=window,
        windows=queries.WINDOWS.values(),
        charts=charts,
        refusal_chart=stacked_bars("chart-refusals", "Refusals", REFUSAL_SERIES, refusal_buckets),
        refusals=refusals,
        refusal_labels=queries.REFUSAL_LABELS,
        top_users=top_users,
        top_models=top_models,
    )
