"""console: refusal counts, console logins, ledger by time

Refused requests are counted per tenant, minute and reason; console logins are
server-side sessions; the ledger gets an index on (tenant, end time) for the console's
charts and pages.

Revision ID: 04bf2fe4475e
Revises: 5fd73a098b95
Create Date: 2026-11-28 11:26:09.620905
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "04bf2fe4475e"
down_revision: str | Sequence[str] | None = "5fd73a098b95"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "refusal_counts",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "minute", "reason", name=op.f("pk_refusal_counts")),
    )
    op.create_table(
        "tenant_console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_console_sessions")),
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.create_index("ix_usage_tenant_ended", ["tenant_id", "ended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_tenant_ended")

    op.drop_table("tenant_console_sessions")
    op.drop_table("refusal_counts")
