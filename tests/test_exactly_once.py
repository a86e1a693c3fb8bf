"""A customer message enters Rasa's tracker once, however often a gateway sends it (bot/rasa_exactly_once.py):
the 1,000-customer load test found a message twice in a tracker after a gateway, whose first request timed out,
logged it again while Rasa was still working through the first.

Against the real Rasa server with the trained model (``live_bot``), through its HTTP API as the gateway uses it.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List

from bot.gateway.rasa_client import MESSAGE_ID
from tests.rest_client import get, post

LATE = "my headphones never arrived and nobody tells me anything"


def _user_events(rasa_url: str, sender: str) -> List[Dict[str, Any]]:
    tracker = get(f"{rasa_url}/conversations/{sender}/tracker?include_events=ALL")
    return [e for e in tracker["events"] if e["event"] == "user"]


def _turn(rasa_url: str, sender: str, text: str, message_id: Any) -> List[Dict[str, Any]]:
    return post(f"{rasa_url}/webhooks/rest/webhook",
                {"sender": sender, "message": text, "metadata": {MESSAGE_ID: message_id, "customer_id": "cust-1001"}})


def test_a_turn_sent_twice_is_one_turn_and_the_second_gets_the_first_ones_replies(live_bot) -> None:
    sender = f"once-{uuid.uuid4().hex[:10]}"
    first = _turn(live_bot.rasa_url, sender, LATE, 9001)
    assert first and all(r.get("text") for r in first)
    again = _turn(live_bot.rasa_url, sender, LATE, 9001)  # the gateway's resend after a timeout
    assert [r.get("text") for r in again] == [r.get("text") for r in first]
    assert [e["text"] for e in _user_events(live_bot.rasa_url, sender)] == [LATE]
    # The same words as a new message (another id) are a new turn.
    _turn(live_bot.rasa_url, sender, LATE, 9002)
    assert [e["text"] for e in _user_events(live_bot.rasa_url, sender)] == [LATE, LATE]


def test_the_same_message_sent_at_once_to_rasa_twice_is_logged_once(live_bot) -> None:
    sender = f"once-{uuid.uuid4().hex[:10]}"
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: _turn(live_bot.rasa_url, sender, LATE, 9100), range(2)))
    assert [r.get("text") for r in replies[0]] == [r.get("text") for r in replies[1]]  # one turn, told twice
    assert len(_user_events(live_bot.rasa_url, sender)) == 1


def test_a_message_logged_while_a_person_holds_the_chat_and_sent_again_is_logged_once(live_bot) -> None:
    sender = f"once-{uuid.uuid4().hex[:10]}"
    _turn(live_bot.rasa_url, sender, "I want to talk to a person", 9200)
    text = "are you still there?? this is RIDICULOUS"
    parse = post(f"{live_bot.rasa_url}/model/parse", {"text": text})
    parse[MESSAGE_ID] = 9201  # as the gateway logs it (Rasa's endpoint drops metadata)
    for _ in range(2):
        tracker = post(f"{live_bot.rasa_url}/conversations/{sender}/messages",
                       {"text": text, "sender": "user", "parse_data": parse})
        assert tracker["slots"]["frustration_level"] in {"annoyed", "angry"}  # tracked as it was logged
    assert [e["text"] for e in _user_events(live_bot.rasa_url, sender)].count(text) == 1
    # ... and a bot turn carrying the id of a message already logged is not run again.
    assert _turn(live_bot.rasa_url, sender, text, 9201) == []
    assert [e["text"] for e in _user_events(live_bot.rasa_url, sender)].count(text) == 1


def test_messages_without_an_id_are_handled_as_rasa_handles_them(live_bot) -> None:
    sender = f"once-{uuid.uuid4().hex[:10]}"
    for _ in range(2):
        post(f"{live_bot.rasa_url}/webhooks/rest/webhook", {"sender": sender, "message": "hello"})
    assert [e["text"] for e in _user_events(live_bot.rasa_url, sender)] == ["hello", "hello"]
