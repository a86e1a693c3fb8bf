"""What became of each suggestion an agent was shown: sent as is, sent edited (with the edit distance),
or ignored. Stored in the database so every gateway process writes to one record, for the insights."""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence

from rapidfuzz.distance import Levenshtein
from sqlalchemy import func
from sqlalchemy.orm import Session

from bot.assist.ranker import normalized
from bot.casedb.models import SuggestionEvent


def _open(session: Session, conversation_id: str) -> List[SuggestionEvent]:
    return (session.query(SuggestionEvent)
            .filter(SuggestionEvent.conversation_id == conversation_id, SuggestionEvent.outcome == "shown")
            .order_by(SuggestionEvent.rank).all())


def record_shown(session: Session, conversation_id: str, suggestions: Sequence[Dict[str, Any]]) -> None:
    """Give each suggestion an ``id`` the console sends back; the set it replaces was ignored. The same
    set shown again (another console, a reload) keeps its ids."""
    current = _open(session, conversation_id)
    if current and [e.text for e in current] == [s["text"] for s in suggestions]:
        for event, suggestion in zip(current, suggestions):
            suggestion["id"] = event.id
        return
    now = datetime.utcnow()
    for event in current:
        event.outcome, event.decided_at = "ignored", now
    batch = uuid.uuid4().hex
    for rank, suggestion in enumerate(suggestions, start=1):
        event = SuggestionEvent(conversation_id=conversation_id, batch=batch, rank=rank, kind=suggestion.get("kind"),
                                source=suggestion.get("source"), action=suggestion.get("action"),
                                text=suggestion["text"], shown_at=now)
        session.add(event)
        session.flush()
        suggestion["id"] = event.id


def shown_suggestion(session: Session, conversation_id: str, suggestion_id: Any) -> Optional[SuggestionEvent]:
    """The suggestion the agent started from, if it was shown in this conversation and not sent yet. A set
    replaced by a newer one (the customer wrote again meanwhile) still counts: the agent was reading it."""
    try:
        key = int(suggestion_id)
    except (TypeError, ValueError):
        return None
    event = session.get(SuggestionEvent, key)
    if event is None or event.conversation_id != conversation_id or event.outcome not in ("shown", "ignored"):
        return None
    return event


def record_sent(session: Session, conversation_id: str, agent: str, sent_text: str,
                suggestion_id: Any = None) -> Optional[SuggestionEvent]:
    """The agent sent a reply: the suggestion it came from is sent as is or edited; the rest ignored."""
    now = datetime.utcnow()
    chosen = shown_suggestion(session, conversation_id, suggestion_id)
    if chosen is not None:
        same = normalized(chosen.text) == normalized(sent_text)
        chosen.outcome = "as_is" if same else "edited"
        chosen.edit_distance = 0 if same else Levenshtein.distance(chosen.text, sent_text)
        chosen.agent, chosen.sent_text, chosen.decided_at = agent, sent_text, now
    for event in _open(session, conversation_id):
        event.outcome, event.decided_at = "ignored", now
    return chosen


def report(session: Session) -> Dict[str, Any]:
    """Counts by outcome, source and kind, and the mean edit distance of edited suggestions."""
    rows = (session.query(SuggestionEvent.source, SuggestionEvent.kind, SuggestionEvent.outcome, func.count(),
                          func.avg(SuggestionEvent.edit_distance))
            .group_by(SuggestionEvent.source, SuggestionEvent.kind, SuggestionEvent.outcome).all())
    totals: Dict[str, int] = {}
    by_kind: Dict[str, Dict[str, int]] = {}
    edited_distance: List[float] = []
    for source, kind, outcome, count, mean in rows:
        totals[outcome] = totals.get(outcome, 0) + count
        key = f"{source}:{kind}"
        by_kind.setdefault(key, {})[outcome] = count
        if outcome == "edited" and mean is not None:
            edited_distance += [float(mean)] * count
    return {"totals": totals, "by_source_kind": by_kind,
            "mean_edit_distance": round(sum(edited_distance) / len(edited_distance), 1) if edited_distance else None}
