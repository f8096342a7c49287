"""console logins

The end users' console page logs in with server-side sessions.

Revision ID: 7b4c6b18b67f
Revises: 3f6c0d9a2b71
Create Date: 2026-11-28 11:26:10.073743
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7b4c6b18b67f"
down_revision: str | Sequence[str] | None = "3f6c0d9a2b71"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_console_sessions")),
    )


def downgrade() -> None:
    op.drop_table("user_console_sessions")
