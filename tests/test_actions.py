"""The custom actions against a real case database, as a customer would meet them."""
from __future__ import annotations

from sqlalchemy import create_engine

from bot.casedb.engine import session_scope
from bot.casedb.models import Case, CaseContact, Compensation, FollowUp, Handoff, Resolution, RootCauseTag
from tests.chat_sim import SimulatedChat

DANA = {"customer_id": "cust-1001"}


def test_dana_late_delivery_is_recognised_without_re_explaining(db_url):
    chat = SimulatedChat("dana-1", DANA)
    reply = chat.texts(chat.say("WHERE ARE MY HEADPHONES?? this is ridiculous", "complain_delivery", level="angry"))
    assert "contacted us once" in reply and "2 days ago" in reply and "by email" in reply and "CASE-501" in reply
    assert "No need to explain again" in reply
    assert "held at regional hub due to severe weather" in reply
    assert "told it would arrive the next day" in reply  # the broken promise is named
    assert "<utter_apologize>" in reply
    buttons = chat.transcript[-1]["bot"][-1]["buttons"]
    assert 2 <= len(buttons) <= 3 and all(b["payload"].startswith("/choose_option") for b in buttons)
    assert chat.slots["case_id"] == "CASE-501" and chat.slots["frustration_level"] == "angry"
    assert chat.slots["case_earlier_contacts"] == 1  # her email two days ago: it raises frustration from now on
    assert chat.slots["playbook_steps"] == ["acknowledge", "apologize", "explain", "resolve_options"]

    reply = chat.texts(chat.say('/choose_option{"option":"reship_express"}', "choose_option",
                                entities={"option": "reship_express"}, level="calm"))
    assert "express" in reply and "Your reference is CASE-501" in reply and "within 24 hours" in reply
    assert "$40.00 credit" in reply or "$20.00 credit" in reply
    assert not any(e.get("event") == "reminder" for e in chat.all_events)  # the gateway's follow-up job sends it
    with session_scope(db_url) as session:
        assert session.query(Resolution).filter_by(case_id="CASE-501").one().option_code == "reship_express"
        assert session.query(Compensation).filter_by(case_id="CASE-501").one().amount > 0
        assert session.query(FollowUp).filter_by(case_id="CASE-501").count() == 1
        assert session.query(RootCauseTag).filter_by(case_id="CASE-501").one().tag == "carrier-delay"
        contact = session.query(CaseContact).filter_by(conversation_id="dana-1").one()
        assert contact.channel == "chat" and contact.issue_type == "delivery" and contact.handled_by == "bot"

    reply = chat.texts(chat.say("yes that works", "affirm"))
    assert "Thank you for your patience" in reply and "close_loop" in chat.slots["playbook_steps"]


def test_sam_double_charge_after_verifying_in_conversation(db_url):
    chat = SimulatedChat("sam-1")
    reply = chat.texts(chat.say("I was charged twice for my order", "complain_billing", level="annoyed"))
    assert "<utter_ask_verification>" in reply and "59.99" not in reply
    reply = chat.texts(chat.say("sam@example.com, order B2002", "provide_details",
                                entities={"email": "sam@example.com", "order_id": "B2002"}))
    assert "2 charges of $59.99" in reply and "duplicate" in reply
    assert chat.slots["verified"] is True and chat.slots["customer_id"] == "cust-1002"
    titles = [b["title"] for b in chat.transcript[-1]["bot"][-1]["buttons"]]
    assert titles == ["Refund the duplicate charge", "Take it as store credit now"]
    with session_scope(db_url) as session:
        case = session.get(Case, chat.slots["case_id"])
        assert case.customer_id == "cust-1002" and case.issue_type == "billing" and case.order_id == "B2002"


def test_priya_repeat_failure_gets_no_second_replacement(db_url):
    chat = SimulatedChat("priya-1", {"customer_id": "cust-1003"})
    reply = chat.texts(chat.say("the replacement blender leaks too", "complain_product", level="annoyed"))
    assert "CASE-733" in reply and "Replacement blender sent" in reply and "repeat failure" in reply
    codes = chat.slots["offered_options"]
    assert "replace" not in codes and "refund_keep" in codes
    with session_scope(db_url) as session:
        assert session.get(Case, "CASE-733").status == "open"  # reopened, not a new case
    reply = chat.texts(chat.say("full refund please", "choose_option"))
    assert "refund you in full" in reply and "credit" in reply  # repeat failure earns compensation


def test_lee_locked_account(db_url):
    chat = SimulatedChat("lee-1", {"customer_id": "cust-1004"})
    reply = chat.texts(chat.say("I can't log in, my account is locked", "complain_account"))
    assert "locked after 5 failed sign-in attempts" in reply
    assert chat.slots["offered_options"] == ["unlock_link", "agent_verify"]


def test_unverified_customer_sees_no_customer_data(db_url):
    chat = SimulatedChat("anon-1")
    everything = []
    everything += chat.say("where is order A1001??", "complain_delivery", entities={"order_id": "A1001"}, level="annoyed")
    everything += chat.say("dana@example.com", "provide_details", entities={"email": "dana@example.com"})
    everything += chat.say("order B2002", "provide_details", entities={"order_id": "B2002"})  # wrong pair
    everything += chat.say('/choose_option{"option":"refund_full"}', "choose_option", entities={"option": "refund_full"})
    text = SimulatedChat.texts(everything)
    for secret in ("Dana", "headphones", "CASE-501", "SwiftShip", "severe weather", "249", "59.99", "Sam"):
        assert secret not in text
    assert chat.slots["verified"] is False and chat.slots.get("customer_id") is None
    assert "couldn't match" in text


def test_forged_customer_id_in_metadata_is_not_trusted_blindly(db_url):
    chat = SimulatedChat("forged-1", {"customer_id": "cust-does-not-exist' OR 1=1"})
    reply = chat.texts(chat.say("where's my stuff", "complain_delivery"))
    assert chat.slots["verified"] is False and "<utter_ask_verification>" in reply


def test_handoff_on_request_records_summary(db_url):
    chat = SimulatedChat("dana-2", DANA)
    chat.say("my headphones are late", "complain_delivery", level="annoyed")
    reply = chat.texts(chat.say("I want to talk to a human", "request_human", level="annoyed"))
    assert "<utter_handoff>" in reply and chat.slots["handed_off"] is True
    with session_scope(db_url) as session:
        handoff = session.query(Handoff).filter_by(conversation_id="dana-2").one()
        assert handoff.reason == "customer_request" and handoff.case_id == "CASE-501"
        assert "delivery" in handoff.summary and "resolve_options" in handoff.summary
    reply = chat.texts(chat.say("hello?", "complain_delivery"))
    assert "colleague has your conversation" in reply


def test_handoff_when_frustration_stays_high(db_url):
    chat = SimulatedChat("dana-3", DANA)
    chat.say("WHERE IS MY ORDER", "complain_delivery", level="angry")
    reply = chat.texts(chat.say("I DON'T WANT OPTIONS, THIS IS THE WORST SERVICE EVER", "complain_service", level="angry"))
    assert "<utter_handoff>" in reply and chat.slots["handoff_reason"] == "frustration"


def test_handoff_when_the_bot_fails_twice(db_url):
    chat = SimulatedChat("fail-1")
    first = chat.texts(chat.say("blorp zzz", "nlu_fallback"))
    assert "put it another way" in first and chat.slots["handed_off"] is False
    second = chat.texts(chat.say("qwerty asdf", "nlu_fallback"))
    assert "<utter_handoff>" in second and chat.slots["handoff_reason"] == "bot_failed"


def test_empty_message_gets_a_reply_and_is_not_a_failure(db_url):
    chat = SimulatedChat("empty-1")
    assert "empty" in SimulatedChat.texts(chat.say("   ", "nlu_fallback"))
    assert chat.slots["failed_turns"] == 0


def test_database_outage_gets_a_graceful_reply_and_a_person(db_url, monkeypatch):
    chat = SimulatedChat("outage-1", DANA)
    monkeypatch.setenv("MEND_DATABASE_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    reply = chat.texts(chat.say("where is my order", "complain_delivery"))
    assert "can't reach our case system" in reply and "<utter_handoff>" in reply
    assert chat.slots["handed_off"] is True and chat.slots["handoff_reason"] == "case_db_unavailable"
    for message in ("resolve it", '/choose_option{"option":"refund_full"}'):
        assert "Traceback" not in chat.texts(chat.say(message, "choose_option"))


def test_closing_is_said_once_then_goodbye(db_url):
    chat = SimulatedChat("sam-close", {"customer_id": "cust-1002"})
    chat.say("charged twice for B2002", "complain_billing", entities={"order_id": "B2002"})
    chat.say('/choose_option{"option":"refund_duplicate"}', "choose_option", entities={"option": "refund_duplicate"})
    first = chat.texts(chat.say("yes", "affirm"))
    assert "Thank you for your patience" in first and "<utter_anything_else>" in first
    assert chat.texts(chat.say("bye", "goodbye")) == "<utter_goodbye>"
    assert chat.texts(chat.say("thanks", "thank")) == "<utter_you_are_welcome>"


def test_a_bug_in_a_turn_still_gets_a_reply(db_url, monkeypatch):
    from bot.recovery import turns

    def broken(turn, session):
        raise KeyError("simulated bug")

    monkeypatch.setattr(turns, "close_loop", broken)
    from actions import actions as mend_actions
    monkeypatch.setattr(mend_actions.ActionCloseLoop, "turn", staticmethod(broken))
    chat = SimulatedChat("bug-1")
    reply = chat.texts(chat.say("thanks", "thank"))
    assert "something went wrong on my side" in reply and "<utter_handoff>" in reply
    assert chat.slots["handed_off"] is True and chat.slots["handoff_reason"] == "action_error"


def test_one_stray_message_does_not_change_what_the_case_is_about(db_url):
    chat = SimulatedChat("dana-stray", DANA)
    chat.say("where are my headphones?", "complain_delivery", level="annoyed")
    assert chat.slots["issue_type"] == "delivery" and chat.slots["case_id"] == "CASE-501"
    # A hostile payload the NLU half-reads as a technical complaint: the case stays a delivery case.
    reply = chat.texts(chat.say('<img src=x onerror="alert(1)">is anyone there?', "complain_technical",
                                issue_confidence=0.55))
    assert chat.slots["issue_type"] == "delivery"
    assert "A1001" in reply and "engineer" not in reply.lower()
    # A confident complaint of another kind is a new issue in the same conversation.
    chat.say("and I was also charged twice for it!", "complain_billing", issue_confidence=0.97)
    assert chat.slots["issue_type"] == "billing"
