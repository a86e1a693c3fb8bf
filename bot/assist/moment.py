"""The moment an agent answers: the case's facts, the customer's last message and what was already said."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from bot.assist.facts import Facts

TAKEOVER, HOLDING = "takeover", "holding"
# Kinds that close the conversation: offered only on a resolved case.
CLOSING_KINDS = frozenset({"close_loop", "thanks_reply"})

# The conditions a library reply's `when` may name, and what each needs of its value.
CONDITIONS = {
    "moment": str, "verified": bool, "has_case": bool, "case_open": bool, "case_resolved": bool, "repeat": bool,
    "options_offered": bool, "has_resolution": bool, "resolution_done": bool, "resolution_kind": str,
    "has_shipment": bool, "has_next_contact": bool, "has_compensation": bool, "frustration": list,
    "issue_type": list,
}


@dataclass
class Moment:
    facts: Facts
    customer_message: str
    issue_type: str = "other"
    frustration: str = "calm"
    moment: str = HOLDING
    handoff_reason: Optional[str] = None
    bot_said: List[str] = field(default_factory=list)      # the last things the bot or the agent said
    playbook_done: List[str] = field(default_factory=list)

    @property
    def repeat(self) -> bool:
        try:
            return int(self.facts.get("case.contacts") or 0) >= 2
        except (TypeError, ValueError):
            return False

    def condition_values(self) -> Dict[str, Any]:
        f = self.facts
        return {
            "moment": self.moment, "verified": f.verified, "has_case": bool(f.get("case.id")),
            "case_open": f.case_open and bool(f.get("case.id")), "case_resolved": f.case_resolved,
            "repeat": self.repeat, "options_offered": bool(f.options_offered),
            "has_resolution": bool(f.get("resolution.option") or f.get("resolution.description")),
            "resolution_done": f.get("resolution.status") == "done",
            "resolution_kind": f.get("resolution.kind"), "has_shipment": bool(f.get("shipment.status")),
            "has_next_contact": bool(f.get("next_contact")), "has_compensation": bool(f.get("compensation.amount")),
            "frustration": self.frustration, "issue_type": self.issue_type,
        }

    def holds(self, when: Mapping[str, Any]) -> bool:
        values = self.condition_values()
        for name, wanted in (when or {}).items():
            value = values.get(name)
            if isinstance(wanted, list):
                if value not in wanted:
                    return False
            elif value != wanted:
                return False
        return True

    def may_close(self) -> bool:
        """Closing the loop is right only once the case is resolved."""
        return self.facts.case_resolved


def moment_from_tracker(tracker: Mapping[str, Any], facts: Facts,
                        handoff_reason: Optional[str] = None) -> Moment:
    """The moment as Rasa's tracker records it: one record of the conversation."""
    slots = tracker.get("slots") or {}
    events: Sequence[Mapping[str, Any]] = tracker.get("events") or []
    latest = tracker.get("latest_message") or {}
    said = [str(e.get("text")) for e in events if e.get("event") == "bot" and e.get("text")]
    # Takeover: no agent has spoken since the conversation was last handed to a person.
    handed_at = max((i for i, e in enumerate(events) if e.get("event") == "slot" and e.get("name") == "handed_off"
                     and e.get("value") is True), default=-1)
    agent_spoke = any(e.get("event") == "bot" and (e.get("metadata") or {}).get("agent")
                      for e in events[handed_at + 1:])
    return Moment(
        facts=facts,
        customer_message=str(latest.get("text") or ""),
        issue_type=str(slots.get("issue_type") or facts.get("issue_type") or "other"),
        frustration=str(slots.get("frustration_level") or "calm"),
        moment=HOLDING if agent_spoke else TAKEOVER,
        handoff_reason=handoff_reason or slots.get("handoff_reason"),
        bot_said=said[-3:],
        playbook_done=[str(s) for s in slots.get("playbook_steps") or []],
    )
