"""Demo data: four customers whose problems exercise every part of the recovery playbook.

Dates are relative to the moment of seeding, so "shipped 6 days ago" stays true on any day.
Seeding is idempotent: an existing demo customer is left as it is unless ``reset`` is asked.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import List, Optional

from sqlalchemy.orm import Session

from bot.casedb.engine import session_scope
from bot.casedb.models import (
    Case,
    CaseContact,
    Compensation,
    Customer,
    FollowUp,
    Handoff,
    Order,
    Payment,
    Resolution,
    RootCauseTag,
    Shipment,
)

DEMO_CUSTOMERS = ("cust-1001", "cust-1002", "cust-1003", "cust-1004", "cust-1005")


def _demo_rows(now: datetime) -> List[object]:
    days = lambda n: now - timedelta(days=n)  # noqa: E731 - a readable date helper
    rows: List[object] = []

    # Dana: a late delivery with a broken promise from an earlier contact.
    rows += [
        Customer(id="cust-1001", name="Dana Whitfield", email="dana@example.com", phone="+1 555 0101", created_at=days(400)),
        Order(id="A1001", customer_id="cust-1001", item="noise-cancelling headphones", total=Decimal("249.00"),
              status="shipped", placed_at=days(8)),
        Payment(id="PAY-A1001", order_id="A1001", amount=Decimal("249.00"), charged_at=days(8)),
        Shipment(id="SHP-A1001", order_id="A1001", carrier="SwiftShip", tracking_number="SS48213377",
                 status="exception", status_detail="held at regional hub due to severe weather",
                 shipped_at=days(6), promised_at=days(3)),
        Case(id="CASE-501", customer_id="cust-1001", order_id="A1001", issue_type="delivery", status="open",
             summary="Order A1001 (noise-cancelling headphones) late; past the promised delivery date.",
             opened_at=days(2)),
        CaseContact(case_id="CASE-501", channel="email", issue_type="delivery", frustration_level="annoyed",
                    frustration_score=0.5, handled_by="agent:Morgan",
                    summary="Asked where order A1001 was; told it would arrive the next day.",
                    started_at=days(2), ended_at=days(2) + timedelta(minutes=20)),
    ]

    # Sam: charged twice for the same order on the same day.
    rows += [
        Customer(id="cust-1002", name="Sam Ortiz", email="sam@example.com", phone="+1 555 0102", created_at=days(200)),
        Order(id="B2002", customer_id="cust-1002", item="running shoes", total=Decimal("59.99"), status="delivered",
              placed_at=days(1)),
        Payment(id="PAY-B2002-1", order_id="B2002", amount=Decimal("59.99"), charged_at=days(1)),
        Payment(id="PAY-B2002-2", order_id="B2002", amount=Decimal("59.99"),
                charged_at=days(1) + timedelta(minutes=3)),
    ]

    # Priya: a replacement that failed the same way as the original.
    rows += [
        Customer(id="cust-1003", name="Priya Nair", email="priya@example.com", phone="+1 555 0103", created_at=days(300)),
        Order(id="C3003", customer_id="cust-1003", item="countertop blender", total=Decimal("89.00"), status="delivered",
              placed_at=days(40)),
        Payment(id="PAY-C3003", order_id="C3003", amount=Decimal("89.00"), charged_at=days(40)),
        Shipment(id="SHP-C3003", order_id="C3003", carrier="SwiftShip", tracking_number="SS11002233",
                 status="delivered", shipped_at=days(39), promised_at=days(36), delivered_at=days(36)),
        Shipment(id="SHP-C3003-R", order_id="C3003", carrier="SwiftShip", tracking_number="SS11009988",
                 status="delivered", status_detail="replacement unit", shipped_at=days(23), promised_at=days(20),
                 delivered_at=days(20)),
        Case(id="CASE-733", customer_id="cust-1003", order_id="C3003", issue_type="product", status="resolved",
             summary="Blender from order C3003 leaked from the jar base.", opened_at=days(25), resolved_at=days(21)),
        CaseContact(case_id="CASE-733", channel="chat", issue_type="product", frustration_level="calm",
                    frustration_score=0.2, handled_by="bot",
                    summary="Reported the blender leaking; chose a replacement.", started_at=days(25),
                    ended_at=days(25) + timedelta(minutes=9)),
        Resolution(case_id="CASE-733", option_code="replace", description="Replacement blender sent.",
                   status="done", created_at=days(25)),
        RootCauseTag(case_id="CASE-733", tag="product:jar-seal-defect", created_at=days(21)),
    ]

    # Lee: locked out after failed sign-ins.
    rows += [
        Customer(id="cust-1004", name="Lee Chen", email="lee@example.com", phone="+1 555 0104",
                 account_status="locked", failed_login_count=5,
                 account_status_detail="locked after 5 failed sign-in attempts", created_at=days(100)),
        Order(id="D4004", customer_id="cust-1004", item="desk lamp", total=Decimal("34.50"), status="delivered",
              placed_at=days(30)),
        Payment(id="PAY-D4004", order_id="D4004", amount=Decimal("34.50"), charged_at=days(30)),
    ]

    # Alex: a checkout error (technical) and a lost parcel, for variety in tests.
    rows += [
        Customer(id="cust-1005", name="Alex Romero", email="alex@example.com", phone="+1 555 0105", created_at=days(50)),
        Order(id="E5005", customer_id="cust-1005", item="phone case", total=Decimal("19.99"), status="shipped",
              placed_at=days(12)),
        Payment(id="PAY-E5005", order_id="E5005", amount=Decimal("19.99"), charged_at=days(12)),
        Shipment(id="SHP-E5005", order_id="E5005", carrier="PostNet", tracking_number="PN7788", status="lost",
                 status_detail="no scan for 9 days; carrier investigation opened", shipped_at=days(11),
                 promised_at=days(6)),
    ]
    return rows


def seed_demo(session: Session, now: Optional[datetime] = None, reset: bool = False) -> bool:
    """Insert the demo scenarios; return whether anything was written."""
    now = now or datetime.utcnow()
    if reset:
        clear_demo(session)
    elif session.get(Customer, "cust-1001") is not None:
        return False
    # Parents first so foreign keys hold on PostgreSQL too.
    order = (Customer, Order, Payment, Shipment, Case, CaseContact, Resolution, RootCauseTag)
    rows = sorted(_demo_rows(now), key=lambda row: order.index(type(row)))
    for row in rows:
        session.add(row)
        session.flush()
    return True


def clear_demo(session: Session) -> None:
    """Delete the demo customers and everything that hangs off them."""
    case_ids = [c.id for c in session.query(Case).filter(Case.customer_id.in_(DEMO_CUSTOMERS))]
    order_ids = [o.id for o in session.query(Order).filter(Order.customer_id.in_(DEMO_CUSTOMERS))]
    for model in (CaseContact, Resolution, Compensation, RootCauseTag, FollowUp):
        session.query(model).filter(model.case_id.in_(case_ids)).delete(synchronize_session=False)
    session.query(Handoff).filter(
        (Handoff.customer_id.in_(DEMO_CUSTOMERS)) | (Handoff.case_id.in_(case_ids))
    ).delete(synchronize_session=False)
    session.query(Case).filter(Case.id.in_(case_ids)).delete(synchronize_session=False)
    for model in (Payment, Shipment):
        session.query(model).filter(model.order_id.in_(order_ids)).delete(synchronize_session=False)
    session.query(Order).filter(Order.id.in_(order_ids)).delete(synchronize_session=False)
    session.query(Customer).filter(Customer.id.in_(DEMO_CUSTOMERS)).delete(synchronize_session=False)
    session.flush()


def seed(url: Optional[str] = None, reset: bool = False) -> bool:
    with session_scope(url) as session:
        return seed_demo(session, reset=reset)
