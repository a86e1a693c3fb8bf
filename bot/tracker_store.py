"""Rasa's SQL tracker store with a per-process cache of each conversation's stored events.

Profiles of Mend's Rasa server put about a quarter of its CPU time per message in the SQL
tracker store: reloading the conversation (an ORM query, then JSON decoding of every event)
and, on save, counting the stored events to find the new ones. This store keeps, for the most
recently active conversations, the very rows that query would return (JSON text of the events
since the latest session start), so a message costs one INSERT and no reads.

The cache mirrors the database exactly as long as this process is the only writer, which is
what Rasa's in-memory lock store already requires (one Rasa process). Running several Rasa
processes on one database needs a Redis lock store and ``cached_conversations: 0``.

Scratch conversations (ids starting with ``SCRATCH_PREFIXES``: the gateway's suggestion previews
and the trainer's replays) are written whole on every save: Rasa's ``PUT .../tracker/events``
means "replace", but Rasa's SQL store only ever appends the events beyond those it has stored, so a
shorter replacement changed nothing and the scratch conversations stayed in the store forever.
Replacing one with no events removes it.

On SQLite it also switches the file to write-ahead logging with ``synchronous=NORMAL``: a
commit no longer waits for fsync, and readers (the gateway's replay, ``python -m bot replay``)
do not block the bot. PostgreSQL is left as configured.
"""
from __future__ import annotations

import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Text, Tuple

from rasa.core.brokers.broker import EventBroker
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import create_engine, event as sa_event
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import SingletonThreadPool

from bot import rasa_speedups
from bot import rasa_exactly_once

logger = logging.getLogger(__name__)

rasa_speedups.apply()  # the Rasa server imports this module when it reads endpoints.yml
rasa_exactly_once.apply()  # each customer message logged once, however often a gateway sends it

DEFAULT_CACHED_CONVERSATIONS = 1000
# Conversations the gateway makes to ask the policy about a state (replays, suggestion previews).
SCRATCH_PREFIXES = ("suggest-", "replay-")


def is_scratch(sender_id: str) -> bool:
    return str(sender_id).startswith(SCRATCH_PREFIXES)


@dataclass
class StoredSession:
    """What ``SQLTrackerStore._event_query(..., all sessions=False)`` returns for one sender."""

    session_start: Optional[float]  # timestamp of the latest stored SessionStarted event
    rows: List[Tuple[float, str]] = field(default_factory=list)  # (timestamp, event JSON), by id

    def add(self, timestamp: float, data: str, starts_session: bool) -> None:
        if starts_session and (self.session_start is None or timestamp > self.session_start):
            self.session_start = timestamp
            # The query keeps only the events at or after the latest session start.
            self.rows = [row for row in self.rows if row[0] >= timestamp]
        if self.session_start is None or timestamp >= self.session_start:
            self.rows.append((timestamp, data))


class CachedSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` that remembers what it stored for the latest conversations."""

    def __init__(self, domain: Optional[Domain] = None, dialect: Text = "sqlite", host: Optional[Text] = None,
                 port: Optional[int] = None, db: Text = "rasa.db", username: Optional[Text] = None,
                 password: Optional[Text] = None, event_broker: Optional[EventBroker] = None,
                 login_db: Optional[Text] = None, query: Optional[dict] = None,
                 cached_conversations: int = DEFAULT_CACHED_CONVERSATIONS, **kwargs: Any) -> None:
        super().__init__(domain, dialect, host, port, db, username, password, event_broker, login_db, query,
                         **kwargs)
        self.cache_size = max(0, int(cached_conversations))
        self._sessions: "OrderedDict[str, StoredSession]" = OrderedDict()
        if self.engine.dialect.name == "sqlite":
            self._tune_sqlite()

    def _tune_sqlite(self) -> None:
        # Rasa opens a new SQLite connection per query (NullPool); keep one per thread instead.
        self.engine.dispose()
        self.engine = create_engine(self.engine.url, poolclass=SingletonThreadPool)
        sa_event.listen(self.engine, "connect", _sqlite_relaxed_sync)
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA journal_mode=WAL")  # kept in the file
        self.sessionmaker = sessionmaker(bind=self.engine)

    # -- reading ----------------------------------------------------------------------------------
    async def retrieve(self, sender_id: Text) -> Optional[DialogueStateTracker]:
        if not self.cache_size:
            return await super().retrieve(sender_id)
        stored = self._cached(sender_id)
        if stored is None:
            stored = self._load(sender_id)
        if not stored.rows or not self.domain:
            return None
        events = [json.loads(data) for _, data in stored.rows]
        return DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)

    def _load(self, sender_id: Text) -> StoredSession:
        with self.session_scope() as session:
            query = self._event_query(session, sender_id, fetch_events_from_all_sessions=False)
            rows = query.with_entities(self.SQLEvent.timestamp, self.SQLEvent.type_name, self.SQLEvent.data).all()
        # The latest session start, if there is one, is among these rows (they start with it).
        starts = [row.timestamp for row in rows if row.type_name == SessionStarted.type_name]
        stored = StoredSession(session_start=max(starts) if starts else None,
                               rows=[(row.timestamp, row.data) for row in rows])
        self._remember(sender_id, stored)
        return stored

    # -- writing ----------------------------------------------------------------------------------
    async def save(self, tracker: DialogueStateTracker) -> None:
        if is_scratch(tracker.sender_id):
            return await self._replace(tracker)
        if not self.cache_size:
            return await super().save(tracker)
        await self.stream_events(tracker)
        sender_id = tracker.sender_id
        stored = self._cached(sender_id) or self._load(sender_id)
        new_events = list(tracker.events)[len(stored.rows):]
        if not new_events:
            return
        rows = [self._row(sender_id, event) for event in new_events]
        try:
            with self.engine.begin() as connection:  # one INSERT of all new rows, committed
                connection.execute(self.SQLEvent.__table__.insert(), rows)
        except Exception:
            self._forget(sender_id)  # the database decides what was stored; read it again next time
            raise
        for row in rows:
            stored.add(row["timestamp"], row["data"], row["type_name"] == SessionStarted.type_name)
        logger.debug("Tracker with sender_id '%s' stored to database", sender_id)

    async def _replace(self, tracker: DialogueStateTracker) -> None:
        """A scratch conversation becomes exactly the tracker's events (none: it is removed)."""
        sender_id = tracker.sender_id
        rows = [self._row(sender_id, event) for event in tracker.events]
        stored = self._cached(sender_id)
        if stored is not None and [data for _, data in stored.rows] == [row["data"] for row in rows]:
            return  # a prediction saves what it read: nothing changed
        self._forget(sender_id)  # before the write: if it fails, the next read asks the database
        with self.engine.begin() as connection:
            table = self.SQLEvent.__table__
            connection.execute(table.delete().where(table.c.sender_id == sender_id))
            if rows:
                connection.execute(table.insert(), rows)
        if rows and self.cache_size:
            stored = StoredSession(session_start=None)
            for row in rows:
                stored.add(row["timestamp"], row["data"], row["type_name"] == SessionStarted.type_name)
            self._remember(sender_id, stored)

    @staticmethod
    def _row(sender_id: str, event: Any) -> Dict[str, Any]:
        data = event.as_dict()
        return dict(sender_id=sender_id, type_name=event.type_name, timestamp=data.get("timestamp"),
                    intent_name=((data.get("parse_data") or {}).get("intent") or {}).get("name"),
                    action_name=data.get("name"), data=json.dumps(data))

    # -- the cache --------------------------------------------------------------------------------
    def _cached(self, sender_id: Text) -> Optional[StoredSession]:
        stored = self._sessions.get(sender_id)
        if stored is not None:
            self._sessions.move_to_end(sender_id)
        return stored

    def _remember(self, sender_id: Text, stored: StoredSession) -> None:
        if not self.cache_size:
            return
        self._sessions[sender_id] = stored
        self._sessions.move_to_end(sender_id)
        while len(self._sessions) > self.cache_size:
            self._sessions.popitem(last=False)

    def _forget(self, sender_id: Text) -> None:
        self._sessions.pop(sender_id, None)


def _sqlite_relaxed_sync(connection: Any, _record: Any) -> None:
    # In WAL mode, NORMAL survives application crashes; a power cut may lose the last commits.
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
