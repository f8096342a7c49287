"""tenants can be disabled

Revision ID: 5fd73a098b95
Revises: fa9691798e52
Create Date: 2026-11-28 11:29:39.196360
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5fd73a098b95"
down_revision: str | Sequence[str] | None = "fa9691798e52"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
