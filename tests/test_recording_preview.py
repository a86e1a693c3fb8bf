"""Previews of custom actions run their turn on a recording repository: the agent sees exactly what the
bot would say, the case database is neither written nor locked, and the writes sending it would make
are listed."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Dict, List, Optional, Tuple

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from bot.casedb import repository as repo
from bot.casedb.engine import get_engine, session_scope
from bot.casedb.models import Base, Case, FollowUp, Resolution
from bot.casedb.recording import RecordingRepository, WriteRefused, recording_session
from bot.gateway.suggestions import preview_turn
from bot.recovery import turns
from bot.recovery.conversation import TurnReply
from bot.recovery.tracker_state import turn_input
from tests.conftest import _reset

DANA = {"customer_id": "cust-1001", "customer_name": "Dana", "verified": True, "case_id": "CASE-501",
        "order_id": "A1001", "issue_type": "delivery", "frustration_level": "annoyed", "frustration_score": 0.5}
CHOOSING = dict(DANA, offered_options=["reship_express", "refund_full"], pending_question="choose_option",
                frustration_level="angry", frustration_score=0.9)
INTENT_ISSUE = {"complain_delivery": "delivery", "complain_billing": "billing", "complain_product": "product"}


def _tracker(slots: Dict[str, Any], text: str, intent: str, entities: Optional[Dict[str, str]] = None,
             failed_turns: int = 0, sender: str = "w-preview") -> Dict[str, Any]:
    latest = {"text": text, "intent": {"name": intent}, "metadata": {},
              "entities": [{"entity": k, "value": v} for k, v in (entities or {}).items()],
              "issue_type": {"name": INTENT_ISSUE.get(intent, "other"), "confidence": 0.9},
              "frustration": {"score": 0.5, "level": "annoyed", "cues": []}}
    failed = [{"event": "user", "text": "blargh", "parse_data": {"intent": {"name": "nlu_fallback"}}}] * failed_turns
    return {"sender_id": sender, "slots": slots, "latest_message": latest,
            "events": failed + [{"event": "user", "text": text, "parse_data": latest}]}


def _resolution(option: str, status: str = "in_progress", days_ago: int = 1) -> Resolution:
    return Resolution(case_id="CASE-501", option_code=option, description=f"{option} for Dana", status=status,
                      created_at=datetime.utcnow() - timedelta(days=days_ago))


def _checked_in(session) -> None:
    """Dana chose a reship; the check-in was delivered an hour ago and waits for her answer."""
    session.add(_resolution("reship_express"))
    session.add(FollowUp(case_id="CASE-501", conversation_id="w-preview", note="Check that the reship worked.",
                         due_at=datetime.utcnow() - timedelta(hours=2), done=True,
                         sent_at=datetime.utcnow() - timedelta(hours=1), attempts=1))


def _check_in_due(session) -> None:
    session.add(_resolution("reship_express"))
    session.add(FollowUp(case_id="CASE-501", conversation_id="w-preview", note="Check that the reship worked.",
                         due_at=datetime.utcnow() - timedelta(minutes=5)))


# Every custom action that writes, on a moment where it does: (id, action, tracker, rows the moment needs).
WRITING_MOMENTS: List[Tuple[str, str, Dict[str, Any], Any]] = [
    ("complaint on the open case", "action_handle_complaint",
     _tracker(DANA, "still no headphones", "complain_delivery"), None),
    ("complaint that opens a case", "action_handle_complaint",
     _tracker({"customer_id": "cust-1002", "customer_name": "Sam", "verified": True, "issue_type": "billing"},
              "I was charged twice for my shoes", "complain_billing"), None),
    ("complaint that reopens a resolved case", "action_handle_complaint",
     _tracker({"customer_id": "cust-1003", "customer_name": "Priya", "verified": True, "issue_type": "product",
               "case_id": "CASE-733", "order_id": "C3003"}, "the new blender leaks too", "complain_product"), None),
    ("verification that finds the case", "action_verify_customer",
     _tracker({"issue_type": "delivery"}, "dana@example.com order A1001", "verify"), None),
    ("verification that fails", "action_verify_customer",
     _tracker({"issue_type": "delivery"}, "dana@example.com order Z9999", "verify"), None),
    ("choosing a resolution", "action_apply_resolution",
     _tracker(CHOOSING, "refund please", "choose_option", {"option": "refund_full"}), None),
    ("changing the resolution just agreed", "action_apply_resolution",
     _tracker(dict(CHOOSING, resolution="reship_express", offered_options=["refund_full"]), "refund instead",
              "choose_option", {"option": "refund_full"}),
     lambda session: session.add(_resolution("reship_express", days_ago=0))),
    ("asking again for a resolution that stands", "action_apply_resolution",
     _tracker(CHOOSING, "refund please", "choose_option", {"option": "refund_full"}),
     lambda session: session.add(_resolution("reship_express", days_ago=2))),
    ("fixed at the check-in", "action_answer_confirmation",
     _tracker(dict(DANA, pending_question="confirm_fixed", resolution="reship_express"), "yes all good", "affirm"),
     _checked_in),
    ("not fixed at the check-in", "action_answer_confirmation",
     _tracker(dict(DANA, pending_question="confirm_fixed", resolution="reship_express"), "no", "deny"),
     _checked_in),
    ("accepting the resolution", "action_close_loop",
     _tracker(dict(DANA, resolution="reship_express", pending_question="confirm_resolution"), "great", "affirm"),
     None),
    ("the check-in falls due", "action_follow_up",
     _tracker(dict(DANA, resolution="reship_express"), "", "EXTERNAL_follow_up"), _check_in_due),
    ("asking for a person", "action_handoff", _tracker(DANA, "a human please", "request_human"), None),
    ("the bot failed twice", "action_fallback", _tracker(DANA, "qwzx plonk", "nlu_fallback", failed_turns=2), None),
]


@pytest.fixture
def sqlite_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'mend.db'}"
    _reset(url)
    monkeypatch.setenv("MEND_DATABASE_URL", url)
    # Case numbers are random; the same one for the preview and the real turn, so their words can be compared.
    monkeypatch.setattr(repo.secrets, "randbelow", lambda n: 4242)
    yield url
    get_engine(url).dispose()


def _contents(url: str) -> Dict[str, List[Tuple]]:
    """Every row of every table, in a stable order."""
    with get_engine(url).connect() as connection:
        return {table.name: sorted((tuple(row) for row in connection.execute(table.select())), key=repr)
                for table in Base.metadata.sorted_tables}


def _copy(url: str, tmp_path) -> str:
    target = tmp_path / "copy.db"
    source, copy = sqlite3.connect(url.split("sqlite:///", 1)[1]), sqlite3.connect(str(target))
    source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{target}"


def _real_turn(action: str, tracker: Dict[str, Any], url: str) -> TurnReply:
    """What the bot would do: the action's turn in a committed unit of work, as the action server runs it."""
    turn = turn_input(tracker["sender_id"], dict(tracker["slots"], handed_off=False), tracker["latest_message"],
                      tracker["events"])
    with session_scope(url) as session:
        return turns.ACTION_TURNS[action](turn, session)


def _said(reply: TurnReply) -> List[Tuple]:
    return [(m.text, m.response, m.buttons) for m in reply.messages]


def test_every_writing_action_has_a_moment_here():
    """A new custom action that writes must be previewed here too."""
    assert {action for _, action, _, _ in WRITING_MOMENTS} == set(turns.ACTION_TURNS)


@pytest.mark.parametrize("name,action,tracker,setup", WRITING_MOMENTS, ids=[m[0] for m in WRITING_MOMENTS])
def test_a_preview_says_what_the_bot_would_and_writes_nothing(name, action, tracker, setup, sqlite_url, tmp_path):
    if setup is not None:
        with session_scope(sqlite_url) as session:
            setup(session)
    copy_url = _copy(sqlite_url, tmp_path)
    before = _contents(sqlite_url)

    recorder = RecordingRepository()
    preview = preview_turn(action, tracker, sqlite_url, recorder=recorder)
    assert _contents(sqlite_url) == before  # not a row added, changed or removed

    real = _real_turn(action, tracker, copy_url)
    assert preview.messages and _said(preview) == _said(real)
    assert preview.slots == real.slots

    # What the preview recorded is what the real turn wrote.
    after = _contents(copy_url)
    assert recorder.writes, f"{name}: the real turn wrote {[t for t in after if after[t] != before[t]]}"
    touched = {t for t in after if after[t] != before[t]}
    assert {w.table for w in recorder.writes} == touched
    for table in touched:
        inserted = sum(1 for w in recorder.writes if w.table == table and w.kind == "insert")
        deleted = any(w.table == table and w.kind == "delete" for w in recorder.writes)
        if not deleted:
            assert len(after[table]) - len(before[table]) == inserted, table


def test_the_writes_say_what_sending_would_record(sqlite_url):
    recorder = RecordingRepository()
    tracker = _tracker(CHOOSING, "refund please", "choose_option", {"option": "refund_full"})
    reply = preview_turn("action_apply_resolution", tracker, sqlite_url, recorder=recorder)
    inserts = {w.table: w.fields for w in recorder.writes if w.kind == "insert"}
    assert inserts["resolutions"]["option_code"] == "refund_full" and inserts["resolutions"]["case_id"] == "CASE-501"
    assert inserts["compensations"]["amount"] > 0
    credit = f"${inserts['compensations']['amount']:.2f}"
    assert any(credit in (m.text or "") for m in reply.messages)  # the credit the reply names is the one recorded
    assert inserts["follow_ups"]["due_at"] > datetime.utcnow()
    assert "insert resolutions" in recorder.writes[0].describe()


def _update_case_elsewhere(url: str) -> str:
    """Another process (the bot on Dana's next message) updates her case, without waiting for any lock."""
    if url.startswith("sqlite"):
        other = sqlite3.connect(url.split("sqlite:///", 1)[1], timeout=0)
        try:
            changed = other.execute("UPDATE cases SET owner_agent = 'sam' WHERE id = 'CASE-501'").rowcount
            other.commit()
            return f"updated {changed}"
        except sqlite3.OperationalError as error:  # "database is locked"
            return str(error)
        finally:
            other.close()
    engine = create_engine(url, poolclass=NullPool, future=True)
    try:
        with engine.connect() as other:
            other.execute(text("SET lock_timeout = '300ms'"))
            changed = other.execute(text("UPDATE cases SET owner_agent = 'sam' WHERE id = 'CASE-501'")).rowcount
            other.commit()
            return f"updated {changed}"
    except OperationalError as error:  # "canceling statement due to lock timeout"
        return str(error.orig)
    finally:
        engine.dispose()


def test_a_preview_takes_no_lock_that_holds_up_a_writer(db_url, monkeypatch):
    """While a preview's session is open, after its turn has read and "written" everything, another
    connection updates the very case the preview resolved and granted compensation on."""
    outcomes = []
    real = turns.ACTION_TURNS["action_apply_resolution"]

    def turn_then_someone_else_writes(turn, session):
        reply = real(turn, session)
        outcomes.append(_update_case_elsewhere(db_url))
        return reply

    monkeypatch.setitem(turns.ACTION_TURNS, "action_apply_resolution", turn_then_someone_else_writes)
    tracker = _tracker(CHOOSING, "refund please", "choose_option", {"option": "refund_full"})
    recorder = RecordingRepository()
    reply = preview_turn("action_apply_resolution", tracker, db_url, recorder=recorder)
    assert outcomes == ["updated 1"]
    assert any("refund" in (m.text or "").lower() for m in reply.messages) and recorder.writes
    with session_scope(db_url) as session:
        assert session.query(Resolution).filter_by(case_id="CASE-501").count() == 0


def test_a_write_that_bypasses_the_repository_fails_loudly(sqlite_url):
    with recording_session(sqlite_url) as (session, _):
        with pytest.raises(WriteRefused):
            session.add(Case(id="CASE-1", customer_id="cust-1001", issue_type="delivery", summary="x"))
        with pytest.raises(WriteRefused):
            session.execute(text("DELETE FROM cases"))
        with pytest.raises(WriteRefused):
            session.query(Case).filter(Case.id == "CASE-501").with_for_update().one()
        with pytest.raises(WriteRefused):
            session.flush()
    with pytest.raises(WriteRefused):  # an ORM row changed in place is caught when the preview ends
        with recording_session(sqlite_url) as (session, _):
            session.get(Case, "CASE-501").status = "resolved"
    with session_scope(sqlite_url) as session:
        assert session.query(Case).count() == 2 and session.get(Case, "CASE-501").status == "open"


def test_later_reads_of_the_preview_see_what_it_recorded(sqlite_url):
    now = datetime.utcnow()
    with recording_session(sqlite_url) as (session, recorder):
        assert repo.active_resolution(session, "CASE-501") is None
        case_id = repo.open_case(session, "cust-1001", "billing", "A1001", "charged twice", now=now)
        assert case_id in [c.id for c in repo.customer_history(session, "cust-1001").cases]
        repo.record_resolution(session, "CASE-501", "refund_full", "Full refund", now=now)
        assert repo.active_resolution(session, "CASE-501").option_code == "refund_full"
        with pytest.raises(repo.ResolutionExists):
            repo.record_resolution(session, "CASE-501", "reship_express", "Reship", now=now)
        before = repo.compensation_room(session, "CASE-501", now=now)
        repo.record_compensation(session, "CASE-501", "credit", Decimal("10"), "USD", "late", now=now)
        assert repo.compensation_total(session, "CASE-501") == before.case_granted + 10
        assert repo.compensation_room(session, "CASE-501", now=now).left == max(Decimal("0"), before.left - 10)
        repo.schedule_follow_up(session, "CASE-501", "w-preview", now + timedelta(days=1), "check")
        assert repo.next_follow_up_due(session, "CASE-501") == now + timedelta(days=1)
        repo.record_contact(session, "CASE-501", "w-preview", "first", "delivery", "calm", 0.1, now=now)
        repo.record_contact(session, "CASE-501", "w-preview", "second", "delivery", "calm", 0.1, now=now)
        contacts = [c for c in repo.customer_history(session, "cust-1001").case("CASE-501").contacts
                    if c.conversation_id == "w-preview"]
        assert [c.summary for c in contacts] == ["second"]  # one contact per conversation, updated
        repo.close_case(session, "CASE-501", now=now)
        history = repo.customer_history(session, "cust-1001").case("CASE-501")
        assert history.status == "resolved" and history.resolutions[-1]["status"] == "done"
        assert [w.kind for w in recorder.writes].count("insert") == 5
    with session_scope(sqlite_url) as session:  # and none of it reached the database
        assert session.query(Case).count() == 2 and session.query(Resolution).count() == 1
