"""The gateway's stored chat: idempotent messages, the agents' queue order, one point of contact."""
from __future__ import annotations

from datetime import datetime, timedelta

from bot.casedb.engine import session_scope
from bot.gateway import transcript
from bot.gateway.accounts import authenticate, create_account


def test_a_resent_message_is_stored_once(db_url):
    with session_scope(db_url) as session:
        transcript.open_conversation(session, "w-1", None)
        first, created = transcript.add_message(session, "w-1", "customer", "hello", client_id="c-1")
        again, created_again = transcript.add_message(session, "w-1", "customer", "hello", client_id="c-1")
        assert created and not created_again and again.id == first.id
        assert [m.text for m in transcript.messages(session, "w-1")] == ["hello"]


def test_the_queue_puts_the_angriest_and_longest_waiting_first(db_url):
    now = datetime.utcnow()
    with session_scope(db_url) as session:
        for cid, level, score, waited in (("w-calm", "calm", 0.1, 30), ("w-angry-new", "angry", 0.8, 1),
                                          ("w-annoyed", "annoyed", 0.5, 10), ("w-angry-old", "angry", 0.8, 20),
                                          ("w-bot", "angry", 0.9, 0)):
            transcript.open_conversation(session, cid, None)
            transcript.add_message(session, cid, "customer", f"message in {cid}")
            transcript.update(session, cid, status="bot" if cid == "w-bot" else "waiting", frustration_level=level,
                              frustration_score=score, waiting_since=now - timedelta(minutes=waited))
        queue = transcript.queue(session, "maria", live_minutes=30)
    assert [s["conversation_id"] for s in queue["waiting"]] == ["w-angry-old", "w-angry-new", "w-annoyed", "w-calm"]
    assert [s["conversation_id"] for s in queue["live"]] == ["w-bot"]
    assert queue["waiting"][0]["last_message"] == "message in w-angry-old"


def test_the_returning_customer_is_offered_to_the_agent_who_helped_before(db_url):
    with session_scope(db_url) as session:
        create_account(session, "maria", "a long enough password", "agent", "Maria")
        transcript.open_conversation(session, "w-old", "cust-1002")
        transcript.update(session, "w-old", last_agent="maria", status="closed")
        transcript.open_conversation(session, "w-new", "cust-1002")
        assert transcript.previous_agent(session, "cust-1002", "w-new") == "maria"
        # Seeded contacts name people who have no account here: nobody to route to.
        assert transcript.previous_agent(session, "cust-1001", "w-x") is None
        assert authenticate(session, "maria", "a long enough password").name == "Maria"
        assert authenticate(session, "maria", "wrong") is None
