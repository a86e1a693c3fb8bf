"""Mend's own dialogue policies: the tracking policy sets the conversation's slots in the Rasa server
before the first action runs; the listen policy waits for the customer once the bot has acted."""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.dialogue.listen_policy import ListenAfterBotActionPolicy
from bot.dialogue.tracking_policy import ConversationTrackingPolicy
from bot.tracker_store import CachedSQLTrackerStore

DOMAIN = Domain.load(str(Path(__file__).resolve().parents[1] / "domain.yml"))


def created(policy_class: Any, tmp_path: Path) -> Any:
    """The policy as Rasa's graph creates it, with its default configuration."""
    return policy_class.create(policy_class.get_default_config(), LocalModelStorage(tmp_path),
                               Resource(policy_class.__name__), ExecutionContext(GraphSchema({}), "test"))


@pytest.fixture
def policy(tmp_path: Path) -> ConversationTrackingPolicy:
    return created(ConversationTrackingPolicy, tmp_path)


def user(text: str, intent: str, level: str, score: float, metadata: Dict[str, Any] | None = None,
         issue: str = "delivery") -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 0.9}, metadata=metadata or {}, parse_data={
        "issue_type": {"name": issue, "confidence": 0.9},
        "frustration": {"score": score, "level": level, "cues": []}})


def tracker(*events: Any) -> DialogueStateTracker:
    return DialogueStateTracker.from_events("policy-test", [ActionExecuted("action_session_start"), SessionStarted(),
                                                            ActionExecuted("action_listen"), *events], DOMAIN.slots)


def slots_of(events: List[Any]) -> Dict[str, Any]:
    assert all(isinstance(event, SlotSet) for event in events)
    return {event.key: event.value for event in events}


def test_a_verified_angry_customer_is_known_and_angry_before_the_first_action(policy, db_url):
    conversation = tracker(user("WHERE ARE MY HEADPHONES?! ridiculous", "complain_delivery", "angry", 0.95,
                                metadata={"customer_id": "cust-1001"}))
    prediction = policy.predict_action_probabilities(conversation, DOMAIN)
    assert max(prediction.probabilities) == 0.0  # it never chooses the action
    slots = slots_of(prediction.events)
    assert slots["customer_id"] == "cust-1001" and slots["customer_name"] == "Dana" and slots["verified"] is True
    assert slots["issue_type"] == "delivery" and slots["frustration_level"] == "angry"


def test_nothing_is_set_again_once_an_action_answered(policy, db_url):
    conversation = tracker(user("where is my order", "complain_delivery", "calm", 0.1),
                           ActionExecuted("action_handle_complaint"))
    assert policy.predict_action_probabilities(conversation, DOMAIN).events == []


def test_unchanged_slots_are_not_repeated(policy, db_url):
    dana = {"customer_id": "cust-1001"}
    first = tracker(user("hello", "greet", "calm", 0.05, metadata=dana, issue="other"))
    set_once = slots_of(policy.predict_action_probabilities(first, DOMAIN).events)
    assert set_once["customer_id"] == "cust-1001" and set_once["verified"] is True
    second = tracker(user("hello", "greet", "calm", 0.05, metadata=dana, issue="other"),
                     *[SlotSet(name, value) for name, value in set_once.items()],
                     ActionExecuted("utter_greet"), ActionExecuted("action_listen"),
                     user("hi again", "greet", "calm", 0.05, metadata=dana, issue="other"))
    again = slots_of(policy.predict_action_probabilities(second, DOMAIN).events)
    assert not {"customer_id", "customer_name", "verified"} & set(again)
    assert len(again["frustration_trend"]) == 2  # what did change is set


def test_an_unknown_customer_id_is_not_trusted(policy, db_url):
    conversation = tracker(user("refund me", "complain_billing", "annoyed", 0.5, metadata={"customer_id": "cust-9999"},
                                issue="billing"))
    slots = slots_of(policy.predict_action_probabilities(conversation, DOMAIN).events)
    assert "customer_id" not in slots and slots.get("verified") is not True


def test_without_the_case_database_the_mood_is_still_tracked(policy, monkeypatch):
    monkeypatch.setenv("MEND_DATABASE_URL", "postgresql+psycopg2://nobody@127.0.0.1:1/none")
    conversation = tracker(user("THIS IS THE THIRD TIME", "complain_delivery", "angry", 0.97,
                                metadata={"customer_id": "cust-1001"}))
    slots = slots_of(policy.predict_action_probabilities(conversation, DOMAIN).events)
    assert slots["frustration_level"] == "angry" and slots["issue_type"] == "delivery"


@pytest.fixture
def listen(tmp_path: Path) -> ListenAfterBotActionPolicy:
    return created(ListenAfterBotActionPolicy, tmp_path)


def test_after_the_bot_acted_it_listens_above_the_fallback_and_below_a_rule(listen):
    answered = tracker(user("my parcel is late", "complain_delivery", "calm", 0.1),
                       ActionExecuted("utter_apologize"))  # e.g. an agent's reply recorded as an action
    scores = listen.predict_action_probabilities(answered, DOMAIN).probabilities
    best = max(range(len(scores)), key=scores.__getitem__)
    assert DOMAIN.action_names_or_texts[best] == "action_listen" and 0.3 < scores[best] < 1.0


def test_a_new_customer_message_is_left_to_the_rules(listen):
    waiting = tracker(user("my parcel is late", "complain_delivery", "calm", 0.1))
    assert max(listen.predict_action_probabilities(waiting, DOMAIN).probabilities) == 0.0


def test_malformed_parse_data_is_tracked_without_error_and_kept(policy, db_url, tmp_path):
    """Events appended through Rasa's HTTP API can carry anything: no intent, a confidence that is
    not a number, frustration that is not a mapping, a 100 KB text, a hostile customer id."""
    conversation = tracker()
    conversation.update(UserUttered("x" * 100_000, None, metadata={"customer_id": "' OR 1=1 --"}, parse_data={
        "issue_type": {"name": "delivery", "confidence": "very"}, "frustration": "furious"}))
    slots = slots_of(policy.predict_action_probabilities(conversation, DOMAIN).events)
    assert slots.get("verified") is not True and "customer_id" not in slots
    store = CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "tracker.db"))
    asyncio.run(store.save(conversation))
    again = asyncio.run(CachedSQLTrackerStore(DOMAIN, dialect="sqlite", db=str(tmp_path / "tracker.db"))
                        .retrieve("policy-test"))
    assert [e.text for e in again.events if isinstance(e, UserUttered)] == ["x" * 100_000]
