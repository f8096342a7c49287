"""initial schema

Revision ID: 078e48e4929c
Revises:
Create Date: 2026-11-26 12:11:49.212574
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "078e48e4929c"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "issued_keys",
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column(
            "max_tokens", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_issued_keys")),
    )
    with op.batch_alter_table("issued_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_issued_keys_user_id"), ["user_id"], unique=False)

    op.create_table(
        "usage_callbacks",
        sa.Column("delivery_id", sa.String(length=256), nullable=False),
        sa.Column("event_id", sa.String(length=256), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=True),
        sa.Column("tokens", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("signature_verified", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_usage_callbacks")),
    )
    with op.batch_alter_table("usage_callbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_usage_callbacks_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_usage_callbacks_user_id"), ["user_id"], unique=False)
        batch_op.create_index("ix_usage_user_day", ["user_id", "occurred_at"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=256), nullable=True),
        sa.Column("password_hash", sa.String(length=128), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("allowed_models", sa.JSON(), nullable=True),
        sa.Column(
            "key_budget_tokens", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "key_lifetime_seconds",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column(
            "daily_token_quota", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )


def downgrade() -> None:
    op.drop_table("users")
    with op.batch_alter_table("usage_callbacks", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_user_day")
        batch_op.drop_index(batch_op.f("ix_usage_callbacks_user_id"))
        batch_op.drop_index(batch_op.f("ix_usage_callbacks_event_id"))

    op.drop_table("usage_callbacks")
    with op.batch_alter_table("issued_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_issued_keys_user_id"))

    op.drop_table("issued_keys")
