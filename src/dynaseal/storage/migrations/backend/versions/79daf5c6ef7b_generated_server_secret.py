"""The secret a service generates when SECRET_KEY is unset (issue 12).

Revision ID: 79daf5c6ef7b
Revises: 7b4c6b18b67f
Create Date: 2026-11-28 11:26:42.688954
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "79daf5c6ef7b"
down_revision: str | Sequence[str] | None = "7b4c6b18b67f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backend_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_backend_secrets")),
    )


def downgrade() -> None:
    op.drop_table("backend_secrets")
