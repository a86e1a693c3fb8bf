"""Server-side staff sessions: the cookie carries only a random id, the row decides.

Logout revokes the row, so a copied cookie stops working at once, in every gateway
process and after restarts; an expired or revoked row, or a disabled account, is no session.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy.orm import Session

from bot.casedb.models import Account, StaffSession
from bot.gateway.accounts import Staff

ID_BYTES = 32
KEEP_EXPIRED_DAYS = 7


def open_session(session: Session, username: str, hours: float, client: Optional[str] = None) -> str:
    now = datetime.utcnow()
    # Rows long expired are only history: drop them as new sessions come in.
    session.query(StaffSession).filter(StaffSession.expires_at < now - timedelta(days=KEEP_EXPIRED_DAYS)) \
        .delete(synchronize_session=False)
    session_id = secrets.token_urlsafe(ID_BYTES)
    session.add(StaffSession(id=session_id, username=username, client=(client or None) and client[:64],
                             created_at=now, expires_at=now + timedelta(hours=hours)))
    session.flush()
    return session_id


def staff_for(session: Session, session_id: Optional[str]) -> Optional[Staff]:
    """The staff member of a live session, or None (unknown, expired, revoked, account disabled)."""
    if not isinstance(session_id, str) or not session_id or len(session_id) > 64:
        return None
    row = (session.query(StaffSession, Account)
           .join(Account, Account.username == StaffSession.username)
           .filter(StaffSession.id == session_id, StaffSession.revoked_at.is_(None),
                   StaffSession.expires_at > datetime.utcnow(), Account.disabled.is_(False))
           .first())
    if row is None:
        return None
    account = row[1]
    return Staff(account.username, account.display_name, account.role)


def revoke(session: Session, session_id: Optional[str]) -> bool:
    if not isinstance(session_id, str) or not session_id:
        return False
    row = session.get(StaffSession, session_id[:64])
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = datetime.utcnow()
    session.flush()
    return True


def revoke_all(session: Session, username: str) -> int:
    """Every open session of one account (a password change, a disabled account)."""
    now = datetime.utcnow()
    return (session.query(StaffSession)
            .filter(StaffSession.username == username, StaffSession.revoked_at.is_(None))
            .update({"revoked_at": now}, synchronize_session=False))
