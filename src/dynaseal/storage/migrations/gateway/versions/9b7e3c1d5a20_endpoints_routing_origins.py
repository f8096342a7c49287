"""endpoints, routing attempts and web origins

The ledger records which OpenAI endpoint each request used and every upstream
deployment it tried; a tenant may restrict the web origins its keys work from.

Revision ID: 9b7e3c1d5a20
Revises: 4cd4a7dde0f2
Create Date: 2026-11-28 14:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9b7e3c1d5a20"
down_revision: str | Sequence[str] | None = "4cd4a7dde0f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("endpoint", sa.String(length=16), nullable=False, server_default="chat")
        )
        batch_op.add_column(sa.Column("attempts", sa.JSON(), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allowed_origins", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("allowed_origins")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("attempts")
        batch_op.drop_column("endpoint")
