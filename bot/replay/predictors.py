"""Where predictions come from: the model loaded in this process (command line) or a running Rasa server (trainer page).

Both answer the same three questions for the replay loop: what does the model make of this
text, which action would it take next, and with what confidence and runner-ups.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event


@dataclass
class Prediction:
    action: str
    policy: Optional[str]
    confidence: Optional[float]
    ranking: List[Dict[str, Any]] = field(default_factory=list)  # best first, including ``action``


class InProcessPredictor:
    """The trained model loaded with Rasa's Agent; predictions through its MessageProcessor."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.domain: Domain = agent.domain
        self.processor = agent.processor

    @classmethod
    async def load(cls, model_path: str) -> "InProcessPredictor":
        from rasa.core.agent import load_agent

        agent = await load_agent(model_path=model_path)
        if agent is None or not agent.is_ready():
            raise RuntimeError(f"could not load the model {model_path}")
        return cls(agent)

    async def reset(self, sender_id: str, events: List[Event]) -> None:
        from rasa.shared.core.trackers import DialogueStateTracker

        self.tracker = DialogueStateTracker.from_events(sender_id, events, self.domain.slots)

    async def apply(self, event: Event) -> None:
        self.tracker.update(event)

    async def predict(self) -> Prediction:
        from rasa.core.processor import ActionLimitReached

        try:
            action, prediction = self.processor.predict_next_with_tracker_if_should(self.tracker)
        except ActionLimitReached:
            return Prediction("(action limit reached)", None, None)
        names = self.domain.action_names_or_texts
        ranking = sorted(({"action": names[i], "confidence": float(p)} for i, p in enumerate(prediction.probabilities)
                          if i < len(names)), key=lambda r: -r["confidence"])
        return Prediction(action.name(), prediction.policy_name, float(prediction.max_confidence), ranking[:4])

    async def parse(self, text: str) -> Dict[str, Any]:
        from rasa.core.channels.channel import UserMessage

        return await self.processor.parse_message(UserMessage(text))

    async def close(self) -> None:
        return None


class HttpPredictor:
    """A running Rasa server (the gateway's): the partial conversation is written to a scratch tracker.

    ``rasa`` is the gateway's ``RasaClient``, which sends Rasa's auth token with every call.
    """

    def __init__(self, rasa: Any, domain: Domain) -> None:
        self.rasa = rasa
        self.domain = domain
        self.sender_id = ""
        self.events: List[Dict[str, Any]] = []

    async def reset(self, sender_id: str, events: List[Event]) -> None:
        self.sender_id = f"replay-{uuid.uuid4().hex}"
        self.events = [e.as_dict() for e in events]

    async def apply(self, event: Event) -> None:
        self.events.append(event.as_dict())

    async def predict(self) -> Prediction:
        await self.rasa.replace_events(self.sender_id, self.events)
        result = await self.rasa.predict(self.sender_id)
        scores = [{"action": s["action"], "confidence": float(s.get("score") or 0.0)} for s in result.get("scores") or []]
        scores.sort(key=lambda r: -r["confidence"])
        best = scores[0]["action"] if scores else "(none)"
        return Prediction(best, result.get("policy"), result.get("confidence"), scores[:4])

    async def parse(self, text: str) -> Dict[str, Any]:
        return await self.rasa.parse(text)

    async def close(self) -> None:
        if self.sender_id:
            await self.rasa.replace_events(self.sender_id, [])  # leave nothing behind in the tracker store
