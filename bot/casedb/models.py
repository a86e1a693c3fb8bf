"""ORM schema of the case database: what the company already knows about a customer.

The schema itself is owned by Alembic migrations (``bot/casedb/migrations``); these
classes are the mapping the application code uses.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Optional

from sqlalchemy import (
    Boolean,
    Index,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import declarative_base, relationship

Base = declarative_base()


class Customer(Base):
    __tablename__ = "customers"

    id = Column(String(40), primary_key=True)
    name = Column(String(200), nullable=False)
    email = Column(String(320), nullable=False, unique=True, index=True)
    phone = Column(String(40))
    account_status = Column(String(20), nullable=False, default="active")
    account_status_detail = Column(Text)
    failed_login_count = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    orders = relationship("Order", back_populates="customer", order_by="Order.placed_at.desc()")
    cases = relationship("Case", back_populates="customer", order_by="Case.opened_at.desc()")

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name else ""


class Order(Base):
    __tablename__ = "orders"

    id = Column(String(40), primary_key=True)
    customer_id = Column(String(40), ForeignKey("customers.id"), nullable=False, index=True)
    item = Column(String(300), nullable=False)
    total = Column(Numeric(10, 2), nullable=False)
    currency = Column(String(3), nullable=False, default="USD")
    status = Column(String(30), nullable=False, default="placed")
    placed_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    customer = relationship("Customer", back_populates="orders")
    payments = relationship("Payment", back_populates="order", order_by="Payment.charged_at")
    shipments = relationship("Shipment", back_populates="order", order_by="Shipment.shipped_at")


class Payment(Base):
    __tablename__ = "payments"

    id = Column(String(40), primary_key=True)
    order_id = Column(String(40), ForeignKey("orders.id"), nullable=False, index=True)
    amount = Column(Numeric(10, 2), nullable=False)
    currency = Column(String(3), nullable=False, default="USD")
    method = Column(String(40), nullable=False, default="card")
    status = Column(String(20), nullable=False, default="captured")
    charged_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    order = relationship("Order", back_populates="payments")


class Shipment(Base):
    __tablename__ = "shipments"

    id = Column(String(40), primary_key=True)
    order_id = Column(String(40), ForeignKey("orders.id"), nullable=False, index=True)
    carrier = Column(String(80), nullable=False)
    tracking_number = Column(String(80))
    status = Column(String(30), nullable=False)
    status_detail = Column(Text)
    shipped_at = Column(DateTime)
    promised_at = Column(DateTime)
    delivered_at = Column(DateTime)

    order = relationship("Order", back_populates="shipments")


class Case(Base):
    __tablename__ = "cases"

    id = Column(String(40), primary_key=True)
    customer_id = Column(String(40), ForeignKey("customers.id"), nullable=False, index=True)
    order_id = Column(String(40), ForeignKey("orders.id"), index=True)
    issue_type = Column(String(20), nullable=False)
    status = Column(String(20), nullable=False, default="open")
    summary = Column(Text, nullable=False)
    opened_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    resolved_at = Column(DateTime)
    owner_agent = Column(String(80))

    customer = relationship("Customer", back_populates="cases")
    order = relationship("Order")
    contacts = relationship("CaseContact", back_populates="case", order_by="CaseContact.started_at")
    resolutions = relationship("Resolution", back_populates="case", order_by="Resolution.created_at")
    compensations = relationship("Compensation", back_populates="case", order_by="Compensation.created_at")
    root_causes = relationship("RootCauseTag", back_populates="case")


class CaseContact(Base):
    """One conversation about a case, whatever the channel: the memory that spares re-explaining."""

    __tablename__ = "case_contacts"

    id = Column(Integer, primary_key=True, autoincrement=True)
    case_id = Column(String(40), ForeignKey("cases.id"), nullable=False, index=True)
    conversation_id = Column(String(200), index=True)
    channel = Column(String(20), nullable=False)
    summary = Column(Text, nullable=False)
    issue_type = Column(String(20))
    frustration_level = Column(String(10))
    frustration_score = Column(Float)
    handled_by = Column(String(80), nullable=False, default="bot")
    started_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    ended_at = Column(DateTime)

    case = relationship("Case", back_populates="contacts")


class Resolution(Base):
    __tablename__ = "resolutions"

    id = Column(Integer, primary_key=True, autoincrement=True)
    case_id = Column(String(40), ForeignKey("cases.id"), nullable=False, index=True)
    option_code = Column(String(40), nullable=False)
    description = Column(Text, nullable=False)
    chosen_by = Column(String(80), nullable=False, default="customer")
    status = Column(String(20), nullable=False, default="in_progress")
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    case = relationship("Case", back_populates="resolutions")


class Compensation(Base):
    __tablename__ = "compensations"

    id = Column(Integer, primary_key=True, autoincrement=True)
    case_id = Column(String(40), ForeignKey("cases.id"), nullable=False, index=True)
    kind = Column(String(30), nullable=False)
    amount = Column(Numeric(10, 2), nullable=False, default=Decimal("0"))
    currency = Column(String(3), nullable=False, default="USD")
    reason = Column(Text, nullable=False)
    granted_by = Column(String(80), nullable=False, default="bot")
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    case = relationship("Case", back_populates="compensations")


class RootCauseTag(Base):
    __tablename__ = "root_cause_tags"

    id = Column(Integer, primary_key=True, autoincrement=True)
    case_id = Column(String(40), ForeignKey("cases.id"), nullable=False, index=True)
    tag = Column(String(80), nullable=False)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    case = relationship("Case", back_populates="root_causes")


class Handoff(Base):
    """A request for a human, with the context the human needs so the customer never repeats."""

    __tablename__ = "handoffs"

    id = Column(Integer, primary_key=True, autoincrement=True)
    conversation_id = Column(String(200), nullable=False, index=True)
    customer_id = Column(String(40), ForeignKey("customers.id"), index=True)
    case_id = Column(String(40), ForeignKey("cases.id"), index=True)
    reason = Column(String(40), nullable=False)
    summary = Column(Text, nullable=False)
    frustration_level = Column(String(10))
    status = Column(String(20), nullable=False, default="waiting")
    assigned_agent = Column(String(80))
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class FollowUp(Base):
    """A promised check-in, stored so it survives a restart of the Rasa scheduler."""

    __tablename__ = "follow_ups"

    id = Column(Integer, primary_key=True, autoincrement=True)
    case_id = Column(String(40), ForeignKey("cases.id"), nullable=False, index=True)
    conversation_id = Column(String(200))
    due_at = Column(DateTime, nullable=False)
    note = Column(Text, nullable=False)
    done = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    sent_at = Column(DateTime)           # when the durable job delivered the check-in
    outcome = Column(String(20))         # fixed | not_fixed, from the customer's answer
    attempts = Column(Integer, nullable=False, default=0, server_default="0")

    __table_args__ = (Index("ix_follow_ups_due", "done", "due_at"),)



# -- the gateway: staff accounts and the chat transcript as the customer saw it -----------------
class Account(Base):
    """A staff member who logs in to the console (agent) or trainer page (trainer, admin)."""

    __tablename__ = "accounts"

    id = Column(Integer, primary_key=True, autoincrement=True)
    username = Column(String(80), nullable=False, unique=True, index=True)
    display_name = Column(String(200), nullable=False)
    password_hash = Column(String(300), nullable=False)
    role = Column(String(20), nullable=False, default="agent")
    disabled = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class ChatConversation(Base):
    """A widget conversation and who is answering it: the bot, a queue, or an agent."""

    __tablename__ = "chat_conversations"

    id = Column(String(64), primary_key=True)
    customer_id = Column(String(40), ForeignKey("customers.id"), index=True)
    status = Column(String(20), nullable=False, default="bot")  # bot | waiting | agent | closed
    assigned_agent = Column(String(80), index=True)
    last_agent = Column(String(80))
    handoff_reason = Column(String(40))
    handoff_summary = Column(Text)
    waiting_since = Column(DateTime)
    issue_type = Column(String(20))
    frustration_level = Column(String(10))
    frustration_score = Column(Float)
    case_id = Column(String(40))
    playbook_steps = Column(Text)  # JSON list, as the tracker last reported it
    client_key = Column(String(64), index=True)  # keyed hash of the opening client's address
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    last_activity = Column(DateTime, nullable=False, default=datetime.utcnow, index=True)


class ChatMessage(Base):
    """Every message, stored before it is acknowledged so that no process restart loses it."""

    __tablename__ = "chat_messages"

    id = Column(Integer, primary_key=True, autoincrement=True)
    conversation_id = Column(String(64), ForeignKey("chat_conversations.id"), nullable=False, index=True)
    client_id = Column(String(80))
    sender = Column(String(10), nullable=False)  # customer | bot | agent | system
    agent = Column(String(80))
    text = Column(Text, nullable=False, default="")
    payload = Column(Text)
    buttons = Column(Text)      # JSON list of {title, payload}
    parse = Column(Text)        # JSON: frustration and issue type of a customer message
    delivered_to_bot = Column(Boolean, nullable=False, default=False)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)

    __table_args__ = (Index("ix_chat_messages_client", "conversation_id", "client_id", unique=True),)


class StaffSession(Base):
    """A logged-in staff session; logout revokes it here, so a copied cookie stops working."""

    __tablename__ = "staff_sessions"

    id = Column(String(64), primary_key=True)
    username = Column(String(80), nullable=False, index=True)
    client = Column(String(64))
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    expires_at = Column(DateTime, nullable=False)
    revoked_at = Column(DateTime)


class ThrottleEvent(Base):
    """One counted attempt (a failed verification, a new conversation...) for limits shared by processes."""

    __tablename__ = "throttle_events"

    id = Column(Integer, primary_key=True, autoincrement=True)
    kind = Column(String(30), nullable=False)
    key = Column(String(128), nullable=False)
    at = Column(DateTime, nullable=False, default=datetime.utcnow)

    __table_args__ = (Index("ix_throttle_events_kind_key_at", "kind", "key", "at"),)


class ConversationNote(Base):
    """A private note on a conversation: written by staff for staff, never sent to the customer."""

    __tablename__ = "conversation_notes"

    id = Column(Integer, primary_key=True, autoincrement=True)
    conversation_id = Column(String(64), ForeignKey("chat_conversations.id"), nullable=False, index=True)
    author = Column(String(80), nullable=False)
    text = Column(Text, nullable=False)
    created_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class CannedReply(Base):
    """A reply the team keeps ready; admins manage them, agents insert them by shortcut, and
    placeholders such as ``{first_name}`` or ``{order_id}`` are filled from the open case."""

    __tablename__ = "canned_replies"

    id = Column(Integer, primary_key=True, autoincrement=True)
    shortcut = Column(String(40), nullable=False, unique=True)
    title = Column(String(120), nullable=False)
    text = Column(Text, nullable=False)
    created_by = Column(String(80))
    updated_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class LearnedReply(Base):
    """A reply an agent sent, kept once (facts of its case turned back into placeholders) so that
    later suggestions can offer it for a customer message of the same meaning."""

    __tablename__ = "learned_replies"

    id = Column(Integer, primary_key=True, autoincrement=True)
    template = Column(Text, nullable=False)
    template_key = Column(String(64), nullable=False, unique=True)  # hash of the normalized template
    answered = Column(Text, nullable=False, default="")  # the customer message it answered
    issue_type = Column(String(20))
    times_sent = Column(Integer, nullable=False, default=1)
    last_agent = Column(String(80))
    last_sent_at = Column(DateTime, nullable=False, default=datetime.utcnow)


class SuggestionEvent(Base):
    """One suggestion shown to an agent and what became of it: sent as is, sent edited, or ignored."""

    __tablename__ = "suggestion_events"

    id = Column(Integer, primary_key=True, autoincrement=True)
    conversation_id = Column(String(64), nullable=False, index=True)
    batch = Column(String(40), nullable=False, index=True)  # the set it was shown in
    rank = Column(Integer, nullable=False)
    kind = Column(String(40))
    source = Column(String(20))
    action = Column(String(80))
    text = Column(Text, nullable=False)
    outcome = Column(String(12), nullable=False, default="shown")  # shown | as_is | edited | ignored
    agent = Column(String(80))
    sent_text = Column(Text)
    edit_distance = Column(Integer)
    shown_at = Column(DateTime, nullable=False, default=datetime.utcnow)
    decided_at = Column(DateTime)
