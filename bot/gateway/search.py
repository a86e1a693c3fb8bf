"""Finding a conversation from what an agent has at hand: a name, an email, an order, a case or a chat id.

Case-insensitive substring matches with bound parameters; the user's ``%`` and ``_`` are escaped,
so they match themselves and never "everything". Results have the queue's summary shape, so the
console renders them like queue items.
"""
from __future__ import annotations

from typing import Any, Dict, List

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bot.casedb.models import Case, CaseContact, ChatConversation, ChatMessage, Customer, Order
from bot.gateway import transcript

ESCAPE = "\\"


def like_pattern(query: str) -> str:
    """``%query%`` with LIKE's wildcards (and the escape character itself) taken literally."""
    escaped = query.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def search_conversations(session: Session, query: str, limit: int = 20) -> Dict[str, Any]:
    """Conversations (with at least one message) matching ``query``, most recently active first.

    Matches the conversation id, its case id, and every conversation of a customer whose name,
    email or id matches, or who has an order or case with a matching id (the case's contacts
    name the conversations that handled it too).
    """
    pattern = like_pattern(query)

    def has(column: Any) -> Any:
        return column.ilike(pattern, escape=ESCAPE)

    customers = select(Customer.id).where(or_(has(Customer.name), has(Customer.email), has(Customer.id)))
    by_order = select(Order.customer_id).where(has(Order.id))
    by_case = select(Case.customer_id).where(has(Case.id))
    contacts = select(CaseContact.conversation_id).where(has(CaseContact.case_id))
    has_messages = session.query(ChatMessage.id).filter(ChatMessage.conversation_id == ChatConversation.id).exists()
    rows = (session.query(ChatConversation)
            .filter(or_(has(ChatConversation.id), has(ChatConversation.case_id),
                        ChatConversation.customer_id.in_(customers), ChatConversation.customer_id.in_(by_order),
                        ChatConversation.customer_id.in_(by_case), ChatConversation.id.in_(contacts)),
                    has_messages)
            .order_by(ChatConversation.last_activity.desc(), ChatConversation.id)
            .limit(limit + 1).all())
    results: List[Dict[str, Any]] = transcript.summarize_many(session, list(rows[:limit]))
    return {"query": query, "results": results, "truncated": len(rows) > limit}
