"""Who is talking: customer tokens signed by the host website, and widget resume tokens.

The host website signs a short-lived HS256 JWT naming the customer (``sub``) with the
shared secret; the gateway checks it and only then passes ``customer_id`` to Rasa.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Optional

import jwt

ALGORITHM = "HS256"


class TokenError(Exception):
    """A token that must be refused; ``code`` is what the widget is told."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def sign_customer_token(customer_id: str, secret: str, minutes: int = 15, now: Optional[datetime] = None) -> str:
    """What the host website does after its own login (the demo shop uses it)."""
    now = now or datetime.now(timezone.utc)
    return jwt.encode({"sub": customer_id, "iat": now, "exp": now + timedelta(minutes=minutes)}, secret, algorithm=ALGORITHM)


def verify_customer_token(token: str, secret: str, max_minutes: int) -> str:
    """The customer id the token names, or TokenError with a reason a person can act on."""
    if not isinstance(token, str) or len(token) > 4096:
        raise TokenError("token_invalid", "The sign-in token is not valid. Please reload the page.")
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "iat"]})
    except jwt.ExpiredSignatureError as error:
        raise TokenError("token_expired", "Your session has expired. Please reload the page.") from error
    except jwt.PyJWTError as error:
        raise TokenError("token_invalid", "The sign-in token is not valid. Please reload the page.") from error
    if claims["exp"] - claims["iat"] > max_minutes * 60:
        raise TokenError("token_invalid", "The sign-in token lives too long; the website must issue short-lived tokens.")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > 40:
        raise TokenError("token_invalid", "The sign-in token does not name a customer.")
    return subject.strip()


def new_conversation_id() -> str:
    return "w-" + secrets.token_hex(16)


def sign_resume_token(conversation_id: str, customer_id: Optional[str], secret: str, days: int) -> str:
    """Lets a widget (same browser) come back to its conversation, and nobody else."""
    now = datetime.now(timezone.utc)
    return jwt.encode({"cid": conversation_id, "cus": customer_id, "typ": "resume", "iat": now,
                       "exp": now + timedelta(days=days)}, secret, algorithm=ALGORITHM)


def sign_verified_guest_token(conversation_id: str, customer_id: str, secret: str, hours: float) -> str:
    """A resume token for a guest who proved who they are in the chat (email and order number).

    It names the verified customer and lives only ``hours``: within it, this browser keeps the
    conversation across reloads; after it, or for any other customer, the conversation stays private.
    """
    now = datetime.now(timezone.utc)
    return jwt.encode({"cid": conversation_id, "cus": customer_id, "typ": "resume", "via": "chat", "iat": now,
                       "exp": now + timedelta(hours=hours)}, secret, algorithm=ALGORITHM)


def guest_may_resume(claims: Optional[dict], owner: Optional[str]) -> bool:
    """True when an (unexpired, checked) resume token was issued to a guest verified in the chat as ``owner``."""
    return bool(claims and owner and claims.get("via") == "chat" and claims.get("cus") == owner)


def read_resume_token(token: Optional[str], secret: str) -> Optional[dict]:
    """The conversation a resume token points to; None when it is missing, stale or forged."""
    if not token or not isinstance(token, str) or len(token) > 4096:
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["cid", "exp"]})
    except jwt.PyJWTError:
        return None
    return claims if claims.get("typ") == "resume" else None
