"""Replies agents sent, kept once with their case's facts turned back into placeholders, so a later
customer message of the same meaning can be offered the same answer, filled with its own case."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any, Dict, List, Optional

from sqlalchemy.orm import Session

from bot.assist.facts import Facts
from bot.casedb.models import LearnedReply

MIN_CHARS, MAX_CHARS = 15, 1000
# Facts turned back into placeholders; short values ("2") would match inside other words.
TEMPLATED = ("first_name", "agent_name", "order_id", "case_id", "item", "carrier", "tracking", "promised",
             "resolution", "resolution_date", "refund_due", "next_contact", "compensation_amount", "order_total")
# What must not travel from one customer's conversation to another's.
ADDRESSES = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|https?://|www\.", re.IGNORECASE)
NUMBERS = re.compile(r"\d{4,}|\b[A-Z]{1,4}-?\d{3,}\b")


def templatize(text: str, facts: Facts) -> str:
    values = facts.placeholders()
    pairs = sorted(((values[k], k) for k in TEMPLATED if len(values.get(k) or "") >= 3), key=lambda p: -len(p[0]))
    template = text.replace("{", "(").replace("}", ")")
    for value, name in pairs:
        template = re.sub(r"(?<!\w)" + re.escape(value) + r"(?!\w)", "{" + name + "}", template, flags=re.IGNORECASE)
    return template


def template_key(template: str) -> str:
    return hashlib.sha256(re.sub(r"\s+", " ", template.strip().lower()).encode("utf-8")).hexdigest()


def remember(session: Session, text: str, answered: str, facts: Facts, issue_type: Optional[str],
             agent: Optional[str]) -> Optional[LearnedReply]:
    """Keep an agent's reply for later suggestions; None when it is too short, too long or private."""
    text = (text or "").strip()
    if not MIN_CHARS <= len(text) <= MAX_CHARS or not (answered or "").strip():
        return None
    if ADDRESSES.search(text):
        return None  # an email address or a link is this customer's
    template = templatize(text, facts)
    if NUMBERS.search(template):
        return None  # a number or a reference of this customer's that no placeholder covers
    key = template_key(template)
    row = session.query(LearnedReply).filter(LearnedReply.template_key == key).one_or_none()
    if row is None:
        row = LearnedReply(template=template, template_key=key, answered=answered.strip()[:MAX_CHARS],
                           issue_type=issue_type, times_sent=0)
        session.add(row)
    row.times_sent = (row.times_sent or 0) + 1
    row.last_agent, row.last_sent_at = agent, datetime.utcnow()
    session.flush()
    return row


def candidates(session: Session, issue_type: Optional[str], limit: int = 200) -> List[Dict[str, Any]]:
    """The most used learned replies, this issue type's first."""
    rows = (session.query(LearnedReply)
            .order_by((LearnedReply.issue_type == issue_type).desc(), LearnedReply.times_sent.desc(),
                      LearnedReply.last_sent_at.desc())
            .limit(limit).all())
    return [{"id": r.id, "template": r.template, "answered": r.answered, "times_sent": r.times_sent} for r in rows]
