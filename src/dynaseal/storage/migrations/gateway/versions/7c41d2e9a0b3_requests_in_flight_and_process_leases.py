"""requests in flight (intents) and the leases of the gateway processes serving them

Revision ID: 7c41d2e9a0b3
Revises: 7c1e5b2a9d40
Create Date: 2026-11-28 15:00:00.000000
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision: str = "7c41d2e9a0b3"
down_revision: str | Sequence[str] | None = "7c1e5b2a9d40"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _int(name: str, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=nullable)


def _time(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "gateway_processes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=256), nullable=False),
        _int("pid"),
        _time("started_at"),
        _time("heartbeat_at"),
        _time("lease_until"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_processes")),
    )
    with op.batch_alter_table("gateway_processes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_processes_lease_until"), ["lease_until"], unique=False
        )
    op.create_table(
        "requests_in_flight",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("sub", sa.String(length=256), nullable=True),
        sa.Column("key_metadata", sa.JSON(), nullable=True),
        _int("key_max_tokens"),
        _time("key_expires_at"),
        sa.Column("key_ancestors", sa.JSON(), nullable=True),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("stream", sa.Boolean(), nullable=False),
        _int("reserved_tokens"),
        _int("reserved_total_tokens"),
        _int("reserved_cost"),
        _int("completion_cap"),
        _int("prompt_estimate"),
        _int("cost_estimate", nullable=True),
        _time("started_at"),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_requests_in_flight")),
    )
    with op.batch_alter_table("requests_in_flight", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_requests_in_flight_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("requests_in_flight", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requests_in_flight_owner"))
    op.drop_table("requests_in_flight")
    with op.batch_alter_table("gateway_processes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_processes_lease_until"))
    op.drop_table("gateway_processes")
