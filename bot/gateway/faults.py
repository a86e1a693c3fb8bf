"""When a part of Mend fails: what the gateway waits for, what it tells the customer, and why a bot turn was silent.

The customer must never be left without an answer: a silent or slow bot, a dead action server,
an unreachable case database each get a clear message within seconds, and the conversation
goes to the agents' queue with the reason. The timings are the ``gateway.faults`` section of
the settings file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional

from bot.settings import section

# What the customer reads when the bot cannot answer (Rasa down, hung, or its actions failing).
BOT_UNAVAILABLE = ("I'm sorry, I can't answer right now. A person from our team will reply here shortly; "
                   "your message is saved.")
# The bot is taking longer than usual: said once per message, not stored.
BOT_SLOW = ("This is taking a little longer than usual. If I can't answer in a moment, a person from our team "
            "will reply here; your message is saved.")
# A customer message the gateway could not store (the database is unreachable): the widget keeps it and resends.
NOT_STORED = ("We can't send your message right now. It is kept here and will be sent automatically "
              "as soon as we can.")
# The first message stored after that: a person checks the conversation.
STORED_AFTER_OUTAGE = ("Your message is saved now; thank you for waiting. Because of a problem on our side, "
                       "a person from our team will reply here shortly.")

# Rasa's own actions: they run inside Rasa, without the action server.
RASA_ACTIONS = {"action_listen", "action_session_start", "action_restart", "action_default_fallback",
                "action_deactivate_loop", "action_revert_fallback_events", "action_default_ask_affirmation",
                "action_default_ask_rephrase", "action_back", "action_two_stage_fallback", "action_unlikely_intent",
                "action_extract_slots", "action_send_text"}


@dataclass(frozen=True)
class FaultSettings:
    bot_slow_seconds: float = 4.0      # no bot answer yet: tell the customer what happens next
    bot_timeout_seconds: float = 12.0  # still none: a person takes over (reason bot_timeout)
    store_timeout_seconds: float = 3.0  # storing a customer message; then the widget is told to retry
    retry_seconds: float = 2.0         # how soon the widget resends, and the gateway retries what failed
    ping_seconds: float = 1.0          # the widget pings this often ...
    pong_timeout_seconds: float = 1.5  # ... and shows a lost connection when nothing came back for this long

    @classmethod
    def from_settings(cls) -> "FaultSettings":
        raw = section("gateway").get("faults") or {}
        defaults = cls()
        values = {name: float(raw.get(name, getattr(defaults, name))) for name in cls.__dataclass_fields__}
        return cls(**{name: max(0.1, value) for name, value in values.items()})

    def for_widget(self) -> Dict[str, int]:
        """The widget's heartbeat, in milliseconds (sent with ``welcome``)."""
        return {"ping_ms": int(self.ping_seconds * 1000), "timeout_ms": int(self.pong_timeout_seconds * 1000),
                "retry_ms": int(self.retry_seconds * 1000)}


class NotStored(Exception):
    """A customer message the database did not take in time: the widget keeps it and resends it."""

    def __init__(self, retry_seconds: float) -> None:
        super().__init__("message not stored")
        self.retry_seconds = retry_seconds


def spoken(replies: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The bot replies that say something (Rasa may also return empty or image-only ones)."""
    return [r for r in replies if isinstance(r, dict) and str(r.get("text") or "").strip()]


def silent_turn_reason(events: List[Dict[str, Any]]) -> str:
    """Why Rasa answered the latest customer message with nothing.

    When the action server is down or fails, Rasa 3.6 logs "Failed to run custom action",
    records the action as executed with none of its events, predicts ``action_listen`` and
    returns 200 with an empty list. Every Mend custom action says something, so a custom action
    followed directly by another action means the action server failed.
    """
    start = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=-1)
    turn = events[start + 1:]
    for index, event in enumerate(turn):
        if event.get("event") == "action" and str(event.get("name") or "") not in RASA_ACTIONS \
                and not str(event.get("name") or "").startswith("utter_"):
            after = turn[index + 1] if index + 1 < len(turn) else None
            if after is None or after.get("event") == "action":
                return "actions_unavailable"
    return "bot_no_reply"


def user_event_index(events: List[Dict[str, Any]], text: str, occurrence: int) -> Optional[int]:
    """The position of the ``occurrence``-th (1-based) customer event with this text, if Rasa has it."""
    seen = 0
    for index, event in enumerate(events):
        if event.get("event") == "user" and event.get("text") == text:
            seen += 1
            if seen == occurrence:
                return index
    return None


def replies_after(events: List[Dict[str, Any]], index: int) -> List[Dict[str, Any]]:
    """What the bot said to the customer event at ``index``, up to the next customer event."""
    replies = []
    for event in events[index + 1:]:
        if event.get("event") == "user":
            break
        if event.get("event") == "bot" and str(event.get("text") or "").strip():
            data = event.get("data") or {}
            replies.append({"text": event["text"], "buttons": data.get("buttons") or []})
    return replies

# What the agent reads in the handoff summary, per reason.
HANDOFF_SUMMARIES = {
    "bot_unavailable": "The assistant (Rasa) could not be reached; see the customer's last message.",
    "bot_timeout": "The assistant (Rasa) did not answer in time; see the customer's last message.",
    "actions_unavailable": "The assistant's action server did not run its action (down or failing); "
                           "see the customer's last message.",
    "bot_no_reply": "The assistant answered nothing; see the customer's last message.",
    "case_db_unavailable": "The case database could not be reached; see the customer's messages.",
    "gateway_error": "The gateway failed while handling a message; see the customer's last message.",
}
