"""What the bot did in a conversation, as the agent's console lists it: one line per Rasa event a person
needs ("read as a delivery issue, angry", "looked up the case", "case C-1042", "handed to a person: angry").

Rasa's events are the record (the tracker), so the same function describes them wherever they come from:
the tracker when a console opens a conversation (complete, even for events the broker missed), and the
RabbitMQ stream while it is open (bot.gateway.event_feed). Events that only restate what the transcript
already shows (the bot's words, the customer's text) or Rasa's own bookkeeping are left out.

Event data comes from outside this process (a queue anyone with broker access can write to): every field
is checked, every text is cut to a length a console can show, and nothing is passed on as markup.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Iterable, List, Optional

MAX_TEXT = 160
CODE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")
MAX_ITEMS = 300  # the newest items of a conversation a console is sent when it opens one

# Rasa's bookkeeping: not something the bot "did" for the customer.
QUIET_ACTIONS = frozenset({"action_listen", "action_session_start", "action_extract_slots",
                           "action_unlikely_intent", "action_back", "action_restart"})

ACTION_LABELS = {
    "action_handle_complaint": "Looked up the customer's case and order",
    "action_verify_customer": "Checked who the customer is",
    "action_apply_resolution": "Applied a resolution",
    "action_answer_confirmation": "Answered a confirmation",
    "action_close_loop": "Closed the loop",
    "action_follow_up": "Scheduled a follow-up",
    "action_handoff": "Handed the conversation to a person",
    "action_fallback": "Did not understand (fallback)",
    "action_default_fallback": "Did not understand (fallback)",
    "action_two_stage_fallback": "Asked the customer to rephrase",
}

# Slots an agent acts on, with their labels; the others are inputs to these (scores, streaks) or
# personal data the console shows elsewhere (claimed email, name).
SLOT_LABELS = {
    "issue_type": "Issue",
    "frustration_level": "Frustration",
    "case_id": "Case",
    "order_id": "Order",
    "verified": "Identity verified",
    "repeat_failure": "Repeat failure",
    "offered_options": "Options offered",
    "resolution": "Resolution",
    "compensation": "Compensation",
    "reference": "Reference",
    "playbook_step": "Playbook step",
    "handed_off": "Handed off",
    "handoff_reason": "Handoff reason",
}


def _text(value: Any, limit: int = MAX_TEXT) -> str:
    text = value if isinstance(value, str) else str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timestamp(event: Dict[str, Any]) -> Optional[float]:
    value = event.get("timestamp")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _percent(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return ""
    return f" ({round(max(0.0, min(1.0, float(value))) * 100)}%)"


def _humanize(name: str) -> str:
    return _text(name.replace("_", " ").strip().capitalize(), 80)


def _policy(name: Any) -> str:
    """``policy_2_RulePolicy`` -> ``RulePolicy``: the class that chose the action."""
    if not isinstance(name, str) or not name:
        return ""
    return _text(name.split("_")[-1], 60)


def _code(value: Any, limit: int) -> str:
    """A slot's machine code as words ("customer_request" -> "customer request"); other text as it is."""
    text = _text(value, limit)
    return text.replace("_", " ") if CODE.fullmatch(text) else text


def _value(value: Any) -> str:
    if value is None:
        return "cleared"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return _text(", ".join(_code(v, 40) for v in value[:8] if v is not None) or "none")
    if isinstance(value, dict):
        return _code(value.get("name") or "", 80) or "set"
    return _code(value, MAX_TEXT)


def _reading(parse: Any) -> Optional[str]:
    """How the NLU read a customer message: issue and frustration, as the console states them."""
    if not isinstance(parse, dict):
        return None
    parts = []
    issue = parse.get("issue_type")
    if isinstance(issue, dict) and isinstance(issue.get("name"), str) and issue["name"]:
        parts.append(f"{_humanize(issue['name'])} issue{_percent(issue.get('confidence'))}")
    frustration = parse.get("frustration")
    if isinstance(frustration, dict) and isinstance(frustration.get("level"), str) and frustration["level"]:
        parts.append(f"frustration {_text(frustration['level'], 20)}")
    intent = parse.get("intent")
    if not parts and isinstance(intent, dict) and isinstance(intent.get("name"), str) and intent["name"]:
        parts.append(f"intent {_text(intent['name'], 60)}{_percent(intent.get('confidence'))}")
    return "Read the customer's message: " + ", ".join(parts) if parts else None


def describe(event: Any) -> Optional[Dict[str, Any]]:
    """One console line for a Rasa event (as the tracker or the broker has it), or None to leave it out.

    ``key`` identifies the event (a stream may deliver one twice; a console shows it once); ``at`` is
    Rasa's timestamp (seconds), by which consoles order the lines.
    """
    if not isinstance(event, dict):
        return None
    at = _timestamp(event)
    kind = event.get("event")
    if at is None or not isinstance(kind, str):
        return None
    item: Optional[Dict[str, Any]] = None
    if kind == "user":
        text = _reading(event.get("parse_data"))
        if text:
            item = {"kind": "reading", "text": text}
    elif kind == "action":
        name = event.get("name")
        if isinstance(name, str) and name and name not in QUIET_ACTIONS:
            label = ACTION_LABELS.get(name) or (f"Replied: {_humanize(name[6:])}" if name.startswith("utter_")
                                                else _humanize(name))
            policy = _policy(event.get("policy"))
            why = f"{policy}{_percent(event.get('confidence'))}" if policy else ""
            item = {"kind": "action", "text": label, "name": _text(name, 80), "why": why}
    elif kind == "slot":
        name = event.get("name")
        if isinstance(name, str) and name in SLOT_LABELS:
            item = {"kind": "slot", "text": f"{SLOT_LABELS[name]}: {_value(event.get('value'))}",
                    "name": name}
    elif kind == "action_execution_rejected":
        name = event.get("name")
        if isinstance(name, str) and name:
            item = {"kind": "error", "text": f"Could not run {_text(name, 80)}"}
    if item is None:
        return None
    item["at"] = at
    item["key"] = f"{at:.6f}:{kind}:{item.get('name') or ''}"
    return item


def describe_all(events: Iterable[Any], limit: int = MAX_ITEMS) -> List[Dict[str, Any]]:
    """The console lines of a tracker's events, oldest first, the newest ``limit`` of them."""
    items = [item for item in (describe(e) for e in events) if item is not None]
    items.sort(key=lambda item: item["at"])
    return items[-limit:] if limit > 0 else []
