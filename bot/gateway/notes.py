"""Private notes on a conversation: staff write them for staff; they never reach the customer.

Pure database functions (an open SQLAlchemy session first); the gateway runs them in a worker
thread. Nothing here knows about sockets: a note is only ever published to consoles
(``team_api``), and the widget's history is built from ``chat_messages`` alone.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from sqlalchemy.orm import Session

from bot.casedb.models import Account, ChatConversation, ConversationNote
from bot.gateway.transcript import iso


class NoSuchConversation(LookupError):
    """Notes were asked for (or written on) a conversation that does not exist."""


def note_dict(note: ConversationNote, author_name: Optional[str]) -> Dict[str, Any]:
    """What consoles get of a note: who wrote it (username and display name), when, and the text."""
    return {"id": note.id, "conversation_id": note.conversation_id, "author": note.author,
            "author_name": author_name or note.author, "text": note.text, "created_at": iso(note.created_at)}


def _names(session: Session, usernames: List[str]) -> Dict[str, str]:
    if not usernames:
        return {}
    rows = session.query(Account.username, Account.display_name).filter(Account.username.in_(set(usernames)))
    return {username: name for username, name in rows}


def list_notes(session: Session, conversation_id: str, limit: int = 200) -> List[Dict[str, Any]]:
    """The conversation's newest ``limit`` notes, oldest first (read top to bottom like the transcript)."""
    if session.get(ChatConversation, conversation_id) is None:
        raise NoSuchConversation(conversation_id)
    rows = (session.query(ConversationNote).filter(ConversationNote.conversation_id == conversation_id)
            .order_by(ConversationNote.id.desc()).limit(max(1, limit)).all())
    rows.reverse()
    names = _names(session, [n.author for n in rows])
    return [note_dict(n, names.get(n.author)) for n in rows]


def add_note(session: Session, conversation_id: str, author: str, text: str) -> Dict[str, Any]:
    """Store a note (the caller has checked the text); returns it as consoles see it."""
    if session.get(ChatConversation, conversation_id) is None:
        raise NoSuchConversation(conversation_id)
    note = ConversationNote(conversation_id=conversation_id, author=author, text=text)
    session.add(note)
    session.flush()
    return note_dict(note, _names(session, [author]).get(author))
