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


def history_view(history: Optional[CustomerHistory]) -> Optional[Dict[str, Any]]:
    """Everything the agent needs so the customer is never asked again."""
    if history is None:
        return None
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
    } for case in history.cases]
    return {"customer": {"id": history.customer_id, "name": history.name, "email": history.email,
                         "account_status": history.account_status, "account_status_detail": history.account_status_detail},
            "orders": orders, "cases": cases}


def playbook_view(done: Optional[List[str]]) -> List[Dict[str, Any]]:
    done_set = set(done or [])
    return [{"step": step, "done": step in done_set} for step in STEPS]


def frustration_trend(messages: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [{"message_id": m["id"], "score": m["frustration"].get("score"), "level": m["frustration"].get("level")}
            for m in messages if m.get("sender") == "customer" and isinstance(m.get("frustration"), dict)]
