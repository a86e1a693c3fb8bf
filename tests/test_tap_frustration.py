"""Button taps get a frustration reading, and the conversation level moves with what customers say.

A tap (``/intent{...}``) skips Rasa's NLU pipeline; the tracking policy reads it from the tapped
button's title. Checked here in process, through Rasa's REST channel (the stored tracker) and through
the gateway (the widget's tap, the console's per-message reading).
"""
from __future__ import annotations

import json
import uuid

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.dialogue.tracking_policy import rate_tap
from bot.gateway.identity import sign_customer_token
from bot.recovery.frustration import conversation_frustration, tap_reading
from tests.conftest import _reset
from tests.rest_client import Customer, get, post
from tests.test_gateway import PASSWORD, TOKEN_SECRET, _account, gateway, is_message  # noqa: F401

CHECK_IN_BUTTONS = [{"title": "Yes, all good", "payload": "/affirm"}, {"title": "No, not yet", "payload": "/deny"}]


# -- the reading itself -----------------------------------------------------------------------------
@pytest.mark.parametrize("title, level", [
    ("No, not yet", "annoyed"), ("No, still broken", "annoyed"), ("It still doesn't work", "annoyed"),
    ("Yes, all good", "calm"), ("Yes, that works", "calm"), ("Send a new one by express, free", "calm"),
])
def test_a_tap_reads_as_what_the_chosen_words_say(title, level):
    reading = tap_reading(title, "deny")
    assert reading["level"] == level and reading["source"] == "tap"
    assert f'tap: "{title}"' in (reading["cues"] if level == "annoyed" else reading["calm_cues"])
    assert reading["score"] < 0.62  # a tap has no tone of voice: never angry


def test_unresolved_tap_scores_above_a_chosen_option_and_thanks_below_it():
    assert tap_reading("No, not yet")["score"] > tap_reading("Cancel and refund in full")["score"] \
        > tap_reading("Yes, that works")["score"]
    assert tap_reading(None, "choose_option")["calm_cues"] == ['tap: "choose option"']  # a typed /intent


def test_the_policy_rates_a_tap_from_the_button_that_offered_it():
    tracker = DialogueStateTracker.from_events("t", [
        ActionExecuted("action_listen"),
        UserUttered("my blender leaks", {"name": "complain_product", "confidence": 0.9},
                    parse_data={"frustration": {"score": 0.3, "level": "calm", "cues": []}}),
        ActionExecuted("action_follow_up"),
        BotUttered("Is everything sorted now?", {"buttons": CHECK_IN_BUTTONS}),
        ActionExecuted("action_listen"),
        UserUttered("/deny", {"name": "deny", "confidence": 1.0}),
    ])
    tap = tracker.latest_message
    rate_tap(tracker, tap)
    assert tap.parse_data["frustration"]["level"] == "annoyed"
    assert tap.parse_data["frustration"]["cues"] == ['tap: "No, not yet"']
    assert tracker.current_state()["latest_message"]["frustration"]["source"] == "tap"
    typed = tracker.events[1]
    rate_tap(tracker, typed)  # typed words keep the model's reading
    assert typed.parse_data["frustration"] == {"score": 0.3, "level": "calm", "cues": []}


def test_taps_count_in_the_conversation_level_but_weigh_less_than_words():
    angry = {"score": 0.9, "level": "angry"}
    with_option = conversation_frustration([angry, tap_reading("Send a new one by express, free"), angry])
    assert with_option.angry_streak == 2  # a tap neither ends nor extends a run of angry messages
    after_option = conversation_frustration([angry, tap_reading("Send a new one by express, free")])
    after_words = conversation_frustration([angry, {"score": 0.1, "level": "calm"}])
    assert after_words.score < after_option.score < 0.9 and after_option.level == "angry"
    calm = {"score": 0.1, "level": "calm"}
    assert conversation_frustration([calm, tap_reading("No, not yet")]).score > conversation_frustration([calm]).score
    assert len(conversation_frustration([calm, tap_reading("No, not yet")]).trend) == 2


# -- the live bot -----------------------------------------------------------------------------------
def _level_after(parses):
    return conversation_frustration([p["frustration"] for p in parses])


def test_conversation_level_climbs_on_a_repeat_and_falls_on_thanks_with_the_real_model(live_bot):
    said = ["Hi, where is my parcel? It was due on Monday.", "this is the third time I ask, still nothing"]
    parses = [post(f"{live_bot.rasa_url}/model/parse", {"text": t}) for t in said]
    first, repeated = _level_after(parses[:1]), _level_after(parses)
    assert any("third time" in c for c in parses[1]["frustration"]["cues"])
    assert parses[1]["frustration"]["level"] in ("annoyed", "angry") and repeated.score > first.score + 0.2
    parses.append(post(f"{live_bot.rasa_url}/model/parse", {"text": "thanks, that works"}))
    thanked = _level_after(parses)
    assert parses[2]["frustration"]["level"] == "calm"
    assert 'gratitude: "that works"' in parses[2]["frustration"]["calm_cues"]  # shown to agents as calm evidence
    assert thanked.score < repeated.score


@pytest.fixture
def fresh_demo_data(live_bot):
    """Dana's case as seeded: each test walks it from the complaint to the options."""
    _reset(live_bot.case_db_url)


def _user_events(tracker):
    return [e for e in tracker["events"] if e["event"] == "user" and not (e.get("text") or "").startswith("EXTERNAL")]


def test_taps_through_rest_are_stored_with_a_reading_and_move_the_conversation_level(live_bot, fresh_demo_data):
    dana = Customer(live_bot.rasa_url, f"tap-{uuid.uuid4().hex[:10]}", "cust-1001")
    replies = dana.say("where are my headphones? they were promised days ago")
    [offer] = [r for r in replies if r.get("buttons")]
    choice = offer["buttons"][0]
    dana.say(choice["payload"])
    tracker = dana.tracker()
    tap = _user_events(tracker)[-1]
    assert tap["text"] == choice["payload"]
    reading = tap["parse_data"]["frustration"]
    assert reading["source"] == "tap" and reading["level"] == "calm"
    assert reading["calm_cues"] == [f'tap: "{choice["title"]}"']
    assert tracker["latest_message"]["frustration"] == reading
    assert len(tracker["slots"]["frustration_trend"]) == 2  # the tap counts in the conversation level

    post(f"{live_bot.rasa_url}/conversations/{dana.sender}/trigger_intent", {"name": "EXTERNAL_follow_up"})
    check_in = [e for e in dana.tracker()["events"] if e["event"] == "bot" and (e.get("data") or {}).get("buttons")][-1]
    assert [b["title"] for b in check_in["data"]["buttons"]] == ["Yes, all good", "No, not yet"]
    before = dana.tracker()["slots"]["frustration_score"]
    dana.say("/deny")
    tracker = dana.tracker()
    reading = _user_events(tracker)[-1]["parse_data"]["frustration"]
    assert reading["level"] == "annoyed" and reading["cues"] == ['tap: "No, not yet"']
    assert len(tracker["slots"]["frustration_trend"]) == 3 and tracker["slots"]["frustration_score"] > before
    # Once stored, the reading stays: a later message does not re-rate or drop it.
    dana.say("ok")
    assert _user_events(dana.tracker())[-2]["parse_data"]["frustration"] == reading


async def test_the_console_shows_a_reading_for_a_tapped_button(fresh_demo_data, gateway):  # noqa: F811
    agent = gateway.agent()
    assert await agent.login("maria", PASSWORD) == 302
    widget = gateway.widget()
    await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
    await widget.send("where are my headphones? they were promised days ago")
    offer = await widget.until(lambda e: is_message("bot")(e) and e["message"]["buttons"])
    choice = offer["message"]["buttons"][-1]
    await widget.send(choice["title"], payload=choice["payload"])
    await widget.until(lambda e: is_message("bot")(e) and e["message"]["id"] > offer["message"]["id"])
    await widget.settle(1.0)
    status, detail = await agent.get(f"/api/conversations/{widget.conversation_id}")
    assert status == 200
    tapped = [m for m in detail["messages"] if m["sender"] == "customer"][-1]
    assert tapped["text"] == choice["title"]
    reading = tapped["frustration"]
    assert reading and reading["level"] in ("calm", "annoyed") and reading["source"] == "tap", json.dumps(tapped)
    assert f'tap: "{choice["title"]}"' in reading["cues"] + reading["calm_cues"]
    await widget.close()
