"""trust under faults and abuse: durable follow-ups, staff sessions, throttles, client keys

Revision ID: 0003_trust
Revises: 0002_gateway
"""
from alembic import op
import sqlalchemy as sa

revision = "0003_trust"
down_revision = "0002_gateway"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A promised check-in is sent by a durable job, once, and its answer is kept.
    op.add_column("follow_ups", sa.Column("sent_at", sa.DateTime(), nullable=True))
    op.add_column("follow_ups", sa.Column("outcome", sa.String(length=20), nullable=True))
    op.add_column("follow_ups", sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_follow_ups_due", "follow_ups", ["done", "due_at"])
    # Staff sessions live on the server so that logout revokes them, across gateway restarts.
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_staff_sessions_username", "staff_sessions", ["username"])
    # Attempts counted across conversations and processes (verification per email and address, ...).
    op.create_table(
        "throttle_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_throttle_events_kind_key_at", "throttle_events", ["kind", "key", "at"])
    # Which client (a keyed hash of its address) opened a conversation: limits and flood folding.
    op.add_column("chat_conversations", sa.Column("client_key", sa.String(length=64), nullable=True))
    op.create_index("ix_chat_conversations_client_key", "chat_conversations", ["client_key"])


def downgrade() -> None:
    op.drop_index("ix_chat_conversations_client_key", table_name="chat_conversations")
    with op.batch_alter_table("chat_conversations") as batch:
        batch.drop_column("client_key")
    op.drop_index("ix_throttle_events_kind_key_at", table_name="throttle_events")
    op.drop_table("throttle_events")
    op.drop_index("ix_staff_sessions_username", table_name="staff_sessions")
    op.drop_table("staff_sessions")
    op.drop_index("ix_follow_ups_due", table_name="follow_ups")
    with op.batch_alter_table("follow_ups") as batch:
        batch.drop_column("attempts")
        batch.drop_column("outcome")
        batch.drop_column("sent_at")
