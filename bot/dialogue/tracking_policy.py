"""Keeps the conversation-level slots current, inside the Rasa server, after every customer message.

Who the customer is (from the verified ``customer_id`` in the message metadata), what the
conversation is about and how upset the customer is (the messages so far, repeat contacts on
the case, failed bot turns) are slots that responses and actions depend on: ``utter_apologize``
varies with ``frustration_level``. They must be set before the first action after a message runs.

A Rasa policy may return events with its prediction, and Rasa applies them before it runs the
predicted action (``PolicyPrediction.events``). This policy predicts nothing (all-zero scores,
so it never chooses an action) and returns those slot events for the first prediction after a
customer message. Doing this in-process replaced a custom slot mapping that cost a round trip to
the action server on every message (see bench/latency.py).

The case database is read directly (two indexed lookups at most); see bot/recovery/tracking.py
for what happens while it is unreachable.

It is also where a tapped button gets its frustration reading. Rasa parses a ``/intent{...}``
payload with its regex handler, not the NLU pipeline, so the parse has no ``frustration``; the
reading (``bot.recovery.frustration.tap_reading``, from the tapped button's title, found in the
bot message that offered it) is written into that user event's parse data before the slots are
computed. The tracker is saved after this prediction, so the stored event, the REST tracker's
``latest_message`` (what the gateway stores per message for the console), later turns'
conversation level and the trainer's recorded conversations all carry it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, FrozenSet, List, Optional, Text

from rasa.core.constants import POLICY_PRIORITY
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker

from bot.recovery.conversation import TurnInput
from bot.recovery.frustration import tap_reading
from bot.recovery.tracker_state import turn_input
from bot.recovery.tracking import changed_slots, tracked_slots


@lru_cache(maxsize=4)
def _slot_names(domain: Domain) -> FrozenSet[str]:
    return frozenset(slot.name for slot in domain.slots)


def awaiting_first_action(tracker: DialogueStateTracker) -> Optional[UserUttered]:
    """The customer message no action has answered yet, if the tracker ends with one."""
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return event
        if isinstance(event, ActionExecuted):
            return None
    return None


def is_unrated_tap(event: UserUttered) -> bool:
    """A button payload (or a typed ``/intent``): Rasa skipped the NLU pipeline, so no reading."""
    text = (event.text or "").lstrip()
    return text.startswith("/") and not isinstance((event.parse_data or {}).get("frustration"), dict)


def tapped_title(tracker: DialogueStateTracker, event: UserUttered, lookback: int = 200) -> Optional[str]:
    """The title of the button whose payload the customer sent, from the latest bot message that offered it."""
    payload = (event.text or "").strip()
    for earlier in list(tracker.events)[-lookback:][::-1]:
        if not isinstance(earlier, BotUttered):
            continue
        for button in (earlier.data or {}).get("buttons") or []:
            if isinstance(button, dict) and str(button.get("payload") or "").strip() == payload:
                return str(button.get("title") or "") or None
    return None


def rate_tap(tracker: DialogueStateTracker, event: UserUttered) -> None:
    """Give a tap its frustration reading, in the user event itself (see the module docstring)."""
    if is_unrated_tap(event):
        event.parse_data["frustration"] = tap_reading(tapped_title(tracker, event), event.intent_name)


def turn_for(tracker: DialogueStateTracker) -> TurnInput:
    events = [{"event": "user", "text": e.text, "parse_data": e.parse_data}
              for e in tracker.events if isinstance(e, UserUttered)]
    latest = tracker.latest_message.parse_data if tracker.latest_message else {}
    return turn_input(tracker.sender_id, tracker.current_slot_values(), latest, events)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class ConversationTrackingPolicy(Policy):
    """Sets identity, issue type and conversation frustration slots; never predicts an action."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # Rasa requires a priority; the lowest, since this policy never competes for the action.
        return {POLICY_PRIORITY: 0}

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        return self._resource  # nothing to learn: the frustration model is trained in the NLU pipeline

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain,
                                     rule_only_data: Optional[Dict[Text, Any]] = None,
                                     **kwargs: Any) -> PolicyPrediction:
        events: List[SlotSet] = []
        latest = awaiting_first_action(tracker)
        if latest is not None:
            rate_tap(tracker, latest)
            known = _slot_names(domain)
            slots = {name: value for name, value in tracked_slots(turn_for(tracker)).items() if name in known}
            events = [SlotSet(name, value)
                      for name, value in changed_slots(slots, tracker.current_slot_values()).items()]
        return self._prediction(self._default_predictions(domain), events=events)

