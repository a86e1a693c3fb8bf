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

While a person holds the conversation, the gateway only logs the customer's messages
(``POST /conversations/{id}/messages``: parsed, slot mappings run, no prediction), so no policy
runs. The same tracking then runs in Rasa's slot-extraction step for those messages
(``track_logged_messages``), and the tracker the gateway gets back already carries the slots: one
function, run once per message, in Rasa, and one record every page reads.
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
        return self._prediction(self._default_predictions(domain), events=tracking_events(tracker, domain))


def tracking_events(tracker: DialogueStateTracker, domain: Domain) -> List[SlotSet]:
    """The slot events the customer's latest message brings (none once an action ran after it)."""
    latest = awaiting_first_action(tracker)
    if latest is None:
        return []
    rate_tap(tracker, latest)
    known = _slot_names(domain)
    slots = {name: value for name, value in tracked_slots(turn_for(tracker)).items() if name in known}
    return [SlotSet(name, value) for name, value in changed_slots(slots, tracker.current_slot_values()).items()]


# -- messages Rasa only logs ----------------------------------------------------------------------
_ORIGINAL_EXTRACT_SLOTS: Optional[Any] = None


def is_logged_only(event: Any) -> bool:
    """A customer message logged through the HTTP API (``/messages``), not received on a channel:
    no prediction follows it, so no policy tracks it. Channels (the REST webhook, external intents)
    name themselves in ``input_channel``; the logging endpoint names none."""
    return isinstance(event, UserUttered) and not event.input_channel


def track_logged_messages() -> None:
    """Run the tracking in Rasa's slot extraction for messages that are only logged (idempotent)."""
    global _ORIGINAL_EXTRACT_SLOTS
    from rasa.core.processor import MessageProcessor

    if _ORIGINAL_EXTRACT_SLOTS is not None:
        return
    _ORIGINAL_EXTRACT_SLOTS = MessageProcessor.run_action_extract_slots

    async def run_action_extract_slots(self: Any, output_channel: Any, tracker: DialogueStateTracker) -> DialogueStateTracker:
        tracker = await _ORIGINAL_EXTRACT_SLOTS(self, output_channel, tracker)
        latest = awaiting_first_action(tracker)
        if latest is not None and is_logged_only(latest):
            tracker.update_with_events(tracking_events(tracker, self.domain), self.domain)
        return tracker

    MessageProcessor.run_action_extract_slots = run_action_extract_slots


track_logged_messages()  # Rasa imports this module when it loads a model trained with this policy

