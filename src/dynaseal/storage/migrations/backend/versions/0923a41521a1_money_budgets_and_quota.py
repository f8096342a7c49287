"""policies and keys with total-token and money budgets; callbacks with generated tokens
and cost

The daily token quota now counts generated tokens (a key's ``max_tokens``, issue 11).
Callbacks stored before this revision kept their generated tokens only in the payload:
they count with all their tokens, which errs on the side of the quota.

Revision ID: 0923a41521a1
Revises: 79daf5c6ef7b
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0923a41521a1"
down_revision: str | Sequence[str] | None = "79daf5c6ef7b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key_total_tokens", _INT, nullable=True))
        batch_op.add_column(sa.Column("key_max_cost", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("daily_cost_quota", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("issued_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_total_tokens", _INT, nullable=True))
        batch_op.add_column(sa.Column("max_cost", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("usage_callbacks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("completion_tokens", _INT, server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("cost", sa.BigInteger(), nullable=True))
    op.execute("UPDATE usage_callbacks SET completion_tokens = tokens")


def downgrade() -> None:
    with op.batch_alter_table("usage_callbacks", schema=None) as batch_op:
        batch_op.drop_column("cost")
        batch_op.drop_column("completion_tokens")
    with op.batch_alter_table("issued_keys", schema=None) as batch_op:
        batch_op.drop_column("max_cost")
        batch_op.drop_column("max_total_tokens")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("daily_cost_quota")
        batch_op.drop_column("key_max_cost")
        batch_op.drop_column("key_total_tokens")
