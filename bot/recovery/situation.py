"""What this complaint is about, worked out from the case history before asking anything."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import List, Optional

from bot.casedb.repository import CaseSnapshot, CustomerHistory, OrderSnapshot, RECENT_CASE_DAYS


@dataclass
class Situation:
    history: CustomerHistory
    issue_type: str
    case: Optional[CaseSnapshot]
    order: Optional[OrderSnapshot]
    earlier_contacts: List  # ContactSnapshot of other conversations about the case
    reopened: bool          # the case was resolved before and the problem is back

    @property
    def repeat_failure(self) -> bool:
        return self.reopened or bool(self.earlier_contacts)


def _undelivered(order: OrderSnapshot) -> bool:
    return any(not s.get("delivered_at") for s in order.shipments) or (order.status in {"placed", "shipped"})


def _has_duplicate_charge(order: OrderSnapshot) -> bool:
    amounts = [p["amount"] for p in order.payments if p.get("status") == "captured"]
    return len(amounts) != len(set(amounts))


def _pick_order(history: CustomerHistory, issue_type: str) -> Optional[OrderSnapshot]:
    orders = history.orders
    if not orders:
        return None
    if issue_type == "delivery":
        return next((o for o in orders if _undelivered(o)), orders[0])
    if issue_type == "billing":
        return next((o for o in orders if _has_duplicate_charge(o)), orders[0])
    if issue_type == "account":
        return None
    return orders[0]


def find_situation(history: CustomerHistory, issue_type: str, conversation_id: str,
                   order_id: Optional[str] = None, case_id: Optional[str] = None,
                   now: Optional[datetime] = None) -> Situation:
    now = now or datetime.utcnow()
    recent = now - timedelta(days=RECENT_CASE_DAYS)
    case = history.case(case_id) if case_id else None
    order = history.order(order_id) if order_id else None
    if case is None and order is not None:
        # A case about this order and this kind of problem: a billing complaint about an order with an
        # open delivery case is a case of its own, with a resolution of its own.
        on_order = [c for c in history.cases if c.order_id == order.id
                    and (issue_type == "other" or c.issue_type == issue_type)]
        case = next((c for c in on_order if c.status == "open"), None) or next(
            (c for c in on_order if c.opened_at >= recent), None)
    if case is None and issue_type != "other":
        same_type = [c for c in history.cases if c.issue_type == issue_type]
        case = next((c for c in same_type if c.status == "open"), None) or next(
            (c for c in same_type if (c.resolved_at or c.opened_at) >= recent), None)
    if case is None and issue_type == "other":
        case = next((c for c in history.cases if c.status == "open"), None)
    if order is None and case is not None and case.order_id:
        order = history.order(case.order_id)
    if order is None and case is None:
        order = _pick_order(history, issue_type)
    earlier = [c for c in case.contacts if c.conversation_id != conversation_id] if case else []
    reopened = bool(case and case.status != "open")
    return Situation(history, issue_type if issue_type != "other" or case is None else case.issue_type,
                     case, order, earlier, reopened)
