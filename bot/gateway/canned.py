"""Canned replies: the team's ready answers, validated, stored in the case database, and filled
with the open case's facts ({first_name}, {order_id}, ...) when an agent inserts one.

Every function that touches the database takes an open SQLAlchemy session (``Database.run``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.casedb.models import CannedReply, Case, ChatConversation, Customer, Order
from bot.gateway.api_errors import ApiError
from bot.settings import numbers_for

SHORTCUT = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# What each placeholder shows when the conversation has no value for it (the agent sees the gap).
PLACEHOLDERS: Dict[str, str] = {
    "first_name": "[first name]", "agent_name": "[agent name]", "order_id": "[order id]", "case_id": "[case id]",
    "item": "[item]", "carrier": "[carrier]", "tracking": "[tracking]", "promised_date": "[promised date]",
}


@dataclass(frozen=True)
class CannedLimits:
    """Sizes a canned reply may have (``gateway.canned`` in the settings, ``MEND_CANNED_*`` env vars)."""
    title_chars: int = 120
    text_chars: int = 2000
    max_replies: int = 500

    @classmethod
    def from_settings(cls) -> "CannedLimits":
        limits = numbers_for(cls, "gateway.canned", env_prefix="MEND_CANNED_")
        # The title column holds 120 characters: a bigger setting is capped there.
        return cls(title_chars=min(120, limits.title_chars), text_chars=limits.text_chars,
                   max_replies=limits.max_replies)


# Seeded once (by shortcut) when the database is set up: useful starting points the admins can edit.
DEFAULT_REPLIES: List[Tuple[str, str, str]] = [
    ("hello", "Greeting", "Hi {first_name}, this is {agent_name} from the support team. I have your "
                          "conversation in front of me, so no need to repeat anything."),
    ("sorry", "Apology", "I'm really sorry, {first_name}. This is not the experience we want you to have, "
                         "and I'll make sure it gets sorted out."),
    ("track", "Tracking details", "Your order {order_id} ({item}) is with {carrier}, tracking number "
                                  "{tracking}. It was promised for {promised_date}."),
    ("case", "Case reference", "For your records, your case number is {case_id}. Anyone on our team can "
                               "pick it up from there."),
    ("bye", "Closing", "Thanks for your patience, {first_name}. If anything else comes up, just reply here "
                       "and we'll pick it up."),
]


def unknown_placeholders(text: str) -> List[str]:
    """Names in {braces} that are not placeholders we can fill, in the order they appear."""
    seen: List[str] = []
    for name in PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS and name not in seen:
            seen.append(name)
    return seen


def validate(body: Dict[str, Any], limits: CannedLimits) -> Dict[str, str]:
    """The shortcut, title and text of a request body, or ApiError(400) saying what is wrong."""
    problems: List[str] = []
    shortcut = body.get("shortcut")
    title = body.get("title")
    text = body.get("text")
    if not isinstance(shortcut, str) or not SHORTCUT.match(shortcut.strip()):
        problems.append("shortcut: 1-40 characters, lowercase letters, digits, '_' or '-', starting with a "
                        "letter or digit")
    if not isinstance(title, str) or not title.strip():
        problems.append("title: required")
    elif len(title.strip()) > limits.title_chars:
        problems.append(f"title: at most {limits.title_chars} characters")
    if not isinstance(text, str) or not text.strip():
        problems.append("text: required")
    elif len(text.strip()) > limits.text_chars:
        problems.append(f"text: at most {limits.text_chars} characters")
    else:
        unknown = unknown_placeholders(text)
        if unknown:
            problems.append("text: unknown placeholder" + ("s " if len(unknown) > 1 else " ") +
                            ", ".join("{" + u[:40] + "}" for u in unknown[:10]) +
                            "; allowed: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS))
    if problems:
        raise ApiError(400, "; ".join(problems))
    return {"shortcut": shortcut.strip(), "title": title.strip(), "text": text.strip()}


def as_dict(reply: CannedReply) -> Dict[str, Any]:
    """What the API answers for a canned reply (the console renders every field as text)."""
    return {"id": reply.id, "shortcut": reply.shortcut, "title": reply.title, "text": reply.text,
            "created_by": reply.created_by,
            "updated_at": reply.updated_at.replace(microsecond=0).isoformat() + "Z" if reply.updated_at else None}


def list_replies(session: Session) -> List[Dict[str, Any]]:
    """Every canned reply, by shortcut: the picker and the admin dialog list them."""
    return [as_dict(r) for r in session.query(CannedReply).order_by(CannedReply.shortcut)]


def _duplicate(shortcut: str) -> ApiError:
    return ApiError(409, f"A canned reply with the shortcut \"/{shortcut}\" already exists; choose another shortcut.")


def create(session: Session, fields: Dict[str, str], author: str, limits: CannedLimits) -> Dict[str, Any]:
    """Store a new canned reply; 409 for a shortcut in use (also when two admins race)."""
    if session.query(CannedReply).filter(CannedReply.shortcut == fields["shortcut"]).first() is not None:
        raise _duplicate(fields["shortcut"])
    if session.query(CannedReply.id).count() >= limits.max_replies:
        raise ApiError(409, f"There are already {limits.max_replies} canned replies; delete some first.")
    reply = CannedReply(created_by=author, updated_at=datetime.utcnow(), **fields)
    try:
        with session.begin_nested():
            session.add(reply)
    except IntegrityError as error:
        raise _duplicate(fields["shortcut"]) from error
    session.flush()
    return as_dict(reply)


def update(session: Session, reply_id: int, fields: Dict[str, str], author: str) -> Dict[str, Any]:
    reply = session.get(CannedReply, reply_id)
    if reply is None:
        raise ApiError(404, "No such canned reply.")
    other = session.query(CannedReply).filter(CannedReply.shortcut == fields["shortcut"],
                                              CannedReply.id != reply_id).first()
    if other is not None:
        raise _duplicate(fields["shortcut"])
    try:
        with session.begin_nested():
            for key, value in fields.items():
                setattr(reply, key, value)
            reply.created_by = reply.created_by or author
            reply.updated_at = datetime.utcnow()
            session.flush()
    except IntegrityError as error:
        raise _duplicate(fields["shortcut"]) from error
    return as_dict(reply)


def delete(session: Session, reply_id: int) -> None:
    """Remove a canned reply; 404 when it is already gone (another admin deleted it)."""
    reply = session.get(CannedReply, reply_id)
    if reply is None:
        raise ApiError(404, "No such canned reply.")
    session.delete(reply)
    session.flush()


def seed_defaults(session: Session) -> int:
    """Add the default replies when there are no canned replies at all (a fresh install), so that an
    admin's deletions stay deleted on the next setup; idempotent. Returns how many were added."""
    taken = {s for (s,) in session.query(CannedReply.shortcut)}
    if taken:
        return 0
    added = 0
    for shortcut, title, text in DEFAULT_REPLIES:
        if shortcut not in taken:
            session.add(CannedReply(shortcut=shortcut, title=title, text=text, created_by="setup",
                                    updated_at=datetime.utcnow()))
            added += 1
    session.flush()
    return added


def _date(value: Optional[datetime]) -> Optional[str]:
    return f"{value:%B} {value.day}, {value.year}" if value else None


def facts(session: Session, conversation_id: str, agent_name: str) -> Optional[Dict[str, Optional[str]]]:
    """The placeholder values of a conversation: its customer, case, the case's order (else the customer's
    latest order) and that order's latest shipment. None for an unknown conversation."""
    conversation = session.get(ChatConversation, conversation_id)
    if conversation is None:
        return None
    customer = session.get(Customer, conversation.customer_id) if conversation.customer_id else None
    case = session.get(Case, conversation.case_id) if conversation.case_id else None
    order = session.get(Order, case.order_id) if case is not None and case.order_id else None
    if order is None and customer is not None:
        order = (session.query(Order).filter(Order.customer_id == customer.id)
                 .order_by(Order.placed_at.desc()).first())
    shipment = order.shipments[-1] if order is not None and order.shipments else None
    first = (customer.name or "").split(" ")[0] if customer is not None else None
    return {
        "first_name": first or None, "agent_name": (agent_name or "").split(" ")[0] or None,
        "order_id": order.id if order else None, "case_id": case.id if case else None,
        "item": order.item if order else None,
        "carrier": shipment.carrier if shipment else None,
        "tracking": shipment.tracking_number if shipment else None,
        "promised_date": _date(shipment.promised_at) if shipment else None,
    }


def fill(text: str, values: Dict[str, Optional[str]]) -> Tuple[str, List[str]]:
    """The text with placeholders replaced; a placeholder without a value stays visible as "[order id]"
    and is listed in ``missing`` so the agent completes it before sending."""
    missing: List[str] = []

    def replace(match: "re.Match[str]") -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            return match.group(0)
        value = values.get(name)
        if value:
            return str(value)
        if name not in missing:
            missing.append(name)
        return PLACEHOLDERS[name]

    return PLACEHOLDER.sub(replace, text), missing


def filled(session: Session, conversation_id: str, reply_id: int, agent_name: str) -> Dict[str, Any]:
    """A canned reply filled for one conversation: ``{"id", "shortcut", "title", "text", "missing"}``."""
    reply = session.get(CannedReply, reply_id)
    if reply is None:
        raise ApiError(404, "No such canned reply.")
    values = facts(session, conversation_id, agent_name)
    if values is None:
        raise ApiError(404, "No such conversation.")
    text, missing = fill(reply.text, values)
    return {"id": reply.id, "shortcut": reply.shortcut, "title": reply.title, "text": text, "missing": missing}
