"""The secret a service generates when SECRET_KEY is unset (issue 12).

Revision ID: d0adb5e0f19c
Revises: 04bf2fe4475e
Create Date: 2026-11-28 11:26:41.791713
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d0adb5e0f19c"
down_revision: str | Sequence[str] | None = "04bf2fe4475e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_secrets")),
    )


def downgrade() -> None:
    op.drop_table("gateway_secrets")
