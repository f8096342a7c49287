"""key budgets in generated tokens, total tokens and money; cost in the ledger

``key_budgets.spent`` used to count prompt + generated tokens; a key's ``max_tokens`` now
budgets generated tokens only (issue 11). Existing rows are carried over from the
ledger, which was written in the same transactions as the bookings: ``total_spent``
takes the old figure, ``spent`` the key's generated tokens. Costs before this revision
are unknown (no prices existed) and count as 0.

Revision ID: 534ced08e148
Revises: 9b7e3c1d5a20
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "534ced08e148"
down_revision: str | Sequence[str] | None = "9b7e3c1d5a20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS = ("total_reserved", "total_spent", "cost_reserved", "cost_spent")


def _counter(name: str) -> sa.Column[int]:
    return sa.Column(
        name,
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        server_default="0",
        nullable=False,
    )


def upgrade() -> None:
    with op.batch_alter_table("key_budgets", schema=None) as batch_op:
        for name in _COUNTERS:
            batch_op.add_column(_counter(name))
    op.execute(
        "UPDATE key_budgets SET total_spent = spent, spent = COALESCE(("
        "SELECT SUM(u.completion_tokens) FROM usage_records u "
        "WHERE u.tenant_id = key_budgets.tenant_id AND u.event_id = key_budgets.event_id"
        "), 0)"
    )
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cost", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("total_cost", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("key_defaults", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("model_prices", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("model_prices")
        batch_op.drop_column("key_defaults")
        batch_op.drop_column("total_cost")
    with op.batch_alter_table("usage_records", schema=None) as batch_op:
        batch_op.drop_column("cost")
    op.execute("UPDATE key_budgets SET spent = total_spent")
    with op.batch_alter_table("key_budgets", schema=None) as batch_op:
        for name in reversed(_COUNTERS):
            batch_op.drop_column(name)
