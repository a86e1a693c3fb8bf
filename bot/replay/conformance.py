"""Playbook conformance of one conversation: steps done and in which order, what is missing, how fast the
acknowledgement came, and where the bot asked for something the case history already held."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional

from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered

from bot.recovery.playbook import STEPS

# Reaching a step through the recovery turn means the steps before it in the turn happened too.
IMPLIED = {"resolve_options": ["acknowledge", "apologize", "explain"], "explain": ["acknowledge"],
           "compensate": ["resolve_options"]}
ASKS_FOR_IDENTITY = re.compile(r"\b(email address|order number)\b", re.IGNORECASE)
ASKS_WHAT_HAPPENED = re.compile(r"\bwhat went wrong\b|\btell me (more )?about the problem\b", re.IGNORECASE)


def _add(done: List[str], *steps: str) -> None:
    for step in steps:
        if step in STEPS and step not in done:
            done.append(step)


NOT_RECORDED = ("the story does not list the playbook_step slot its actions set, and a replay predicts actions "
                "without running them, so which playbook steps they took is unknown")
NO_COMPLAINT = "the customer never complained, so the playbook does not apply"


def conformance(events: List[Event], turns: List[Any], taken: Optional[Dict[int, Any]] = None,
                kind: str = "story") -> Dict[str, Any]:
    """The playbook in one replay; ``taken`` (position -> holders.Step) tells the steps a person took.

    ``counted`` says whether the replay can be measured at all, and ``not_counted_reason`` why not.
    """
    taken = taken or {}
    owner: Optional[Any] = None
    by_agent: List[str] = []
    done: List[str] = []
    slots: Dict[str, Any] = {}
    complaint_at: Optional[int] = None
    complaint_time: Optional[float] = None
    acknowledged: Optional[Dict[str, Any]] = None
    re_explanations: List[Dict[str, Any]] = []
    turn = -1
    for position, event in enumerate(events):
        if position in taken:
            owner = taken[position]
        if isinstance(event, UserUttered):
            turn, owner = turn + 1, None
            if complaint_at is None and (event.intent_name or "").startswith("complain_"):
                complaint_at, complaint_time = turn, event.timestamp
        elif isinstance(event, SlotSet):
            slots[event.key] = event.value
            before = list(done)
            if event.key == "playbook_steps" and isinstance(event.value, list):
                _add(done, *event.value)
            elif event.key == "playbook_step" and event.value:
                _add(done, *IMPLIED.get(str(event.value), []), str(event.value))
            if owner is not None and owner.by_agent:
                by_agent += [s for s in done if s not in before]
            if "acknowledge" in done and acknowledged is None and complaint_at is not None:
                acknowledged = {"turns": max(turn - complaint_at, 0),
                                "seconds": round(event.timestamp - complaint_time, 1)
                                if event.timestamp and complaint_time and event.timestamp > complaint_time + 0.001
                                else None}
        elif isinstance(event, ActionExecuted) and event.action_name == "utter_ask_verification":
            _check_identity_request(slots, turn, re_explanations)
        elif isinstance(event, BotUttered) and event.text and not (event.metadata or {}).get("agent") \
                and not (owner is not None and owner.by_agent):  # the bot's words, not an agent's
            if ASKS_FOR_IDENTITY.search(event.text) and ("send me" in event.text.lower() or "?" in event.text):
                _check_identity_request(slots, turn, re_explanations)
            if ASKS_WHAT_HAPPENED.search(event.text) and slots.get("case_id"):
                re_explanations.append({"turn": turn, "asked_for": "what went wrong",
                                        "already_known": f"open case {slots['case_id']} ({slots.get('issue_type') or 'issue on file'})"})
    order = [s for s in STEPS if s in done]
    complained = complaint_at is not None or any(
        isinstance(e, SlotSet) and e.key == "issue_type" and e.value not in (None, "", "other") for e in events)
    recorded = kind == "conversation" or any(
        isinstance(e, SlotSet) and e.key in ("playbook_step", "playbook_steps") for e in events)
    reason = None if complained and recorded else (NOT_RECORDED if complained else NO_COMPLAINT)
    return {"steps_done": done, "steps_missing": [s for s in STEPS if s not in done and s != "learn"],
            "steps_by_agent": by_agent, "in_order": done == order, "complaint_to_acknowledgement": acknowledged,
            "re_explanations": re_explanations, "counted": reason is None, "not_counted_reason": reason}


def _check_identity_request(slots: Dict[str, Any], turn: int, found: List[Dict[str, Any]]) -> None:
    if slots.get("verified") or slots.get("customer_id"):
        found.append({"turn": turn, "asked_for": "email and order number",
                      "already_known": f"verified customer {slots.get('customer_id') or ''}".strip()})


def summed(conformances: List[Dict[str, Any]]) -> Dict[str, Any]:
    """The same figures over a set of replays: only the replays that can be measured are counted.

    ``conversations`` is every replay, ``counted`` the ones in the step counts, ``not_counted`` how
    many were left out for each reason. "learn" happens after the conversation (the case review),
    so it is never expected in one and not counted.
    """
    count = len(conformances)
    measured = [c for c in conformances if c.get("counted", True)]
    reasons: Dict[str, int] = {}
    for c in conformances:
        if not c.get("counted", True):
            reasons[c.get("not_counted_reason") or "unknown"] = reasons.get(c.get("not_counted_reason") or "unknown", 0) + 1
    acks = [c["complaint_to_acknowledgement"]["turns"] for c in measured if c.get("complaint_to_acknowledgement")]
    return {"conversations": count, "counted": len(measured), "not_counted": reasons,
            "steps_done": {s: sum(1 for c in measured if s in c["steps_done"]) for s in STEPS if s != "learn"},
            "steps_by_agent": {s: sum(1 for c in measured if s in c.get("steps_by_agent", [])) for s in STEPS
                               if s != "learn"},
            "out_of_order": sum(1 for c in measured if not c["in_order"]),
            "re_explanations": sum(len(c["re_explanations"]) for c in conformances),
            "acknowledged": len(acks),
            "mean_turns_to_acknowledgement": round(sum(acks) / len(acks), 2) if acks else None}
