"""callbacks gathered into batches; content-free callbacks for new tenants

Tenants choose ``callback_batch_seconds`` (0: one callback per request, as before) and
``callback_batch_max``. A batch is an outbox row of its own (``events`` counts what it
carries); the per-request rows it carries point at it with ``batch_id``. Existing
tenants keep ``callback_include_content`` as it was; only new tenants default to off
(an application default, nothing to migrate).

Revision ID: 7c1e5b2a9d40
Revises: 534ced08e148
Create Date: 2026-11-28 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e5b2a9d40"
down_revision: str | Sequence[str] | None = "534ced08e148"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("callback_batch_seconds", sa.Float(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("callback_batch_max", _INT, server_default="100", nullable=False)
        )
    with op.batch_alter_table("callback_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("events", _INT, nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_callback_deliveries_batch_id"), ["batch_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("callback_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_deliveries_batch_id"))
        batch_op.drop_column("batch_id")
        batch_op.drop_column("events")
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("callback_batch_max")
        batch_op.drop_column("callback_batch_seconds")
