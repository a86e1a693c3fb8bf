"""The bot through its real interface: Rasa's REST channel and HTTP API, with custom actions and database."""
from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import _reset
from tests.rest_client import Customer, post


@pytest.fixture(scope="module", autouse=True)
def fresh_demo_data(live_bot):
    """The demo scenarios as seeded: other suites (gateway, browser) add contacts to the same cases."""
    _reset(live_bot.case_db_url)


def _customer(live_bot, customer_id=None) -> Customer:
    return Customer(live_bot.rasa_url, f"t-{uuid.uuid4().hex[:10]}", customer_id)


def test_parse_result_carries_issue_type_and_frustration(live_bot):
    parse = post(f"{live_bot.rasa_url}/model/parse", {"text": "This is the THIRD time I ask, where is my parcel??"})
    assert parse["issue_type"]["name"] == "delivery" and 0 <= parse["issue_type"]["confidence"] <= 1
    frustration = parse["frustration"]
    assert frustration["level"] in {"annoyed", "angry"} and 0 <= frustration["score"] <= 1
    assert any("repeat contact" in cue for cue in frustration["cues"])
    calm = post(f"{live_bot.rasa_url}/model/parse", {"text": "Hello, could you tell me when my order ships?"})
    assert calm["frustration"]["level"] == "calm" and calm["frustration"]["score"] < frustration["score"]


def test_tracker_keeps_parse_labels_and_playbook_state(live_bot):
    dana = _customer(live_bot, "cust-1001")
    dana.say("where are my headphones? this is the second time I write")
    tracker = dana.tracker()
    user_event = next(e for e in tracker["events"] if e["event"] == "user")
    assert user_event["parse_data"]["issue_type"]["name"] == "delivery"
    assert "frustration" in user_event["parse_data"]
    assert tracker["slots"]["playbook_step"] == "resolve_options"
    assert tracker["slots"]["playbook_steps"][:3] == ["acknowledge", "apologize", "explain"]
    assert tracker["slots"]["case_id"] == "CASE-501"


def test_dana_demo_through_rest(live_bot):
    dana = _customer(live_bot, "cust-1001")
    text = dana.text_of(dana.say("WHERE ARE MY HEADPHONES?! I was told they'd come yesterday. Ridiculous."))
    assert "CASE-501" in text and "severe weather" in text and "by email" in text
    text = dana.text_of(dana.say('/choose_option{"option":"reship_express"}'))
    assert "Your reference is CASE-501" in text and "credit" in text
    text = dana.text_of(dana.say("yes, thank you"))
    assert "Thank you for your patience" in text
    print("\n".join(dana.transcript))


def test_sam_demo_anonymous_then_verified(live_bot):
    sam = _customer(live_bot)
    first = sam.text_of(sam.say("Hi, I've been charged twice for the same order"))
    assert "email address" in first and "59.99" not in first
    text = sam.text_of(sam.say("sure, it's sam@example.com and order B2002"))
    assert "2 charges of $59.99" in text
    text = sam.text_of(sam.say('/choose_option{"option":"refund_duplicate"}'))
    assert "refunded" in text and "reference" in text
    print("\n".join(sam.transcript))


def test_priya_and_lee_demos(live_bot):
    priya = _customer(live_bot, "cust-1003")
    text = priya.text_of(priya.say("the replacement blender you sent is leaking as well. not happy."))
    assert "CASE-733" in text and "Send a replacement" not in json.dumps(priya.transcript)
    lee = _customer(live_bot, "cust-1004")
    text = lee.text_of(lee.say("my account is locked and I can't log in"))
    assert "locked" in text and "unlock" in json.dumps(lee.transcript).lower()
    print("\n".join(priya.transcript + lee.transcript))


def test_human_on_request(live_bot):
    dana = _customer(live_bot, "cust-1001")
    dana.say("my order A1001 is late")
    text = dana.text_of(dana.say("I want to speak to a real person"))
    assert "colleague" in text and dana.tracker()["slots"]["handed_off"] is True


BAD_INPUTS = [
    "", "   \t\n ", "x" * 100_000, "\x00\x01\x02 where\x1b[31m is my order \x7f", "🙃🙃🔥📦💀",
    "¿Dónde está mi pedido? Llevo una semana esperando", "我的订单在哪里", "مرحبا، أين طلبي",
    "my email is '; DROP TABLE customers; -- and order A1001' OR '1'='1",
    "<script>alert('x')</script> order <img src=x onerror=alert(1)>",
    '{"json": "not a message"}', "/choose_option{\"option\": \"<script>\"}", "/nonexistent_intent",
]


@pytest.mark.parametrize("message", BAD_INPUTS, ids=[f"bad-{i}" for i in range(len(BAD_INPUTS))])
def test_bad_input_gets_a_reply_and_every_event_is_kept(live_bot, message):
    visitor = _customer(live_bot)
    visitor.say("hello")
    replies = visitor.say(message)
    assert isinstance(replies, list)
    replies += visitor.say("where is my order?")
    assert any(r.get("text") for r in replies), "the bot answered nothing"
    assert all("Traceback" not in (r.get("text") or "") for r in replies)
    user_events = [e for e in visitor.tracker()["events"] if e["event"] == "user"]
    assert len(user_events) == 3 and user_events[1]["text"] == message.strip()  # Rasa trims whitespace


def test_hostile_ids_reveal_nothing(live_bot):
    visitor = _customer(live_bot)
    visitor.say("where is my order")
    text = visitor.text_of(visitor.say("nobody@example.com' OR '1'='1 and order A1001' OR 1=1 --"))
    text += visitor.text_of(visitor.say("' OR 1=1; -- order A1001"))
    text += visitor.text_of(visitor.say("<b>dana@example.com</b> B2002"))  # Dana's email, Sam's order
    for secret in ("Dana", "headphones", "CASE-501", "Sam", "59.99"):
        assert secret not in text
