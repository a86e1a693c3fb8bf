"""Suggested replies: the policy's ranking, rendered from the domain and previewed on the real case database."""
from __future__ import annotations

import yaml

from bot.casedb.engine import session_scope
from bot.casedb.models import CaseContact, Resolution
from bot.gateway.suggestions import render_response, said_since_customer, suggestions
from bot.settings import PROJECT_ROOT

DOMAIN = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))


def _tracker(slots, text="where is my order", intent="complain_delivery"):
    latest = {"text": text, "intent": {"name": intent}, "entities": [], "issue_type": {"name": "delivery"},
              "frustration": {"score": 0.9, "level": "angry", "cues": []}}
    return {"sender_id": "w-test", "slots": slots, "latest_message": latest,
            "events": [{"event": "user", "text": text, "parse_data": latest}]}


def test_apology_wording_follows_the_frustration_level():
    angry = render_response("utter_apologize", DOMAIN, {"frustration_level": "angry"})["text"]
    calm = render_response("utter_apologize", DOMAIN, {"frustration_level": "calm"})["text"]
    angry_texts = [v["text"] for v in DOMAIN["responses"]["utter_apologize"] if v.get("condition")
                   and v["condition"][0]["value"] == "angry"]
    assert angry in angry_texts and calm not in angry_texts
    assert render_response("utter_does_not_exist", DOMAIN, {}) is None


def test_top_three_skip_machinery_and_what_the_bot_just_said(db_url):
    tracker = _tracker({"customer_id": "cust-1001", "verified": True, "frustration_level": "angry",
                        "handed_off": True})
    tracker["events"].append({"event": "bot", "text": render_response("utter_apologize", DOMAIN,
                                                                      {"frustration_level": "angry"})["text"]})
    prediction = {"scores": [{"action": "action_listen", "score": 0.99}, {"action": "utter_apologize", "score": 0.9},
                             {"action": "action_handle_complaint", "score": 0.8},
                             {"action": "action_session_start", "score": 0.7},
                             {"action": "utter_offer_human", "score": 0.2}, {"action": "utter_goodbye", "score": 0.1}],
                  "tracker": tracker}
    found = suggestions(prediction, DOMAIN, db_url)
    assert [s["action"] for s in found] == ["action_handle_complaint", "utter_offer_human", "utter_goodbye"]
    complaint = found[0]
    # Written from Dana's case, as the bot would say it (not "a colleague has your conversation").
    assert "A1001" in complaint["text"] and "CASE-501" in complaint["text"] and complaint["buttons"]
    assert complaint["step"] == "resolve_options" and complaint["confidence"] == 0.8


def test_the_playbook_fills_in_when_the_policy_has_nothing_more_to_say(db_url):
    tracker = _tracker({"customer_id": "cust-1001", "verified": True, "frustration_level": "annoyed",
                        "playbook_steps": ["acknowledge", "apologize", "explain", "resolve_options"]})
    found = suggestions({"scores": [{"action": "action_listen", "score": 1.0},
                                    {"action": "action_fallback", "score": 0.3},
                                    {"action": "utter_goodbye", "score": 0.0}], "tracker": tracker}, DOMAIN, db_url)
    assert [s["source"] for s in found] == ["playbook"] * 3
    assert found[0]["action"] == "utter_anything_else" and found[0]["step"] == "close_loop"  # the step not yet done
    assert all(s["confidence"] is None for s in found)
    assert "action_fallback" not in [s["action"] for s in found]  # a rule's fallback score is not a suggestion


def test_previews_record_nothing(db_url):
    def counts():
        with session_scope(db_url) as session:
            return session.query(CaseContact).count(), session.query(Resolution).count()

    before = counts()
    slots = {"customer_id": "cust-1001", "verified": True, "frustration_level": "angry", "case_id": "CASE-501",
             "order_id": "A1001", "issue_type": "delivery", "offered_options": ["reship_express", "refund_full"],
             "pending_question": "choose_option"}
    tracker = _tracker(slots, text="refund please", intent="choose_option")
    tracker["latest_message"]["entities"] = [{"entity": "option", "value": "refund_full"}]
    found = suggestions({"scores": [{"action": "action_apply_resolution", "score": 0.9},
                                    {"action": "action_handle_complaint", "score": 0.5}], "tracker": tracker},
                        DOMAIN, db_url)
    assert found and "refund" in found[0]["text"].lower()
    assert counts() == before


def test_said_since_customer_only_looks_at_the_current_turn():
    events = [{"event": "bot", "text": "old"}, {"event": "user", "text": "hi"}, {"event": "bot", "text": "new"}]
    assert said_since_customer(events) == {"new"}
