"""Staff display names ("Alice") for usernames ("alice.k"), read from the staff accounts table.

Why: with several gateways, a name learnt when someone logs in on one gateway is unknown to the
others (a customer on gateway A would read "alice.k" from an agent logged in on gateway B), and a
renamed account kept its old name. The accounts table is the one source; this is a short-lived
copy of it so that sending a message never waits on the database:

- all names are loaded at once (a team has tens of accounts), at most once per
  ``gateway.agent_name_cache_seconds`` (env MEND_AGENT_NAME_CACHE_SECONDS, default 30);
- an unknown username (an account created since) reloads them early, at most once per second;
- ``invalidate()`` makes the next lookup reload (the process that renames someone calls it);
- lookups (``get``, ``[]``, ``in``) never touch the database: they read the last copy. Async code
  calls ``await names.fresh(...)`` first, code already in a database worker thread
  ``names.fresh_in(session, ...)``. If ``fresh`` cannot read the database, the last copy (or the
  username) is used and the load is retried later: a name is never worth failing a message for.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Mapping, Optional

from sqlalchemy.exc import SQLAlchemyError

from bot.casedb.models import Account
from bot.casedb.runner import Database
from bot.settings import numbers_for

logger = logging.getLogger(__name__)

MISS_RELOAD_SECONDS = 1.0  # an unknown username reloads the names at most this often
FAILED_RELOAD_SECONDS = 5.0  # after a failed load, the next try waits at least this long


@dataclass
class AgentNameSettings:
    """``gateway.agent_name_cache_seconds`` in the settings file, or env MEND_AGENT_NAME_CACHE_SECONDS."""

    agent_name_cache_seconds: float = 30.0

    @classmethod
    def from_settings(cls) -> "AgentNameSettings":
        return numbers_for(cls, "gateway", env_prefix="MEND_")


def load_all(session: Any) -> Dict[str, str]:
    """Every account's display name by username (disabled ones too: their old messages keep a name)."""
    return {username: name or username
            for username, name in session.query(Account.username, Account.display_name)}


class AgentNames(Mapping[str, str]):
    """A read-only mapping username -> display name, kept fresh from the accounts table."""

    def __init__(self, db: Database, ttl_seconds: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        if ttl_seconds is None:
            ttl_seconds = AgentNameSettings.from_settings().agent_name_cache_seconds
        self.ttl = ttl_seconds
        self._clock = clock
        self._names: Dict[str, str] = {}
        self._expires_at = float("-inf")  # nothing loaded yet
        self._miss_reload_at = float("-inf")
        self._lock: Optional[asyncio.Lock] = None
        self.loads = 0  # how often the table was read (tests, and a hint when profiling)

    # -- the mapping (never touches the database) -------------------------------------------------
    def __getitem__(self, username: str) -> str:
        return self._names[username]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._names))

    def __len__(self) -> int:
        return len(self._names)

    def name_of(self, username: Optional[str]) -> Optional[str]:
        """The display name, or the username itself when there is no account by that name."""
        return self._names.get(username, username) if username else None

    # -- keeping it fresh -------------------------------------------------------------------------
    def invalidate(self) -> None:
        """The next ``fresh``/``fresh_in`` reloads: call it after changing a display name."""
        self._expires_at = float("-inf")
        self._miss_reload_at = float("-inf")

    def noticed(self, username: str, name: str) -> None:
        """A staff member's current name was read from the database (their session): a different
        cached one means it changed, so everything is reloaded on the next lookup."""
        if username in self._names and self._names[username] != name:
            self.invalidate()

    def needs_load(self, *usernames: Optional[str]) -> bool:
        now = self._clock()
        if now >= self._expires_at:
            return True
        return now >= self._miss_reload_at and any(u and u not in self._names for u in usernames)

    def fresh_in(self, session: Any, *usernames: Optional[str]) -> "AgentNames":
        """For code already in a database worker thread: reload in ``session`` if needed.

        A database error propagates: the caller's own work in that session could not go on either."""
        if self.needs_load(*usernames):
            self._loaded(load_all(session))
        return self

    async def fresh(self, *usernames: Optional[str]) -> "AgentNames":
        """Reload (in a worker thread) if the copy is older than the TTL or misses one of ``usernames``.

        Concurrent callers share one load."""
        if not self.needs_load(*usernames):
            return self
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.needs_load(*usernames):
                try:
                    self._loaded(await self.db.run(load_all))
                except SQLAlchemyError as error:
                    self._failed(error)
        return self

    def _loaded(self, names: Dict[str, str]) -> None:
        now = self._clock()
        self._names = names  # replaced whole: readers in other threads see the old or the new copy
        self._expires_at = now + self.ttl
        self._miss_reload_at = now + MISS_RELOAD_SECONDS
        self.loads += 1

    def _failed(self, error: Exception) -> None:
        logger.warning("could not read staff display names (usernames shown meanwhile): %r", error)
        retry = self._clock() + min(self.ttl, FAILED_RELOAD_SECONDS)
        self._expires_at = retry
        self._miss_reload_at = retry
