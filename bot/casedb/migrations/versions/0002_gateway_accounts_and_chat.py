"""gateway: staff accounts, chat conversations and messages

Revision ID: 0002_gateway
Revises: 0001_initial
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_gateway"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=300), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_accounts_username", "accounts", ["username"], unique=True)
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=40), sa.ForeignKey("customers.id"), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("assigned_agent", sa.String(length=80), nullable=True),
        sa.Column("last_agent", sa.String(length=80), nullable=True),
        sa.Column("handoff_reason", sa.String(length=40), nullable=True),
        sa.Column("handoff_summary", sa.Text(), nullable=True),
        sa.Column("waiting_since", sa.DateTime(), nullable=True),
        sa.Column("issue_type", sa.String(length=20), nullable=True),
        sa.Column("frustration_level", sa.String(length=10), nullable=True),
        sa.Column("frustration_score", sa.Float(), nullable=True),
        sa.Column("case_id", sa.String(length=40), nullable=True),
        sa.Column("playbook_steps", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_activity", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_chat_conversations_customer_id", "chat_conversations", ["customer_id"])
    op.create_index("ix_chat_conversations_assigned_agent", "chat_conversations", ["assigned_agent"])
    op.create_index("ix_chat_conversations_last_activity", "chat_conversations", ["last_activity"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=64), sa.ForeignKey("chat_conversations.id"), nullable=False),
        sa.Column("client_id", sa.String(length=80), nullable=True),
        sa.Column("sender", sa.String(length=10), nullable=False),
        sa.Column("agent", sa.String(length=80), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("buttons", sa.Text(), nullable=True),
        sa.Column("parse", sa.Text(), nullable=True),
        sa.Column("delivered_to_bot", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_chat_messages_conversation_id", "chat_messages", ["conversation_id"])
    op.create_index("ix_chat_messages_client", "chat_messages", ["conversation_id", "client_id"], unique=True)


def downgrade() -> None:
    op.drop_table("chat_messages")
    op.drop_table("chat_conversations")
    op.drop_index("ix_accounts_username", table_name="accounts")
    op.drop_table("accounts")
