"""The usage ledger as the console shows and exports it: filters, pages, CSV.

A new field is one more :class:`Column` in :data:`COLUMNS` (the page, and the CSV, pick
it up) and, when it adds up, one more sum in :data:`TOTALS`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from dynaseal.core.money import text
from dynaseal.storage import Database
from dynaseal.storage.gateway_models import UsageRecord

#: Time ranges the ledger can be filtered to; "" is everything.
RANGES = {"1h": 3600, "24h": 24 * 3600, "7d": 7 * 24 * 3600, "30d": 30 * 24 * 3600, "": None}
STATUSES = ("completed", "failed", "client_disconnected", "interrupted")
PAGE_SIZE = 50
_CSV_CHUNK = 1000


@dataclass(frozen=True)
class Column:
    header: str  # the CSV's
    value: Callable[[UsageRecord], Any]
    kind: str = "text"  # how the page shows it: text, id, time, number, usd, status
    title: str = ""  # the page's header, when not the CSV's

    @property
    def on_page(self) -> bool:
        return self.title != "-"


#: The ledger's columns, in order, in the CSV export and (but those titled "-") on the page.
COLUMNS = (
    Column("ended_at", lambda r: r.ended_at, "time", "Ended (UTC)"),
    Column("request_id", lambda r: r.request_id, "id", "-"),
    Column("event_id", lambda r: r.event_id, "id", "Event id"),
    Column("sub", lambda r: r.sub or "", "id"),
    Column("model", lambda r: r.model, "id", "Model"),
    Column("status", lambda r: r.status, "status", "Status"),
    Column("stream", lambda r: "yes" if r.stream else "no", title="Stream"),
    Column("prompt_tokens", lambda r: r.prompt_tokens, "number", "Prompt"),
    Column("completion_tokens", lambda r: r.completion_tokens, "number", "Completion"),
    Column("total_tokens", lambda r: r.total_tokens, "number", "Total"),
    # Exact USD; empty (— on the page) when the model had no price.
    Column("cost_usd", lambda r: r.cost, "usd", "Cost"),
    Column("usage_source", lambda r: r.usage_source, title="-"),
    Column("latency_ms", lambda r: r.latency_ms, "number", "Latency ms"),
    Column("ttft_ms", lambda r: r.time_to_first_token_ms, "number", "First token ms"),
)

#: Sums over every row matching the filter (not only the page shown).
TOTALS: dict[str, Any] = {
    "requests": func.count(),
    "prompt_tokens": func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
    "completion_tokens": func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
    "total_tokens": func.coalesce(func.sum(UsageRecord.total_tokens), 0),
    "cost": func.coalesce(func.sum(UsageRecord.cost), 0),  # a Decimal of USD
}


@dataclass(frozen=True)
class LedgerFilter:
    range: str = "24h"
    model: str = ""
    sub: str = ""
    status: str = ""
    event_id: str = ""

    def conditions(self, tenant_id: str, now: datetime) -> list[Any]:
        where = [UsageRecord.tenant_id == tenant_id]
        span = RANGES.get(self.range)
        if span is not None:
            where.append(UsageRecord.ended_at >= now - timedelta(seconds=span))
        for column, value in (
            (UsageRecord.model, self.model),
            (UsageRecord.sub, self.sub),
            (UsageRecord.status, self.status),
            (UsageRecord.event_id, self.event_id),
        ):
            if value:
                where.append(column == value)
        return where

    def query(self, **changes: Any) -> str:
        """This filter (with ``changes``) as a query string, empty values left out."""
        values = {**asdict(self), **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


@dataclass(frozen=True)
class LedgerPage:
    rows: list[UsageRecord]
    totals: dict[str, Any]  # counts as int, cost as Decimal
    page: int
    pages: int


async def page(
    session: AsyncSession, tenant_id: str, filters: LedgerFilter, number: int, now: datetime
) -> LedgerPage:
    """Rows ``number`` (from 1) of the filtered ledger, newest first."""
    where = filters.conditions(tenant_id, now)
    sums = (await session.execute(select(*TOTALS.values()).where(*where))).one()
    totals = {
        name: value if name == "cost" else int(value)
        for name, value in zip(TOTALS, sums, strict=True)
    }
    pages = max(1, -(-totals["requests"] // PAGE_SIZE))
    number = min(max(number, 1), pages)
    rows = await session.scalars(
        select(UsageRecord)
        .where(*where)
        .order_by(UsageRecord.ended_at.desc(), UsageRecord.request_id.desc())
        .offset((number - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    )
    return LedgerPage(list(rows), totals, number, pages)


async def models_used(session: AsyncSession, tenant_id: str, since: datetime) -> list[str]:
    """The models in the tenant's recent ledger, for the filter's choices."""
    rows = await session.scalars(
        select(UsageRecord.model)
        .where(UsageRecord.tenant_id == tenant_id, UsageRecord.ended_at >= since)
        .group_by(UsageRecord.model)
        .order_by(UsageRecord.model)
    )
    return list(rows)


def _cell(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` …) is
    quoted: ``sub`` and ``model`` come from keys, not from the tenant (OWASP CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return text(value)  # exact: "0.00001177", never 1.177E-5 or a rounded float
    return "" if value is None else value


async def csv_lines(
    db: Database, tenant_id: str, filters: LedgerFilter, now: datetime
) -> AsyncIterator[str]:
    """Every matching row, newest first, as CSV text in chunks (one short read each:
    an export of millions of rows holds neither memory nor a transaction)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.header for c in COLUMNS])
    where = filters.conditions(tenant_id, now)
    after: tuple[datetime, str] | None = None
    while True:
        query = select(UsageRecord).where(*where)
        if after is not None:
            query = query.where(tuple_(UsageRecord.ended_at, UsageRecord.request_id) < after)
        query = query.order_by(UsageRecord.ended_at.desc(), UsageRecord.request_id.desc())
        async with db.sessions() as session:
            rows = list(await session.scalars(query.limit(_CSV_CHUNK)))
        for row in rows:
            writer.writerow([_cell(c.value(row)) for c in COLUMNS])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(rows) < _CSV_CHUNK:
            return
        after = (rows[-1].ended_at, rows[-1].request_id)
