"""Reads and writes of the case database, in the words of the recovery playbook.

Reads return plain snapshots (dataclasses) so callers never touch a closed session;
writes take a session so a caller can group them in one transaction.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import List, Optional

from sqlalchemy import func
from sqlalchemy.orm import Session

from bot.casedb.models import (
    Case,
    CaseContact,
    Compensation,
    Customer,
    FollowUp,
    Handoff,
    Order,
    Resolution,
    RootCauseTag,
)

RECENT_CASE_DAYS = 60


@dataclass
class ContactSnapshot:
    channel: str
    summary: str
    started_at: datetime
    handled_by: str
    conversation_id: Optional[str]


@dataclass
class OrderSnapshot:
    id: str
    item: str
    total: Decimal
    currency: str
    status: str
    placed_at: datetime
    payments: List[dict] = field(default_factory=list)
    shipments: List[dict] = field(default_factory=list)


@dataclass
class CaseSnapshot:
    id: str
    issue_type: str
    status: str
    summary: str
    order_id: Optional[str]
    opened_at: datetime
    resolved_at: Optional[datetime]
    contacts: List[ContactSnapshot] = field(default_factory=list)
    resolutions: List[dict] = field(default_factory=list)
    compensations: List[dict] = field(default_factory=list)


@dataclass
class CustomerHistory:
    """Everything the company knows about a customer, so the customer never re-explains."""

    customer_id: str
    name: str
    first_name: str
    email: str
    account_status: str
    account_status_detail: Optional[str]
    orders: List[OrderSnapshot] = field(default_factory=list)
    cases: List[CaseSnapshot] = field(default_factory=list)

    def order(self, order_id: Optional[str]) -> Optional[OrderSnapshot]:
        wanted = (order_id or "").strip().lstrip("#").upper()
        return next((o for o in self.orders if o.id.upper() == wanted), None)

    def case(self, case_id: Optional[str]) -> Optional[CaseSnapshot]:
        return next((c for c in self.cases if c.id == case_id), None)


def _order_snapshot(order: Order) -> OrderSnapshot:
    return OrderSnapshot(
        id=order.id, item=order.item, total=order.total, currency=order.currency, status=order.status,
        placed_at=order.placed_at,
        payments=[{"id": p.id, "amount": p.amount, "status": p.status, "charged_at": p.charged_at} for p in order.payments],
        shipments=[{
            "carrier": s.carrier, "tracking_number": s.tracking_number, "status": s.status,
            "status_detail": s.status_detail, "shipped_at": s.shipped_at, "promised_at": s.promised_at,
            "delivered_at": s.delivered_at,
        } for s in order.shipments],
    )


def _case_snapshot(case: Case) -> CaseSnapshot:
    return CaseSnapshot(
        id=case.id, issue_type=case.issue_type, status=case.status, summary=case.summary, order_id=case.order_id,
        opened_at=case.opened_at, resolved_at=case.resolved_at,
        contacts=[ContactSnapshot(c.channel, c.summary, c.started_at, c.handled_by, c.conversation_id) for c in case.contacts],
        resolutions=[{"option_code": r.option_code, "description": r.description, "status": r.status,
                      "created_at": r.created_at} for r in case.resolutions],
        compensations=[{"kind": c.kind, "amount": c.amount, "reason": c.reason, "created_at": c.created_at}
                       for c in case.compensations],
    )


def customer_history(session: Session, customer_id: str) -> Optional[CustomerHistory]:
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    return CustomerHistory(
        customer_id=customer.id, name=customer.name, first_name=customer.first_name, email=customer.email,
        account_status=customer.account_status, account_status_detail=customer.account_status_detail,
        orders=[_order_snapshot(o) for o in customer.orders],
        cases=[_case_snapshot(c) for c in customer.cases],
    )


def customer_first_name(session: Session, customer_id: str) -> Optional[str]:
    """The first name of a known customer (None: unknown id), without loading their history."""
    customer = session.get(Customer, customer_id)
    return customer.first_name if customer is not None else None


def verify_customer(session: Session, email: str, order_id: str) -> Optional[str]:
    """The customer id when the email and order number belong together, else None (no hint which was wrong)."""
    email = (email or "").strip().lower()
    order_id = (order_id or "").strip().lstrip("#").upper()
    if not email or not order_id or len(email) > 320 or len(order_id) > 40:
        return None
    row = (
        session.query(Customer.id)
        .join(Order, Order.customer_id == Customer.id)
        .filter(func.lower(Customer.email) == email, func.upper(Order.id) == order_id)
        .first()
    )
    return row[0] if row else None


def _new_case_id(session: Session) -> str:
    while True:
        candidate = f"CASE-{secrets.randbelow(900000) + 100000}"
        if session.get(Case, candidate) is None:
            return candidate


def open_case(session: Session, customer_id: str, issue_type: str, order_id: Optional[str], summary: str,
              now: Optional[datetime] = None) -> str:
    case = Case(id=_new_case_id(session), customer_id=customer_id, order_id=order_id, issue_type=issue_type,
                status="open", summary=summary[:2000], opened_at=now or datetime.utcnow())
    session.add(case)
    session.flush()
    return case.id


def reopen_case(session: Session, case_id: str, reason: str) -> None:
    case = session.get(Case, case_id)
    if case is not None and case.status != "open":
        case.status = "open"
        case.resolved_at = None
        case.summary = f"{case.summary} Reopened: {reason}"[:4000]


def record_contact(session: Session, case_id: str, conversation_id: str, summary: str, issue_type: Optional[str],
                   frustration_level: Optional[str], frustration_score: Optional[float], handled_by: str = "bot",
                   channel: str = "chat", now: Optional[datetime] = None) -> None:
    """One contact per conversation and case: later turns update it rather than adding rows."""
    now = now or datetime.utcnow()
    contact = (
        session.query(CaseContact)
        .filter(CaseContact.case_id == case_id, CaseContact.conversation_id == conversation_id)
        .first()
    )
    if contact is None:
        contact = CaseContact(case_id=case_id, conversation_id=conversation_id, channel=channel, started_at=now)
        session.add(contact)
    contact.summary = summary[:4000]
    contact.issue_type = issue_type
    contact.frustration_level = frustration_level
    contact.frustration_score = frustration_score
    contact.handled_by = handled_by
    contact.ended_at = now
    session.flush()


def earlier_contacts(session: Session, case_id: str, conversation_id: str) -> int:
    """How many times the customer already contacted us about this case, in other conversations."""
    return (
        session.query(func.count(CaseContact.id))
        .filter(CaseContact.case_id == case_id,
                (CaseContact.conversation_id.is_(None)) | (CaseContact.conversation_id != conversation_id))
        .scalar()
    ) or 0


def record_resolution(session: Session, case_id: str, option_code: str, description: str,
                      chosen_by: str = "customer") -> None:
    session.add(Resolution(case_id=case_id, option_code=option_code, description=description[:2000],
                           chosen_by=chosen_by, status="in_progress"))
    session.flush()


def record_compensation(session: Session, case_id: str, kind: str, amount: Decimal, currency: str, reason: str,
                        granted_by: str = "bot") -> None:
    session.add(Compensation(case_id=case_id, kind=kind, amount=amount, currency=currency, reason=reason[:2000],
                             granted_by=granted_by))
    session.flush()


def compensation_total(session: Session, case_id: str) -> Decimal:
    total = session.query(func.coalesce(func.sum(Compensation.amount), 0)).filter(Compensation.case_id == case_id).scalar()
    return Decimal(str(total or 0))


def tag_root_cause(session: Session, case_id: str, tag: str) -> None:
    exists = session.query(RootCauseTag.id).filter(RootCauseTag.case_id == case_id, RootCauseTag.tag == tag).first()
    if not exists:
        session.add(RootCauseTag(case_id=case_id, tag=tag[:80]))
        session.flush()


def close_case(session: Session, case_id: str, now: Optional[datetime] = None) -> None:
    case = session.get(Case, case_id)
    if case is not None:
        case.status = "resolved"
        case.resolved_at = now or datetime.utcnow()


def record_handoff(session: Session, conversation_id: str, reason: str, summary: str,
                   customer_id: Optional[str] = None, case_id: Optional[str] = None,
                   frustration_level: Optional[str] = None) -> int:
    """Queue the conversation for a person; a waiting handoff for the same conversation is updated, not duplicated."""
    handoff = (
        session.query(Handoff)
        .filter(Handoff.conversation_id == conversation_id, Handoff.status == "waiting")
        .first()
    )
    if handoff is None:
        handoff = Handoff(conversation_id=conversation_id, reason=reason, summary=summary[:4000],
                          customer_id=customer_id, case_id=case_id, frustration_level=frustration_level)
        session.add(handoff)
    else:
        handoff.summary = summary[:4000]
        handoff.frustration_level = frustration_level
        handoff.case_id = handoff.case_id or case_id
        handoff.customer_id = handoff.customer_id or customer_id
    session.flush()
    return handoff.id


def schedule_follow_up(session: Session, case_id: str, conversation_id: str, due_at: datetime, note: str) -> None:
    session.add(FollowUp(case_id=case_id, conversation_id=conversation_id, due_at=due_at, note=note[:2000]))
    session.flush()


def complete_follow_ups(session: Session, case_id: str, now: Optional[datetime] = None) -> int:
    now = now or datetime.utcnow()
    due = session.query(FollowUp).filter(FollowUp.case_id == case_id, FollowUp.done.is_(False),
                                         FollowUp.due_at <= now + timedelta(minutes=1)).all()
    for follow_up in due:
        follow_up.done = True
    return len(due)
