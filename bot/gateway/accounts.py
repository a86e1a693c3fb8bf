"""Staff accounts: argon2 password hashes in the case database, roles agent, trainer, admin."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.orm import Session

from bot.casedb.models import Account, StaffSession
from bot.gateway.throttle import normalize as normalize_username  # " Maria", "ＭＡＲＩＡ": one account

ROLES = ("agent", "trainer", "admin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Verifying an unknown user costs the same as a known one, so timing does not reveal usernames.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class Staff:
    username: str
    name: str
    role: str

    def can(self, role: str) -> bool:
        """Admins can do everything; trainers and agents their own pages."""
        return self.role == "admin" or self.role == role

    def as_dict(self) -> dict:
        return {"username": self.username, "name": self.name, "role": self.role}


def create_account(session: Session, username: str, password: str, role: str = "agent",
                   display_name: Optional[str] = None) -> Staff:
    username = normalize_username(username)
    if not USERNAME.match(username):
        raise AccountError("username: 2-40 characters, lowercase letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"password must have at least {MIN_PASSWORD} characters")
    if session.query(Account).filter(Account.username == username).first() is not None:
        raise AccountError(f"account {username!r} already exists")
    name = (display_name or username).strip()[:200] or username
    session.add(Account(username=username, display_name=name, password_hash=_hasher.hash(password), role=role))
    session.flush()
    return Staff(username, name, role)


def set_password(session: Session, username: str, password: str) -> None:
    account = session.query(Account).filter(Account.username == normalize_username(username)).first()
    if account is None:
        raise AccountError(f"no account {username!r}")
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"password must have at least {MIN_PASSWORD} characters")
    account.password_hash = _hasher.hash(password)
    # A new password ends every open session of the account (someone else may have had the old one).
    (session.query(StaffSession).filter(StaffSession.username == account.username, StaffSession.revoked_at.is_(None))
     .update({"revoked_at": datetime.utcnow()}, synchronize_session=False))
    session.flush()


def authenticate(session: Session, username: str, password: str) -> Optional[Staff]:
    """The staff member, or None for a wrong name or password (indistinguishable to the caller)."""
    account = session.query(Account).filter(Account.username == normalize_username(username)[:80]).first()
    try:
        _hasher.verify(account.password_hash if account else _DUMMY_HASH, (password or "")[:1024])
    except (VerificationError, InvalidHashError):
        return None
    if account is None or account.disabled:
        return None
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
    return Staff(account.username, account.display_name, account.role)


def any_accounts(session: Session) -> bool:
    return session.query(Account.id).first() is not None
