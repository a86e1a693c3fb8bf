"""JSON views of case-database snapshots for the console (dates as ISO strings, money as numbers)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Dict, List, Optional

from bot.casedb.repository import CustomerHistory
from bot.recovery.playbook import STEPS


def _iso(value: Any) -> Optional[str]:
    return value.replace(microsecond=0).isoformat() + "Z" if isinstance(value, datetime) else None


def _money(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (Decimal, int, float)) else None


def history_view(history: Optional[CustomerHistory], now: Optional[datetime] = None) -> Optional[Dict[str, Any]]:
    """Everything the agent needs so the customer is never asked again."""
    if history is None:
        return None
    now = now or datetime.utcnow()
    orders: List[Dict[str, Any]] = []
    for order in history.orders:
        shipment = order.shipments[-1] if order.shipments else None
        orders.append({
            "id": order.id, "item": order.item, "total": _money(order.total), "currency": order.currency,
            "status": order.status, "placed_at": _iso(order.placed_at),
            "payments": [{"amount": _money(p["amount"]), "status": p["status"], "charged_at": _iso(p["charged_at"])}
                         for p in order.payments],
            "shipment": None if shipment is None else {
                "carrier": shipment["carrier"], "tracking_number": shipment["tracking_number"],
                "status": shipment["status"], "status_detail": shipment["status_detail"],
                "shipped_at": _iso(shipment["shipped_at"]), "promised_at": _iso(shipment["promised_at"]),
                "delivered_at": _iso(shipment["delivered_at"])},
        })
    cases = [{
        "id": case.id, "issue_type": case.issue_type, "status": case.status, "summary": case.summary,
        "order_id": case.order_id, "opened_at": _iso(case.opened_at), "resolved_at": _iso(case.resolved_at),
        "contacts": [{"at": _iso(c.started_at), "channel": c.channel, "summary": c.summary,
                      "handled_by": c.handled_by} for c in case.contacts],
        "resolutions": [{"kind": r["option_code"], "detail": r["description"], "status": r["status"],
                         "at": _iso(r["created_at"])} for r in case.resolutions],
        "compensations": [{"kind": c["kind"], "amount": _money(c["amount"]), "reason": c["reason"],
                           "at": _iso(c["created_at"])} for c in case.compensations],
        "follow_ups": [promise_view(f, now) for f in getattr(case, "follow_ups", [])],
    } for case in history.cases]
    return {"customer": {"id": history.customer_id, "name": history.name, "email": history.email,
                         "account_status": history.account_status, "account_status_detail": history.account_status_detail},
            "orders": orders, "cases": cases}


def promise_state(follow_up: Dict[str, Any], now: datetime) -> str:
    """scheduled (not due yet), overdue (due, not delivered yet: the job is retrying or was down),
    sent (in the conversation, no answer yet), answered (the customer said fixed or not), with_agent
    (due while a person had the conversation: shown to them instead)."""
    if follow_up.get("outcome") == "agent":
        return "with_agent"
    if follow_up.get("outcome"):
        return "answered"
    if follow_up.get("done"):
        return "sent"
    return "scheduled" if follow_up["due_at"] > now else "overdue"


def promise_view(follow_up: Dict[str, Any], now: datetime) -> Dict[str, Any]:
    """A promised check-in as the console shows it."""
    done = bool(follow_up.get("done"))
    return {"id": follow_up.get("id"), "note": follow_up.get("note") or "", "due_at": _iso(follow_up.get("due_at")),
            "state": promise_state(follow_up, now), "sent_at": _iso(follow_up.get("sent_at")) if done else None,
            "outcome": follow_up.get("outcome"), "attempts": int(follow_up.get("attempts") or 0),
            "conversation_id": follow_up.get("conversation_id")}


def playbook_view(done: Optional[List[str]]) -> List[Dict[str, Any]]:
    done_set = set(done or [])
    return [{"step": step, "done": step in done_set} for step in STEPS]


def frustration_trend(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [{"message_id": m["id"], "score": m["frustration"].get("score"), "level": m["frustration"].get("level")}
            for m in messages if m.get("sender") == "customer" and isinstance(m.get("frustration"), dict)]
