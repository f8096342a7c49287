"""users: require_bound_keys (per-user policy for device-bound keys, issue 17)

Revision ID: 3f6c0d9a2b71
Revises: 078e48e4929c
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6c0d9a2b71"
down_revision: str | Sequence[str] | None = "078e48e4929c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_bound_keys", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("require_bound_keys")
