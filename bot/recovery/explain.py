"""Acknowledgements and explanations written from case facts, so the customer never re-explains."""
from __future__ import annotations

from datetime import datetime
from typing import Optional

from bot.recovery.situation import Situation

ISSUE_NOUNS = {
    "delivery": "a delivery problem",
    "billing": "a billing problem",
    "product": "a problem with a product",
    "account": "a problem with your account",
    "technical": "a problem with our website or app",
    "service": "how our support has treated you",
    "other": "your request",
}


def when(moment: Optional[datetime], now: Optional[datetime] = None) -> str:
    """Human dates: 'today', 'yesterday', '3 days ago (Nov 22)'."""
    if moment is None:
        return "recently"
    now = now or datetime.utcnow()
    days = (now.date() - moment.date()).days
    label = moment.strftime("%b %d").replace(" 0", " ")
    if days <= 0:
        return "today"
    if days == 1:
        return f"yesterday ({label})"
    if days < 0:
        return label
    return f"{days} days ago ({label})"


def money(amount, currency: str = "USD") -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£"}.get(currency, currency + " ")
    return f"{symbol}{amount:.2f}"


def acknowledgement(situation: Situation, now: Optional[datetime] = None) -> str:
    name = situation.history.first_name
    issue = ISSUE_NOUNS.get(situation.issue_type, "your request")
    order = situation.order
    about = f"order {order.id} ({order.item})" if order else issue
    if situation.reopened and situation.case is not None:
        first_fix = situation.case.resolutions[-1]["description"] if situation.case.resolutions else "a fix"
        return (f"Thanks, {name}. I can see case {situation.case.id} about {about}: "
                f"{situation.case.summary.rstrip('.')}. It was closed {when(situation.case.resolved_at, now)} "
                f"after this: {first_fix.rstrip('.')}. No need to explain again.")
    if situation.earlier_contacts:
        contacts = situation.earlier_contacts
        last = contacts[-1]
        times = "once" if len(contacts) == 1 else f"{len(contacts)} times"
        return (f"Thanks, {name}. I can see you've contacted us {times} about {about}, case {situation.case.id}, "
                f"most recently {when(last.started_at, now)} by {last.channel}. No need to explain again: "
                "I have the history here.")
    if order is not None:
        return f"Thanks, {name}. I understand this is {issue}, and I can see {about} on your account."
    return f"Thanks, {name}. I understand this is {issue}."


def explanation(situation: Situation, now: Optional[datetime] = None) -> str:
    """What happened and why, from the facts on file, and what the broken promises were."""
    order = situation.order
    history = situation.history
    parts = []
    if situation.issue_type == "delivery" and order is not None and order.shipments:
        shipment = order.shipments[-1]
        parts.append(f"Your order {order.id} ({order.item}) shipped {when(shipment['shipped_at'], now)} with "
                     f"{shipment['carrier']} (tracking {shipment['tracking_number']})")
        if shipment.get("promised_at") and not shipment.get("delivered_at"):
            parts[-1] += f" and was promised for {when(shipment['promised_at'], now)}"
        parts[-1] += "."
        if shipment.get("status_detail"):
            parts.append(f"The carrier's latest status: {shipment['status_detail']}.")
        elif shipment.get("delivered_at"):
            parts.append(f"The carrier marked it delivered {when(shipment['delivered_at'], now)}.")
    elif situation.issue_type == "billing" and order is not None and order.payments:
        captured = [p for p in order.payments if p.get("status") == "captured"]
        if len(captured) > 1 and len({p["amount"] for p in captured}) < len(captured):
            parts.append(f"I can see {len(captured)} charges of {money(captured[0]['amount'], order.currency)} for "
                         f"order {order.id} {when(captured[0]['charged_at'], now)}. The order cost "
                         f"{money(order.total, order.currency)}, so one of those charges is a duplicate.")
        else:
            parts.append(f"Order {order.id} was charged {money(order.total, order.currency)} "
                         f"{when(captured[0]['charged_at'] if captured else order.placed_at, now)}.")
    elif situation.issue_type == "product" and order is not None:
        if situation.reopened:
            parts.append(f"So the replacement {order.item} has the same fault as the first one. "
                         "That is a repeat failure on our side, not something you did.")
        else:
            parts.append(f"I have your order {order.id}: {order.item}, delivered "
                         f"{when(next((s['delivered_at'] for s in order.shipments if s.get('delivered_at')), order.placed_at), now)}.")
    elif situation.issue_type == "account":
        if history.account_status == "locked":
            detail = history.account_status_detail or "locked after several failed sign-in attempts"
            parts.append(f"Your account was {detail}. That is an automatic safety lock; "
                         "your orders and data are safe.")
        else:
            parts.append("Your account itself is active on our side.")
    elif situation.issue_type == "technical":
        parts.append("Errors like this are logged for our engineers; nothing you did caused it.")
    elif situation.issue_type == "service":
        parts.append("You should not have had to chase us, and I will make sure this is handled now.")
    # Promises are made by people: name the latest one a colleague made, and that it was broken. Mend's own
    # chat records ("Chat handled by maria.", "Chat handed to a person: ...") are logs, not promises.
    promises = [] if situation.reopened else [c for c in situation.earlier_contacts
                                              if c.handled_by != "bot" and not c.summary.startswith("Chat ")]
    for contact in promises[-1:]:
        parts.append(f"When you contacted us {when(contact.started_at, now)} by {contact.channel}, this is what "
                     f"happened: {contact.summary.rstrip('.')}. That promise was not kept, and I'm sorry.")
    return " ".join(parts)


def at_time(moment: datetime) -> str:
    """A moment the customer can hold us to: 'Dec 3, 16:20 UTC'."""
    return f"{moment.strftime('%b')} {moment.day}, {moment.strftime('%H:%M')} UTC"


RESOLUTION_STATES = {"in_progress": "in progress", "done": "done", "cancelled": "cancelled", "failed": "failed"}


def resolution_status(case_id: str, title: str, promise: str, status: str, chosen_at: datetime,
                      update_by: Optional[datetime], check_in_at: Optional[datetime], credit: str = "",
                      now: Optional[datetime] = None) -> str:
    """What a case's agreed resolution is, how far it got, and what happens next."""
    now = now or datetime.utcnow()
    parts = [f"Case {case_id} already has a resolution: \"{title}\", chosen {when(chosen_at, now)}, "
             f"status: {RESOLUTION_STATES.get(status, status)}. {promise.rstrip('.')}."]
    if credit:
        parts.append(f"{credit[0].upper()}{credit[1:]} stays on your account.")
    check_in = check_in_at is not None and check_in_at > now
    if status == "in_progress" and update_by is not None:
        if update_by > now and check_in and abs((check_in_at - update_by).total_seconds()) < 60:
            parts.append(f"You'll hear from us by {at_time(update_by)}, when I'll check back here.")
            check_in = False
        elif update_by > now:
            parts.append(f"You'll hear from us by {at_time(update_by)}.")
        else:
            parts.append(f"We promised you an update by {at_time(update_by)}, and that is overdue: I'm sorry.")
    if check_in:
        parts.append(f"I'll check back here on {at_time(check_in_at)}.")
    parts.append(f"Your reference is {case_id}.")
    return " ".join(parts)
