"""Suggested replies that fit the moment: the policy where confident, the reply library and replies agents
sent before, filled with the case's facts; never closing an unresolved case, never repeating the bot."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import yaml

from bot.assist import learned, telemetry
from bot.assist.facts import facts_from_case_db, say_date
from bot.assist.library import LibraryError, load_library, parse_library
from bot.casedb.engine import session_scope
from bot.casedb.models import CaseContact, LearnedReply, Resolution, SuggestionEvent
from bot.gateway.suggestions import render_response, said_since_customer, suggestions
from bot.settings import PROJECT_ROOT

DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
DANA = {"customer_id": "cust-1001", "verified": True, "case_id": "CASE-501", "order_id": "A1001",
        "issue_type": "delivery", "handed_off": True}


def _tracker(slots, text="where is my order", intent="complain_delivery", agent_spoke=False):
    latest = {"text": text, "intent": {"name": intent}, "entities": [], "issue_type": {"name": "delivery"},
              "frustration": {"score": 0.9, "level": "angry", "cues": []}}
    events = [{"event": "slot", "name": "handed_off", "value": True}]
    if agent_spoke:
        events.append({"event": "bot", "text": "Hi, I'm Sam.", "metadata": {"agent": "sam"}})
    events.append({"event": "user", "text": text, "parse_data": latest})
    return {"sender_id": "w-test", "slots": slots, "latest_message": latest, "events": events}


def _refund_on_dana(db_url, days_ago=2):
    with session_scope(db_url) as session:
        session.add(Resolution(case_id="CASE-501", option_code="refund_full", status="in_progress",
                               description="Full refund of $249.00 to your card",
                               created_at=datetime.utcnow() - timedelta(days=days_ago)))


def test_apology_wording_follows_the_frustration_level():
    angry = render_response("utter_apologize", DOMAIN, {"frustration_level": "angry"})["text"]
    calm = render_response("utter_apologize", DOMAIN, {"frustration_level": "calm"})["text"]
    angry_texts = [v["text"] for v in DOMAIN["responses"]["utter_apologize"] if v.get("condition")
                   and v["condition"][0]["value"] == "angry"]
    assert angry in angry_texts and calm not in angry_texts
    assert render_response("utter_does_not_exist", DOMAIN, {}) is None


def test_a_response_reads_as_the_bot_would_say_it_with_the_customers_name():
    verified = render_response("utter_greet", DOMAIN, {"verified": True, "customer_name": "Dana"})["text"]
    guest = render_response("utter_greet", DOMAIN, {"verified": False, "customer_name": None})["text"]
    assert verified.startswith("Hi Dana,") and "{" not in verified
    assert guest.startswith("Hi, I'm Mend") and "Dana" not in guest


def test_a_direct_question_gets_the_answer_from_the_case(db_url):
    _refund_on_dana(db_url)
    tracker = _tracker(dict(DANA, frustration_level="annoyed"), text="when do i get my money back??", agent_spoke=True)
    found = suggestions({"scores": [{"action": "action_listen", "score": 1.0}], "tracker": tracker}, DOMAIN, db_url,
                        agent_name="Sam")
    top = found[0]
    assert top["kind"] == "refund_timing" and top["source"] == "library"
    created = datetime.utcnow() - timedelta(days=2)
    assert say_date(created) in top["text"] and "Full refund of $249.00" in top["text"]
    assert "{" not in top["text"] and all(s["why"] for s in found)
    assert len({s["kind"] for s in found}) == len(found) == 3  # three different things to say


def test_at_takeover_the_agent_is_offered_an_introduction_that_knows_the_case(db_url):
    tracker = _tracker(dict(DANA, frustration_level="angry"), text="GET ME A HUMAN this is the 3rd time")
    found = suggestions({"scores": [{"action": "action_listen", "score": 1.0}], "tracker": tracker}, DOMAIN, db_url,
                        agent_name="Sam")
    greeting = next(s for s in found if s["kind"] == "greet_takeover")
    assert "Sam" in greeting["text"] and "CASE-501" in greeting["text"] and "Dana" in greeting["text"]
    # Once the agent has spoken, no second introduction.
    later = suggestions({"scores": [], "tracker": _tracker(dict(DANA, frustration_level="angry"),
                                                           text="so what now", agent_spoke=True)}, DOMAIN, db_url)
    assert "greet_takeover" not in [s["kind"] for s in later]


def test_never_close_the_loop_on_an_unresolved_case(db_url):
    prediction = {"scores": [{"action": "utter_anything_else", "score": 0.95}, {"action": "utter_goodbye", "score": 0.9}],
                  "tracker": _tracker(dict(DANA, frustration_level="calm"), text="ok thanks", agent_spoke=True)}
    found = suggestions(prediction, DOMAIN, db_url)
    assert found and not [s for s in found if s["kind"] in ("close_loop", "thanks_reply")]
    assert "utter_anything_else" not in [s["action"] for s in found]


def test_closing_is_offered_once_the_case_is_resolved(db_url):
    priya = {"customer_id": "cust-1003", "verified": True, "case_id": "CASE-733", "order_id": "C3003",
             "issue_type": "product", "frustration_level": "calm", "handed_off": True}
    found = suggestions({"scores": [], "tracker": _tracker(priya, text="perfect, thanks so much!", agent_spoke=True)},
                        DOMAIN, db_url, agent_name="Sam")
    assert found[0]["kind"] in ("close_loop", "thanks_reply") and "Priya" in found[0]["text"]


def test_never_repeat_what_the_bot_just_said(db_url):
    tracker = _tracker(dict(DANA, frustration_level="angry"), text="this is ridiculous", agent_spoke=True)
    first = suggestions({"scores": [], "tracker": tracker}, DOMAIN, db_url, agent_name="Sam")
    tracker["events"].append({"event": "bot", "text": first[0]["text"], "metadata": {"agent": "sam"}})
    again = suggestions({"scores": [], "tracker": tracker}, DOMAIN, db_url, agent_name="Sam")
    assert first[0]["text"] not in [s["text"] for s in again]


def test_the_policy_counts_where_it_is_confident_and_previews_record_nothing(db_url):
    def counts():
        with session_scope(db_url) as session:
            return session.query(CaseContact).count(), session.query(Resolution).count()

    before = counts()
    slots = dict(DANA, frustration_level="angry", offered_options=["reship_express", "refund_full"],
                 pending_question="choose_option")
    tracker = _tracker(slots, text="refund please", intent="choose_option", agent_spoke=True)
    tracker["latest_message"]["entities"] = [{"entity": "option", "value": "refund_full"}]
    found = suggestions({"scores": [{"action": "action_apply_resolution", "score": 0.9},
                                    {"action": "utter_goodbye", "score": 0.2}], "tracker": tracker}, DOMAIN, db_url)
    policy = [s for s in found if s["source"] == "policy"]
    assert policy and policy[0]["action"] == "action_apply_resolution" and "refund" in policy[0]["text"].lower()
    assert "dialogue policy" in policy[0]["why"] and "utter_goodbye" not in [s["action"] for s in found]
    assert counts() == before


def test_a_reply_agents_sent_comes_back_for_a_message_of_the_same_meaning_filled_for_the_new_case(db_url):
    with session_scope(db_url) as session:
        facts = facts_from_case_db(session, DANA, agent_name="Sam")
        row = learned.remember(session, "Dana, SwiftShip told me the parcel SS48213377 is held by weather; I've asked "
                               "them to prioritise it.", "is my parcel stuck because of the storm?", facts,
                               "delivery", "sam")
        assert row is not None and "{first_name}" in row.template and "{tracking}" in row.template
        assert "Dana" not in row.template and "SS48213377" not in row.template
        # An address or number no placeholder covers never travels to another customer.
        assert learned.remember(session, "I've sent it to dana@example.com, see you soon.", "where?", facts,
                                "delivery", "sam") is None
    alex = {"customer_id": "cust-1005", "verified": True, "order_id": "E5005", "issue_type": "delivery",
            "frustration_level": "annoyed", "handed_off": True}
    found = suggestions({"scores": [], "tracker": _tracker(alex, text="is the parcel stuck cause of the storm??",
                                                           agent_spoke=True)}, DOMAIN, db_url)
    reused = next(s for s in found if s["source"] == "learned")
    assert reused["text"].startswith("Alex, PostNet told me the parcel PN7788")
    assert "Agents sent this 1 time" in reused["why"]


def test_telemetry_records_sent_as_is_edited_and_ignored(db_url):
    shown = [{"text": "First reply.", "kind": "next_steps", "source": "library", "action": None},
             {"text": "Second reply.", "kind": "apologize", "source": "library", "action": None}]
    with session_scope(db_url) as session:
        telemetry.record_shown(session, "w-tel", shown)
        ids = [s["id"] for s in shown]
        again = [dict(s) for s in shown]
        telemetry.record_shown(session, "w-tel", again)  # shown again (another console): same ids
        assert [s["id"] for s in again] == ids
        telemetry.record_sent(session, "w-tel", "sam", "First reply, with a tweak.", ids[0])
        edited = session.get(SuggestionEvent, ids[0])
        assert edited.outcome == "edited" and edited.edit_distance == len(", with a tweak")
        assert session.get(SuggestionEvent, ids[1]).outcome == "ignored"
        later = [{"text": "Third.", "kind": "next_steps", "source": "library", "action": None}]
        telemetry.record_shown(session, "w-tel", later)
        telemetry.record_sent(session, "w-tel", "sam", "third", later[0]["id"])
        assert session.get(SuggestionEvent, later[0]["id"]).outcome == "as_is"
        # An id from another conversation, or one already sent, counts for nothing.
        assert telemetry.record_sent(session, "w-other", "sam", "x", ids[1]) is None
        assert telemetry.record_sent(session, "w-tel", "sam", "again", later[0]["id"]) is None
        report = telemetry.report(session)
        assert report["totals"] == {"edited": 1, "ignored": 1, "as_is": 1}


@pytest.mark.parametrize("text, says", [
    ("replies: [", "not valid YAML"),
    ("replies: {a: 1}", "list under 'replies'"),
    ("replies:\n  - {id: a, kind: shout, text: hi, asks: [x]}", "kind must be one of"),
    ("replies:\n  - {id: a, kind: apologize, text: hi, asks: [x], when: {mood: angry}}", "unknown condition 'mood'"),
    ("replies:\n  - {id: a, kind: apologize, text: 'hi {name', asks: [x]}", "unbalanced braces"),
    ("replies:\n  - {id: a, kind: apologize, text: hi, asks: []}", "asks must be a non-empty list"),
    ("replies:\n  - {id: a, kind: apologize, text: hi, asks: [x]}\n  - {id: a, kind: apologize, text: hi, asks: [x]}",
     "used twice"),
])
def test_a_malformed_reply_library_is_refused_with_the_reason(text, says):
    with pytest.raises(LibraryError, match=says):
        parse_library(text)


def test_the_shipped_library_loads():
    kinds = {r.kind for r in load_library()}
    assert {"refund_timing", "delivery_status", "next_steps", "greet_takeover", "close_loop"} <= kinds


def test_said_since_customer_only_looks_at_the_current_turn():
    events = [{"event": "bot", "text": "old"}, {"event": "user", "text": "hi"}, {"event": "bot", "text": "new"}]
    assert said_since_customer(events) == {"new"}
