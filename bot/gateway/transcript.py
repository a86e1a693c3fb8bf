"""The chat transcript and routing state of widget conversations, in the case database.

Every function takes an open SQLAlchemy session; the gateway runs them in a worker
thread (``Database.run``) so the event loop never waits on the database.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Set, Tuple

from sqlalchemy import func, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.casedb.models import Account, CaseContact, ChatConversation, ChatMessage, Customer
from bot.settings import section

LEVEL_RANK = {"angry": 2, "annoyed": 1, "calm": 0}


def iso(value: Optional[datetime]) -> Optional[str]:
    return value.replace(microsecond=0).isoformat() + "Z" if value else None


def _loads(text: Optional[str], default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def message_dict(message: ChatMessage, agent_names: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    parse = _loads(message.parse, {})
    return {
        "id": message.id, "client_id": message.client_id, "sender": message.sender, "text": message.text,
        "buttons": _loads(message.buttons, []),
        "agent_name": (agent_names or {}).get(message.agent or "", message.agent) if message.agent else None,
        "created_at": iso(message.created_at),
        "frustration": parse.get("frustration"), "issue_type": parse.get("issue_type"),
    }


def get_conversation(session: Session, conversation_id: str) -> Optional[ChatConversation]:
    return session.get(ChatConversation, conversation_id)


def open_conversation(session: Session, conversation_id: str, customer_id: Optional[str],
                      client_key: Optional[str] = None) -> ChatConversation:
    """A new conversation; ``client_key`` is the keyed hash of the opening client's address (limits, folding)."""
    conversation = ChatConversation(id=conversation_id, customer_id=customer_id, status="bot", client_key=client_key)
    session.add(conversation)
    session.flush()
    return conversation


def latest_open_conversation(session: Session, customer_id: str, idle_hours: float) -> Optional[ChatConversation]:
    """A signed-in customer's recent unfinished conversation, whichever browser or device it was on."""
    since = datetime.utcnow() - timedelta(hours=idle_hours)
    return (session.query(ChatConversation)
            .filter(ChatConversation.customer_id == customer_id, ChatConversation.status != "closed",
                    ChatConversation.last_activity >= since)
            .order_by(ChatConversation.last_activity.desc()).first())


def still_open(conversation: Optional[ChatConversation], idle_hours: float) -> bool:
    """A conversation idle for longer than this has ended: the customer starts a new one (history stays)."""
    return conversation is not None and conversation.status != "closed" and \
        conversation.last_activity >= datetime.utcnow() - timedelta(hours=idle_hours)


def customer_exists(session: Session, customer_id: str) -> bool:
    return session.get(Customer, customer_id) is not None


def customer_name(session: Session, customer_id: Optional[str]) -> Optional[str]:
    customer = session.get(Customer, customer_id) if customer_id else None
    return customer.name if customer else None


def add_message(session: Session, conversation_id: str, sender: str, text: str, client_id: Optional[str] = None,
                payload: Optional[str] = None, buttons: Optional[List[Dict[str, str]]] = None,
                agent: Optional[str] = None) -> Tuple[ChatMessage, bool]:
    """Store a message; a resend with the same client id returns the stored one (created=False)."""
    if client_id:
        existing = (session.query(ChatMessage)
                    .filter(ChatMessage.conversation_id == conversation_id, ChatMessage.client_id == client_id).first())
        if existing is not None:
            return existing, False
    message = ChatMessage(conversation_id=conversation_id, sender=sender, text=text, client_id=client_id,
                          payload=payload, agent=agent, buttons=json.dumps(buttons) if buttons else None)
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:  # the same resend raced in from a second socket
        existing = (session.query(ChatMessage)
                    .filter(ChatMessage.conversation_id == conversation_id, ChatMessage.client_id == client_id).one())
        return existing, False
    conversation = session.get(ChatConversation, conversation_id)
    if conversation is not None:
        conversation.last_activity = message.created_at or datetime.utcnow()
    session.flush()
    return message, True


def set_parse(session: Session, message_id: int, parse: Dict[str, Any], delivered: bool) -> None:
    message = session.get(ChatMessage, message_id)
    if message is not None:
        message.parse = json.dumps(parse)
        message.delivered_to_bot = delivered
        session.flush()


def undelivered(session: Session, within_minutes: int = 60) -> List[Tuple[str, int, str, Optional[str]]]:
    """Customer messages stored but never processed (the gateway stopped in between), oldest first."""
    since = datetime.utcnow() - timedelta(minutes=within_minutes)
    rows = (session.query(ChatMessage).join(ChatConversation, ChatConversation.id == ChatMessage.conversation_id)
            .filter(ChatMessage.sender == "customer", ChatMessage.delivered_to_bot.is_(False),
                    ChatMessage.parse.is_(None), ChatMessage.created_at >= since,
                    ChatConversation.status != "closed")
            .order_by(ChatMessage.id).all())
    return [(m.conversation_id, m.id, m.text, m.payload) for m in rows]


def messages(session: Session, conversation_id: str, limit: int = 500) -> List[ChatMessage]:
    rows = (session.query(ChatMessage).filter(ChatMessage.conversation_id == conversation_id)
            .order_by(ChatMessage.id.desc()).limit(limit).all())
    return list(reversed(rows))


def update(session: Session, conversation_id: str, **fields: Any) -> Optional[ChatConversation]:
    conversation = session.get(ChatConversation, conversation_id)
    if conversation is None:
        return None
    for key, value in fields.items():
        if key == "playbook_steps" and not isinstance(value, (str, type(None))):
            value = json.dumps(list(value))
        setattr(conversation, key, value)
    session.flush()
    return conversation


def active_staff(session: Session) -> Set[str]:
    return {name for (name,) in session.query(Account.username).filter(Account.disabled.is_(False))}


def previous_agent(session: Session, customer_id: Optional[str], conversation_id: str,
                   staff: Optional[Set[str]] = None) -> Optional[str]:
    """The agent who last handled this customer (one point of contact), if any. ``staff``: the active
    accounts, when the caller asks for many conversations at once."""
    if not customer_id:
        return None
    staff = active_staff(session) if staff is None else staff
    earlier = (session.query(ChatConversation.last_agent)
               .filter(ChatConversation.customer_id == customer_id, ChatConversation.id != conversation_id,
                       ChatConversation.last_agent.isnot(None))
               .order_by(ChatConversation.last_activity.desc()).first())
    if earlier and earlier[0] in staff:
        return earlier[0]
    contact = (session.query(CaseContact.handled_by)
               .join(CaseContact.case)
               .filter(CaseContact.handled_by.in_(staff))
               .filter_by(customer_id=customer_id)
               .order_by(CaseContact.started_at.desc()).first())
    return contact[0] if contact else None


def summary(conversation: ChatConversation, name: Optional[str], last_text: Optional[str],
            preferred_agent: Optional[str] = None) -> Dict[str, Any]:
    return {
        "conversation_id": conversation.id,
        "customer": {"id": conversation.customer_id, "name": name} if conversation.customer_id else None,
        "status": conversation.status, "issue_type": conversation.issue_type,
        "frustration": {"level": conversation.frustration_level or "calm", "score": conversation.frustration_score or 0.0},
        "waiting_since": iso(conversation.waiting_since), "last_activity": iso(conversation.last_activity),
        "last_message": (last_text or "")[:160], "assigned_agent": conversation.assigned_agent,
        "handoff_reason": conversation.handoff_reason, "preferred_agent": preferred_agent,
        "case_id": conversation.case_id, "playbook_steps": _loads(conversation.playbook_steps, []),
    }


def summarize(session: Session, conversation: ChatConversation) -> Dict[str, Any]:
    return summarize_many(session, [conversation])[0]


def summarize_many(session: Session, conversations: List[ChatConversation]) -> List[Dict[str, Any]]:
    """The summaries of many conversations in a few queries (an agent's queue lists hundreds: one query
    per conversation and per fact made each queue hundreds of queries, every time it changed)."""
    if not conversations:
        return []
    ids = [c.id for c in conversations]
    newest = (session.query(ChatMessage.conversation_id, func.max(ChatMessage.id).label("last_id"))
              .filter(ChatMessage.conversation_id.in_(ids), ChatMessage.sender == "customer")
              .group_by(ChatMessage.conversation_id).subquery())
    last_text = dict(session.query(ChatMessage.conversation_id, ChatMessage.text)
                     .join(newest, ChatMessage.id == newest.c.last_id))
    customers = {c.customer_id for c in conversations if c.customer_id}
    names = dict(session.query(Customer.id, Customer.name).filter(Customer.id.in_(customers))) if customers else {}
    staff = active_staff(session) if any(c.status == "waiting" and c.customer_id for c in conversations) else set()
    return [summary(c, names.get(c.customer_id) if c.customer_id else None, last_text.get(c.id),
                    previous_agent(session, c.customer_id, c.id, staff) if c.status == "waiting" else None)
            for c in conversations]


LIVE_SCAN = 5000      # live conversations looked at for folding (a flood beyond this is still folded, not listed)
FOLD_DETAIL = 50      # folded conversations listed per address when an agent expands the group


def queue(session: Session, agent: str, live_minutes: int, limit: int = 100,
          fold_after: Optional[int] = None) -> Dict[str, List[Dict[str, Any]]]:
    """What an agent's console lists: waiting (most urgent first), theirs, and live bot conversations.

    A flood of guest conversations from one client address must not push the real ones out of
    the live list: beyond ``fold_after`` per address they are folded into ``live_folded``
    (a count per address, with the newest few for when an agent expands the group).
    """
    waiting = session.query(ChatConversation).filter(ChatConversation.status == "waiting").limit(limit).all()
    waiting.sort(key=lambda c: (-LEVEL_RANK.get(c.frustration_level or "calm", 0), -(c.frustration_score or 0.0),
                                c.waiting_since or c.last_activity))
    mine = (session.query(ChatConversation)
            .filter(ChatConversation.status == "agent", ChatConversation.assigned_agent == agent)
            .order_by(ChatConversation.last_activity.desc()).limit(limit).all())
    since = datetime.utcnow() - timedelta(minutes=live_minutes)
    has_messages = session.query(ChatMessage.id).filter(ChatMessage.conversation_id == ChatConversation.id).exists()
    candidates = (session.query(ChatConversation.id, ChatConversation.client_key, ChatConversation.customer_id)
                  .filter(or_(ChatConversation.status == "bot",
                              (ChatConversation.status == "agent") & (ChatConversation.assigned_agent != agent)),
                          ChatConversation.last_activity >= since, has_messages)
                  .order_by(ChatConversation.last_activity.desc()).limit(LIVE_SCAN).all())
    if fold_after is None:
        fold_after = int((section("gateway").get("abuse") or {}).get("live_fold_after", 3))
    shown, folded = fold_floods(candidates, fold_after)
    listed = {c.id: c for c in session.query(ChatConversation).filter(ChatConversation.id.in_(shown[:limit]))}
    live = [listed[i] for i in shown[:limit] if i in listed]
    result = {name: summarize_many(session, rows) for name, rows in
              (("waiting", waiting), ("mine", mine), ("live", live))}
    groups = []
    for key, ids in sorted(folded.items(), key=lambda item: -len(item[1])):
        detail = {c.id: c for c in session.query(ChatConversation).filter(ChatConversation.id.in_(ids[:FOLD_DETAIL]))}
        groups.append({"client": key[:12], "count": len(ids),
                       "conversations": summarize_many(session, [detail[i] for i in ids[:FOLD_DETAIL] if i in detail])})
    result["live_folded"] = groups
    return result


def fold_floods(rows: List[Tuple[str, Optional[str], Optional[str]]], fold_after: int
                ) -> Tuple[List[str], Dict[str, List[str]]]:
    """(ids to list, ids folded per client key), newest first. Only guest conversations fold:
    a signed-in or verified customer's conversation is always listed."""
    shown: List[str] = []
    folded: Dict[str, List[str]] = {}
    per_client: Dict[str, int] = {}
    for conversation_id, client_key, customer_id in rows:
        if client_key and not customer_id:
            per_client[client_key] = per_client.get(client_key, 0) + 1
            if per_client[client_key] > max(0, fold_after):
                folded.setdefault(client_key, []).append(conversation_id)
                continue
        shown.append(conversation_id)
    return shown, folded
