"""tenant upstream fields, ledger overshoot

A tenant's allow-list of request fields passed upstream (issue 12.3) and, per ledger
row, the completion tokens an upstream generated past its cap.

Revision ID: 4cd4a7dde0f2
Revises: d0adb5e0f19c
Create Date: 2026-11-28 12:06:29.649954
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4cd4a7dde0f2"
down_revision: str | Sequence[str] | None = "d0adb5e0f19c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_fields", sa.JSON(), nullable=True))

    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "overshoot_tokens",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                server_default="0",
                nullable=False,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("overshoot_tokens")

    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("upstream_fields")
