"""The usage ledger: filtered by time range, model, ``sub``, status and event id, a page
at a time, or all of it as CSV."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response, StreamingResponse

from dynaseal.gateway.console.pages import TenantPage
from dynaseal.gateway.console.queries import ledger as queries

router = APIRouter()

_Text = Query(max_length=256)


def ledger_filter(
    range: Annotated[str, Query(max_length=8)] = "24h",
    model: Annotated[str, _Text] = "",
    sub: Annotated[str, _Text] = "",
    status: Annotated[str, Query(max_length=32)] = "",
    event_id: Annotated[str, _Text] = "",
) -> queries.LedgerFilter:
    return queries.LedgerFilter(
        range=range if range in queries.RANGES else "24h",
        model=model.strip(),
        sub=sub.strip(),
        status=status if status in queries.STATUSES else "",
        event_id=event_id.strip(),
    )


Filter = Annotated[queries.LedgerFilter, Depends(ledger_filter)]


@router.get("/ledger", include_in_schema=False)
async def ledger_page(
    page: TenantPage, filters: Filter, p: Annotated[int, Query(ge=1, le=1_000_000)] = 1
) -> Response:
    now = datetime.now(UTC)
    async with page.services.db.sessions() as session:
        found = await queries.page(session, page.tenant.id, filters, p, now)
        models = await queries.models_used(session, page.tenant.id, now - timedelta(days=30))
    return page.render(
        "ledger.html",
        section="ledger",
        filters=filters,
        found=found,
        models=models,
        columns=queries.COLUMNS,
        ranges=queries.RANGES,
        statuses=queries.STATUSES,
    )


@router.get("/ledger.csv", include_in_schema=False)
async def ledger_csv(page: TenantPage, filters: Filter) -> Response:
    now = datetime.now(UTC)
    name = f"dynaseal-usage-{page.tenant.username}-{now:%Y%m%dT%H%M%SZ}.csv"
    return StreamingResponse(
        queries.csv_lines(page.services.db, page.tenant.id, filters, now),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_safe(name)}"'},
    )


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
