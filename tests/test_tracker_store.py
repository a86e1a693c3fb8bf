"""The cached SQL tracker store keeps exactly what Rasa's SQL store keeps, on SQLite and PostgreSQL.

Conversations must survive a restart unchanged, a new session must start clean, and a failed
write must not leave the cache claiming events the database does not have.
"""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.tracker_store import CachedSQLTrackerStore
from tests.conftest import POSTGRES_URL

DOMAIN = Domain.load(str(Path(__file__).resolve().parents[1] / "domain.yml"))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Dict[str, Any]]:
    if request.param == "sqlite":
        yield {"dialect": "sqlite", "db": str(tmp_path / "tracker.db")}
        return
    if not POSTGRES_URL:
        pytest.skip("PostgreSQL variant skipped: set MEND_TEST_POSTGRES_URL to run it")
    url = make_url(POSTGRES_URL)
    settings = {"dialect": "postgresql", "host": url.host, "port": url.port or 5432, "db": url.database,
                "username": url.username, "password": url.password}
    store = SQLTrackerStore(DOMAIN, **settings)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM events WHERE sender_id LIKE 'tstore-%'"))
    store.engine.dispose()
    yield settings


def cached(settings: Dict[str, Any], **extra: Any) -> CachedSQLTrackerStore:
    return CachedSQLTrackerStore(DOMAIN, **settings, **extra)


def plain(settings: Dict[str, Any]) -> SQLTrackerStore:
    return SQLTrackerStore(DOMAIN, **settings)


def events_of(store: Any, sender: str) -> List[Dict[str, Any]]:
    tracker = run(store.retrieve(sender))
    return [event.as_dict() for event in tracker.events] if tracker else []


def say(store: Any, sender: str, text_: str, reply: str, **slots: Any) -> DialogueStateTracker:
    tracker = run(store.get_or_create_tracker(sender))
    tracker.update(UserUttered(text_, {"name": "complain_delivery", "confidence": 0.9}))
    for name, value in slots.items():
        tracker.update(SlotSet(name, value))
    tracker.update(BotUttered(reply))
    tracker.update(ActionExecuted("action_listen"))
    run(store.save(tracker))
    return tracker


def test_conversation_reads_back_the_same_as_rasas_own_sql_store(store_settings):
    store = cached(store_settings)
    say(store, "tstore-1", "where is my order", "Let me look.", frustration_level="annoyed")
    say(store, "tstore-1", "WHERE IS IT", "I'm sorry.", frustration_level="angry")
    said = events_of(store, "tstore-1")
    assert [e["event"] for e in said].count("user") == 2
    assert events_of(plain(store_settings), "tstore-1") == said  # what is on disk
    restarted = cached(store_settings)
    assert events_of(restarted, "tstore-1") == said
    assert run(restarted.retrieve("tstore-1")).get_slot("frustration_level") == "angry"


def test_a_new_session_starts_clean_and_old_sessions_stay_stored(store_settings):
    store = cached(store_settings)
    say(store, "tstore-2", "charged twice", "Sorry.", issue_type="billing")
    tracker = run(store.retrieve("tstore-2"))
    tracker.update(ActionExecuted("action_session_start"))
    tracker.update(SessionStarted())
    tracker.update(ActionExecuted("action_listen"))
    run(store.save(tracker))
    say(store, "tstore-2", "hello again", "Hi.")

    current = events_of(store, "tstore-2")
    assert current == events_of(plain(store_settings), "tstore-2")
    assert [e["text"] for e in current if e["event"] == "user"] == ["hello again"]
    assert run(store.retrieve("tstore-2")).get_slot("issue_type") is None
    full = run(cached(store_settings).retrieve_full_tracker("tstore-2"))
    assert [e.text for e in full.events if isinstance(e, UserUttered)] == ["charged twice", "hello again"]


def test_many_conversations_beyond_the_cache_read_back_correctly(store_settings):
    store = cached(store_settings, cached_conversations=2)
    for index in range(5):
        say(store, f"tstore-lru-{index}", f"message {index}", "ok")
    for index in range(5):
        say(store, f"tstore-lru-{index}", f"second {index}", "ok")
    other = plain(store_settings)
    for index in range(5):
        texts = [e["text"] for e in events_of(store, f"tstore-lru-{index}") if e["event"] == "user"]
        assert texts == [f"message {index}", f"second {index}"]
        assert events_of(other, f"tstore-lru-{index}") == events_of(store, f"tstore-lru-{index}")


def test_a_failed_write_is_not_remembered(tmp_path):
    path = tmp_path / "tracker.db"
    store = cached({"dialect": "sqlite", "db": str(path)})
    say(store, "tstore-fail", "first", "ok")
    blocker = sqlite3.connect(path, timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database: the next save fails
    try:
        with pytest.raises(Exception):
            say_with_timeout(store, "tstore-fail", "second")
    finally:
        blocker.rollback()
        blocker.close()
    assert [e["text"] for e in events_of(store, "tstore-fail") if e["event"] == "user"] == ["first"]
    say(store, "tstore-fail", "third", "ok")
    texts = [e["text"] for e in events_of(plain({"dialect": "sqlite", "db": str(path)}), "tstore-fail")
             if e["event"] == "user"]
    assert texts == ["first", "third"]


def say_with_timeout(store: CachedSQLTrackerStore, sender: str, text_: str) -> None:
    with store.engine.connect() as connection:  # the store keeps this connection for its thread
        connection.exec_driver_sql("PRAGMA busy_timeout=0")  # fail at once instead of waiting 5 s
    say(store, sender, text_, "ok")


def test_a_scratch_conversation_is_replaced_whole_and_removed_with_no_events(store_settings):
    """The trainer's replays and the suggestion previews write scratch conversations with PUT (replace)."""
    for store in (cached(store_settings), cached(store_settings, cached_conversations=0)):
        sender = "replay-tstore-" + str(store.cache_size)
        long = DialogueStateTracker.from_events(sender, [ActionExecuted("action_listen"), UserUttered("one"),
                                                         BotUttered("first"), UserUttered("two")], DOMAIN.slots)
        run(store.save(long))
        short = DialogueStateTracker.from_events(sender, [ActionExecuted("action_listen"), UserUttered("other")],
                                                 DOMAIN.slots)
        run(store.save(short))
        texts = [e.get("text") for e in events_of(plain(store_settings), sender)]
        assert texts == [None, "other"]  # what is on disk: the replacement, not the old events plus a tail
        assert [e.get("text") for e in events_of(store, sender)] == [None, "other"]
        run(store.save(DialogueStateTracker.from_events(sender, [], DOMAIN.slots)))
        assert events_of(plain(store_settings), sender) == []
        assert run(store.retrieve(sender)) is None


def test_a_real_conversation_is_never_replaced_by_a_shorter_save(store_settings):
    store = cached(store_settings)
    say(store, "tstore-keep", "where is my order", "Let me look.")
    run(store.save(DialogueStateTracker.from_events("tstore-keep", [], DOMAIN.slots)))
    assert [e["event"] for e in events_of(plain(store_settings), "tstore-keep")].count("user") == 1
