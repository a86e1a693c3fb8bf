"""What a recovery turn needs from the conversation, and what it gives back.

These plain types keep the recovery logic free of Rasa: the custom actions translate a
rasa_sdk tracker into a ``TurnInput`` and a ``TurnReply`` into messages and events.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, List, Optional

EMAIL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+")
ORDER_ID = re.compile(r"(?<![A-Za-z0-9-])#?([A-Za-z]{1,4}-?\d{3,8}|\d{4,8}-[A-Za-z]{1,4})(?![A-Za-z0-9-])")
CASE_ID = re.compile(r"\bcase[\s#:-]*(\d{3,8})\b", re.IGNORECASE)


@dataclass
class TurnInput:
    conversation_id: str
    text: str = ""
    intent: Optional[str] = None
    issue_type: Optional[str] = None  # the NLU's issue type for this message
    issue_confidence: float = 0.0  # ... and how sure it is
    entities: Dict[str, List[str]] = field(default_factory=dict)
    metadata: Dict[str, Any] = field(default_factory=dict)
    slots: Dict[str, Any] = field(default_factory=dict)
    message_frustration: List[Dict[str, Any]] = field(default_factory=list)  # oldest first
    failed_turns: int = 0
    now: datetime = field(default_factory=datetime.utcnow)

    def slot(self, name: str, default: Any = None) -> Any:
        value = self.slots.get(name)
        return default if value is None else value

    def entity(self, name: str) -> Optional[str]:
        values = self.entities.get(name) or []
        return str(values[-1]).strip() if values else None

    def email(self) -> Optional[str]:
        found = self.entity("email") or next(iter(EMAIL.findall(self.text[:5000])), None)
        return found.strip().strip(".,;:") if found else None

    def order_id(self) -> Optional[str]:
        value = self.entity("order_id")
        if not value:
            text = EMAIL.sub(" ", self.text[:5000])
            text = CASE_ID.sub(" ", re.sub(r"\bCASE-\d+", " ", text, flags=re.IGNORECASE))
            match = ORDER_ID.search(text)
            value = match.group(1) if match else None
        return value.lstrip("#").upper()[:40] if value else None

    def case_id(self) -> Optional[str]:
        value = self.entity("case_id")
        if value:
            digits = re.sub(r"\D", "", value)
            return f"CASE-{digits}" if digits else None
        match = CASE_ID.search(self.text[:5000]) or re.search(r"\bCASE-(\d{3,8})\b", self.text[:5000], re.IGNORECASE)
        return f"CASE-{match.group(1)}" if match else None


@dataclass
class Message:
    text: Optional[str] = None
    response: Optional[str] = None          # a domain response name (conditional variations apply)
    buttons: List[Dict[str, str]] = field(default_factory=list)


@dataclass
class TurnReply:
    messages: List[Message] = field(default_factory=list)
    slots: Dict[str, Any] = field(default_factory=dict)
    reminder_minutes: Optional[float] = None  # schedule the follow-up check-in

    def say(self, text: str, buttons: Optional[List[Dict[str, str]]] = None) -> "TurnReply":
        if text:
            self.messages.append(Message(text=text, buttons=buttons or []))
        return self

    def respond(self, response: str) -> "TurnReply":
        self.messages.append(Message(response=response))
        return self
