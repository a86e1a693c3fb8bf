"""Abuse limits counted in the case database, so they hold across conversations, processes and restarts.

Nothing here stores a raw address, username or email address: attempts are recorded under
keyed hashes (``throttle_events``: kind, key, time) and counted over a sliding window.
With several gateways sharing Redis, failed staff sign-ins are counted in Redis instead, over the
same windows (``login_windows``): see login_throttle.py.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import random
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Iterable, List, Optional, Sequence, Tuple

from sqlalchemy.orm import Session

from bot.casedb import repository as repo
from bot.settings import section

RETENTION = timedelta(days=2)  # longer than every window; older attempts are pruned now and then
KEY_CHARS = 32

LOGIN_USER, LOGIN_ADDRESS, LOGIN_ANY = "login_user", "login_address", "login_any"
NEW_CONVERSATION = "new_conversation"
VERIFY_EMAIL, VERIFY_ADDRESS = "verify_email", "verify_address"


def normalize(value: str) -> str:
    """What people mean as "the same name": NFKC, trimmed, case-folded (" Maria", "ＭＡＲＩＡ" are "maria")."""
    return unicodedata.normalize("NFKC", value or "").strip().casefold()


def keyed_hash(secret: str, kind: str, value: str) -> str:
    """A short HMAC-SHA256 of ``value``: equal inputs count together, the input cannot be read back."""
    digest = hmac.new(secret.encode(), f"{kind}\x00{value}".encode("utf-8", "surrogatepass"), hashlib.sha256)
    return digest.hexdigest()[:KEY_CHARS]


def client_address(remote: Optional[str], forwarded_for: Optional[str], trusted_proxies: Sequence[str]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy that says who it forwards for.

    X-Forwarded-For is read right to left, skipping trusted proxies, so a client cannot
    choose its own address by sending the header itself.
    """
    address = (remote or "").strip()
    if not forwarded_for or not _trusted(address, trusted_proxies):
        return address or "unknown"
    hops = [hop.strip() for hop in forwarded_for.split(",")[-20:] if hop.strip()]
    for hop in reversed(hops):
        if not _valid_ip(hop):
            break  # garbage in the header: trust nothing further left
        address = hop
        if not _trusted(hop, trusted_proxies):
            break
    return address or "unknown"


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _trusted(address: str, proxies: Iterable[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    for proxy in proxies:
        try:
            if ip in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            continue
    return False


def client_key(secret: str, address: str) -> str:
    """What conversations and throttles store about a client address (never the address itself)."""
    return keyed_hash(secret, "client", address)


def count(session: Session, kind: str, key: str, window: timedelta, now: Optional[datetime] = None) -> int:
    return repo.count_throttle_events(session, kind, key, (now or datetime.utcnow()) - window)


def record(session: Session, kind: str, *keys: Optional[str], now: Optional[datetime] = None) -> None:
    """Count one attempt under each key; now and then forget attempts older than every window."""
    now = now or datetime.utcnow()
    for key in keys:
        if key:
            repo.record_throttle_event(session, kind, key, now)
    if random.random() < 0.01:
        repo.prune_throttle_events(session, now - RETENTION)


# -- staff login ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoginLimits:
    window_minutes: float = 5.0
    per_username: int = 5
    per_address: int = 20
    global_per_minute: int = 60


LOGIN_REFUSED = {
    LOGIN_USER: "Too many failed sign-ins for this username. Wait {minutes} and try again, or ask an admin "
                "to reset your password.",
    LOGIN_ADDRESS: "Too many failed sign-ins from your network. Wait {minutes} and try again.",
    LOGIN_ANY: "Sign-in is paused for a minute: there have been too many failed attempts. Please try again shortly.",
}


def login_windows(user_key: str, address_key: str, limits: LoginLimits) -> List[Tuple[str, str, int, timedelta]]:
    """The counters a login is checked against, as (kind, key, limit, window), in the order their refusal
    is given: per username, per client address, overall. Every store (database, Redis) counts these."""
    window = timedelta(minutes=limits.window_minutes)
    return [(LOGIN_USER, user_key, limits.per_username, window),
            (LOGIN_ADDRESS, address_key, limits.per_address, window),
            (LOGIN_ANY, "*", limits.global_per_minute, timedelta(minutes=1))]


def login_refusal_text(kind: str, limits: LoginLimits) -> str:
    minutes = f"{max(1, round(limits.window_minutes))} minute" + ("s" if round(limits.window_minutes) > 1 else "")
    return LOGIN_REFUSED[kind].format(minutes=minutes)


def refusal_for_counts(counts: Sequence[int], user_key: str, address_key: str, limits: LoginLimits) -> Optional[str]:
    """The refusal for failed attempts counted elsewhere (``counts`` in ``login_windows`` order), or None."""
    for (kind, _key, limit, _span), seen in zip(login_windows(user_key, address_key, limits), counts):
        if seen >= limit:
            return login_refusal_text(kind, limits)
    return None


def login_refusal(session: Session, user_key: str, address_key: str, limits: LoginLimits) -> Optional[str]:
    """Why a login attempt is refused before its password is even checked, or None."""
    for kind, key, limit, span in login_windows(user_key, address_key, limits):
        if count(session, kind, key, span) >= limit:
            return login_refusal_text(kind, limits)
    return None


def login_counts(session: Session, user_key: str, address_key: str, limits: LoginLimits) -> List[int]:
    """The failed attempts the database holds for each of ``login_windows`` (to add to another store's)."""
    return [count(session, kind, key, span) for kind, key, _limit, span in login_windows(user_key, address_key, limits)]


def login_failed(session: Session, user_key: str, address_key: str) -> None:
    now = datetime.utcnow()
    record(session, LOGIN_USER, user_key, now=now)
    record(session, LOGIN_ADDRESS, address_key, now=now)
    record(session, LOGIN_ANY, "*", now=now)


# -- new conversations -----------------------------------------------------------------------------
TOO_MANY_CONVERSATIONS = ("Too many new chats from your network; please wait a few minutes or continue "
                          "your existing chat.")


def may_open_conversation(session: Session, address_key: str, per_hour: int) -> bool:
    """Counts the new conversation when allowed (one query and one insert per new chat)."""
    if count(session, NEW_CONVERSATION, address_key, timedelta(hours=1)) >= per_hour:
        return False
    record(session, NEW_CONVERSATION, address_key)
    return True


# -- identity checks in the chat (email + order number), run by the action server ---------------------
VERIFY_LOCKED = ("I can't check those details right now: there have been too many attempts to match an email "
                 "address and an order number. A person from our team can confirm who you are instead.")


@dataclass(frozen=True)
class VerificationLimits:
    window_minutes: float = 30.0
    per_email: int = 5
    per_address: int = 10


def verification_limits() -> VerificationLimits:
    raw = (section("gateway").get("abuse") or {}).get("verification") or {}
    return VerificationLimits(float(raw.get("window_minutes", 30)), int(raw.get("per_email", 5)),
                              int(raw.get("per_address", 10)))


@lru_cache(maxsize=1)
def _hash_secret() -> str:
    """The key of the email hashes (MEND_THROTTLE_SECRET, else generated into var/secrets.json)."""
    from bot.gateway.config import secret

    return secret("throttle_secret")


def email_key(email: str) -> str:
    return keyed_hash(_hash_secret(), "email", normalize(email))


def message_client_key(metadata: Optional[dict]) -> Optional[str]:
    """The client key the gateway passes with each message (in the tracker): no second copy to look up."""
    claimed = (metadata or {}).get("client_key")
    return claimed[:64] if isinstance(claimed, str) and claimed.strip() else None


def verification_locked(session: Session, email_hash: str, address_key: Optional[str],
                        limits: Optional[VerificationLimits] = None) -> bool:
    """Too many failed checks for this email address, or from this client, within the window."""
    limits = limits or verification_limits()
    window = timedelta(minutes=limits.window_minutes)
    if count(session, VERIFY_EMAIL, email_hash, window) >= limits.per_email:
        return True
    return bool(address_key) and count(session, VERIFY_ADDRESS, address_key, window) >= limits.per_address


def verification_failed(session: Session, email_hash: str, address_key: Optional[str]) -> None:
    now = datetime.utcnow()
    record(session, VERIFY_EMAIL, email_hash, now=now)
    record(session, VERIFY_ADDRESS, address_key, now=now)
