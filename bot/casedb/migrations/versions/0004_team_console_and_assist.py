"""team console and agent assist: private notes, canned replies, learned replies, suggestion telemetry

Revision ID: 0004_assist
Revises: 0003_trust
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_assist"
down_revision = "0003_trust"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversation_notes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("author", sa.String(length=80), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["chat_conversations.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_conversation_notes_conversation_id", "conversation_notes", ["conversation_id"])
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("shortcut", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shortcut", name="uq_canned_replies_shortcut"),
    )
    op.create_table(
        "learned_replies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("template_key", sa.String(length=64), nullable=False),
        sa.Column("answered", sa.Text(), nullable=False),
        sa.Column("issue_type", sa.String(length=20), nullable=True),
        sa.Column("times_sent", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("last_agent", sa.String(length=80), nullable=True),
        sa.Column("last_sent_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("template_key", name="uq_learned_replies_template_key"),
    )
    op.create_table(
        "suggestion_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("batch", sa.String(length=40), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=True),
        sa.Column("action", sa.String(length=80), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False, server_default="shown"),
        sa.Column("agent", sa.String(length=80), nullable=True),
        sa.Column("sent_text", sa.Text(), nullable=True),
        sa.Column("edit_distance", sa.Integer(), nullable=True),
        sa.Column("shown_at", sa.DateTime(), nullable=False),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_suggestion_events_conversation_id", "suggestion_events", ["conversation_id"])
    op.create_index("ix_suggestion_events_batch", "suggestion_events", ["batch"])


def downgrade() -> None:
    op.drop_index("ix_suggestion_events_batch", table_name="suggestion_events")
    op.drop_index("ix_suggestion_events_conversation_id", table_name="suggestion_events")
    op.drop_table("suggestion_events")
    op.drop_table("learned_replies")
    op.drop_table("canned_replies")
    op.drop_index("ix_conversation_notes_conversation_id", table_name="conversation_notes")
    op.drop_table("conversation_notes")
