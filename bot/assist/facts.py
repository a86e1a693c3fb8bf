"""The facts a reply may state, as flat paths (``case.id``, ``shipment.promised``), from one place.

Suggestions, canned replies and the evaluation all read facts through :class:`Facts`, so a date or an
amount is worked out once, the same way everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Dict, List, Mapping, Optional

from sqlalchemy.orm import Session

from bot.casedb import repository as repo
from bot.settings import section

REFUND_OPTIONS = ("refund",)          # option codes starting with these are refunds
REPLACEMENT_OPTIONS = ("replace", "reship", "upgrade")
CREDIT_OPTIONS = ("credit",)


def _day(value: Any) -> Optional[date]:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value)).date()
    except ValueError:
        return None


def say_date(value: Any) -> Optional[str]:
    """A date as a customer reads it: "Friday 4 December"."""
    day = _day(value)
    return f"{day.strftime('%A')} {day.day} {day.strftime('%B')}" if day else None


def say_money(amount: Any, currency: str = "USD") -> Optional[str]:
    if amount is None or amount == "":
        return None
    try:
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
    except Exception:
        return None
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency or "USD")
    return f"{symbol}{value}" if symbol else f"{value} {currency}"


def say_times(count: Any) -> Optional[str]:
    """How often, as said aloud: "twice", "three times"."""
    try:
        n = int(count)
    except (TypeError, ValueError):
        return None
    words = {1: "once", 2: "twice", 3: "three times", 4: "four times", 5: "five times"}
    return words.get(n, f"{n} times") if n > 0 else None


def say_choices(titles: List[str]) -> Optional[str]:
    """Options a customer can tell apart even when a title has a comma: "A", "B" or "C"."""
    quoted = [f"\u201c{t}\u201d" for t in titles if t]
    if not quoted:
        return None
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def add_business_days(start: date, days: int) -> date:
    current = start
    while days > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            days -= 1
    return current


def resolution_kind(option_code: Optional[str]) -> Optional[str]:
    code = (option_code or "").lower()
    if not code:
        return None
    if code.startswith(REFUND_OPTIONS):
        return "refund"
    if code.startswith(REPLACEMENT_OPTIONS):
        return "replacement"
    if code.startswith(CREDIT_OPTIONS):
        return "credit"
    return "other"


@dataclass
class Facts:
    """What is known of the customer, their order and case, flat: ``values["shipment.promised"]``."""

    values: Dict[str, Any] = field(default_factory=dict)
    options_offered: List[str] = field(default_factory=list)

    def get(self, path: str) -> Any:
        value = self.values.get(path)
        return None if value in ("", []) else value

    @property
    def verified(self) -> bool:
        return bool(self.values.get("customer.verified"))

    @property
    def case_open(self) -> bool:
        return self.get("case.status") not in (None, "resolved", "closed")

    @property
    def case_resolved(self) -> bool:
        return self.get("case.status") in ("resolved", "closed") or self.get("resolution.status") == "done"

    def placeholders(self) -> Dict[str, str]:
        """The values templates may name, already worded for a customer (dates, money)."""
        v = self.values
        currency = v.get("order.currency") or "USD"
        kind = resolution_kind(v.get("resolution.option"))
        created = _day(v.get("resolution.created"))
        refund_days = int(section("assist").get("refund_business_days", 5))
        found = {
            "first_name": v.get("customer.first_name"),
            "agent_name": v.get("agent.name"),
            "order_id": v.get("order.id"),
            "item": v.get("order.item"),
            "order_total": say_money(v.get("order.total"), currency),
            "case_id": v.get("case.id"),
            "contacts": v.get("case.contacts"),
            "contacts_times": say_times(v.get("case.contacts")),
            "carrier": v.get("shipment.carrier"),
            "tracking": v.get("shipment.tracking"),
            "shipment_status": str(v.get("shipment.status") or "").replace("_", " ") or None,
            "promised": say_date(v.get("shipment.promised")),
            "resolution": v.get("resolution.description"),
            "resolution_date": say_date(created),
            "refund_due": say_date(add_business_days(created, refund_days)) if created and kind == "refund" else None,
            "refund_days": str(refund_days),
            "next_contact": say_date(v.get("next_contact")),
            "compensation_amount": say_money(v.get("compensation.amount"), currency),
            "issue_phrase": ISSUE_PHRASES.get(str(v.get("issue_type") or ""), None),
            "options": say_choices([OPTION_TITLES.get(o, o.replace("_", " ")) for o in self.options_offered]),
        }
        return {k: str(val) for k, val in found.items() if val not in (None, "")}


ISSUE_PHRASES = {
    "delivery": "your delivery", "billing": "the charge on your account", "product": "the problem with your item",
    "account": "your account", "technical": "the problem on our site", "service": "how we've handled this so far",
}


def _option_titles() -> Dict[str, str]:
    from bot.recovery.options import CATALOGUE
    return {code: option.title for code, option in CATALOGUE.items()}


OPTION_TITLES = _option_titles()


def facts_from_mapping(situation: Mapping[str, Any]) -> Facts:
    """Facts written out as in tests/suggestion_moments.yml (nested mappings flattened to paths)."""
    values: Dict[str, Any] = {}
    for key, value in (situation or {}).items():
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                values[f"{key}.{sub}"] = inner
        elif not isinstance(value, list):
            values[key] = value
    if "resolution.option" in values and "resolution.kind" not in values:
        values["resolution.kind"] = resolution_kind(values["resolution.option"])
    return Facts(values, [str(o) for o in situation.get("options_offered") or []])


def facts_from_case_db(session: Session, slots: Mapping[str, Any], agent_name: Optional[str] = None,
                       issue_type: Optional[str] = None) -> Facts:
    """Facts of the conversation's customer, order and case, read from the case database."""
    values: Dict[str, Any] = {"agent.name": agent_name, "issue_type": issue_type or slots.get("issue_type")}
    customer_id = slots.get("customer_id")
    history = repo.customer_history(session, str(customer_id)) if customer_id else None
    values["customer.verified"] = bool(history and slots.get("verified"))
    if history is None:
        return Facts(values, [])
    values["customer.first_name"] = history.first_name
    case = history.case(slots.get("case_id")) if slots.get("case_id") else None
    order = history.order(slots.get("order_id") or (case.order_id if case else None))
    if order is not None:
        values.update({"order.id": order.id, "order.item": order.item, "order.total": order.total,
                       "order.currency": order.currency})
        if order.shipments:
            shipment = order.shipments[-1]
            values.update({"shipment.carrier": shipment["carrier"], "shipment.tracking": shipment["tracking_number"],
                           "shipment.status": shipment["status"], "shipment.promised": shipment["promised_at"]})
    if case is not None:
        values.update({"case.id": case.id, "case.status": case.status, "case.contacts": len(case.contacts)})
        active = [r for r in case.resolutions if r["status"] not in ("cancelled", "failed")]
        if active:
            latest = active[-1]
            values.update({"resolution.option": latest["option_code"], "resolution.status": latest["status"],
                           "resolution.created": latest["created_at"], "resolution.description": latest["description"],
                           "resolution.kind": resolution_kind(latest["option_code"])})
        if case.compensations:
            values.update({"compensation.kind": case.compensations[-1]["kind"],
                           "compensation.amount": sum(Decimal(str(c["amount"])) for c in case.compensations)})
        values["next_contact"] = repo.next_follow_up_due(session, case.id)
    offered = [str(o) for o in slots.get("offered_options") or [] if isinstance(o, str)]
    return Facts(values, offered)
