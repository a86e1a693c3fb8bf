"""Drive the real custom actions the way Rasa does, without a Rasa server.

For each customer message: the conversation-level slots are tracked (as Mend's tracking policy
does in the Rasa server) and applied, then the turn action the rules would pick runs against the
real database.
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import actions as mend_actions
from bot.recovery.tracker_state import turn_input
from bot.recovery.tracking import changed_slots, tracked_slots

RULES = {
    "greet": None, "chitchat": None,
    "provide_details": mend_actions.ActionVerifyCustomer, "choose_option": mend_actions.ActionApplyResolution,
    "affirm": mend_actions.ActionAnswerConfirmation, "deny": mend_actions.ActionAnswerConfirmation,
    "thank": mend_actions.ActionCloseLoop, "goodbye": mend_actions.ActionCloseLoop,
    "request_human": mend_actions.ActionHandoff, "nlu_fallback": mend_actions.ActionFallback,
    "EXTERNAL_follow_up": mend_actions.ActionFollowUp,
}


class SimulatedChat:
    def __init__(self, sender: str = "test-conv", metadata: Optional[Dict[str, Any]] = None) -> None:
        self.sender = sender
        self.metadata = metadata or {}
        self.slots: Dict[str, Any] = {"verified": False, "frustration_level": "calm", "frustration_score": 0.0,
                                      "angry_streak": 0.0, "failed_turns": 0.0, "handed_off": False,
                                      "verification_attempts": 0.0}
        self.events: List[Dict[str, Any]] = []
        self.transcript: List[Dict[str, Any]] = []
        self.all_events: List[Dict[str, Any]] = []

    def _tracker(self, latest: Dict[str, Any]) -> Tracker:
        return Tracker(self.sender, dict(self.slots), latest, list(self.events), False, None, None, None)

    def _run(self, action_class, latest: Dict[str, Any]) -> List[Dict[str, Any]]:
        dispatcher = CollectingDispatcher()
        events = asyncio.run(action_class().run(dispatcher, self._tracker(latest), {}))
        for event in events:
            self.all_events.append(event)
            if event.get("event") == "slot":
                self.slots[event["name"]] = event["value"]
        self.events.extend(events)
        return dispatcher.messages

    def _track(self, latest: Dict[str, Any]) -> None:
        turn = turn_input(self.sender, dict(self.slots), latest, self.events)
        for name, value in changed_slots(tracked_slots(turn), self.slots).items():
            event = {"event": "slot", "name": name, "value": value}
            self.all_events.append(event)
            self.events.append(event)
            self.slots[name] = value

    def say(self, text: str, intent: str, entities: Optional[Dict[str, str]] = None,
            level: str = "calm", score: Optional[float] = None, issue_type: Optional[str] = None,
            issue_confidence: float = 0.9) -> List[Dict[str, Any]]:
        score = {"calm": 0.1, "annoyed": 0.5, "angry": 0.9}[level] if score is None else score
        latest = {
            "text": text, "intent": {"name": intent, "confidence": 0.9},
            "entities": [{"entity": k, "value": v} for k, v in (entities or {}).items()],
            "metadata": self.metadata, "frustration": {"score": score, "level": level, "cues": []},
            "issue_type": {"name": issue_type or (intent[len("complain_"):] if intent.startswith("complain_") else "other"),
                           "confidence": issue_confidence},
        }
        self.events.append({"event": "user", "text": text, "parse_data": latest, "metadata": self.metadata})
        self._track(latest)
        action = mend_actions.ActionHandleComplaint if intent.startswith("complain_") else RULES.get(intent)
        messages = self._run(action, latest) if action else []
        self.transcript.append({"user": text, "bot": messages})
        return messages

    @staticmethod
    def texts(messages: List[Dict[str, Any]]) -> str:
        return "\n".join(m.get("text") or f"<{m.get('response')}>" for m in messages)
