"""What a replay found, turn by turn: plain data shared by the command line, the reports and the trainer page."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class UserStep:
    text: str
    intent: Optional[str]
    expected_intent: Optional[str]
    intent_confidence: Optional[float]
    issue_type: Optional[Dict[str, Any]]
    frustration: Optional[Dict[str, Any]]
    diverged: bool = False


@dataclass
class ActionStep:
    step: int
    expected: str
    predicted: Optional[str]  # None for a person's step: the bot is not asked
    policy: Optional[str]
    confidence: Optional[float]
    runner_ups: List[Dict[str, Any]] = field(default_factory=list)
    playbook_step: Optional[str] = None
    diverged: bool = False
    bot_text: List[str] = field(default_factory=list)  # the bot's words only
    by_agent: bool = False  # a person had the conversation: shown, never judged as the bot's
    agent: Optional[str] = None  # the agent's username, when the conversation says who
    agent_name: Optional[str] = None  # their display name (filled in by the trainer page)
    agent_text: List[str] = field(default_factory=list)  # the agent's words with this step


@dataclass
class Turn:
    index: int
    user: Optional[UserStep]
    actions: List[ActionStep] = field(default_factory=list)
    timestamp: Optional[float] = None


@dataclass
class Replay:
    id: str
    kind: str  # story | conversation
    name: str
    source: str
    turns: List[Turn] = field(default_factory=list)
    conformance: Dict[str, Any] = field(default_factory=dict)
    events: List[Dict[str, Any]] = field(default_factory=list)  # the replayed events, for export

    @property
    def divergences(self) -> int:
        return sum(1 for t in self.turns for a in t.actions if a.diverged) + \
            sum(1 for t in self.turns if t.user is not None and t.user.diverged)

    def step_counts(self) -> Dict[str, int]:
        """Steps judged (the bot's), as expected, diverged, and the ones a person took (not judged)."""
        actions = [a for t in self.turns for a in t.actions]
        bot = [a for a in actions if not a.by_agent]
        return {"bot_steps": len(bot), "bot_steps_as_expected": sum(1 for a in bot if not a.diverged),
                "agent_steps": len(actions) - len(bot),
                "customer_messages": sum(1 for t in self.turns if t.user is not None),
                "intent_divergences": sum(1 for t in self.turns if t.user is not None and t.user.diverged)}

    @property
    def passed(self) -> bool:
        return self.divergences == 0

    def first_divergence(self) -> Optional[str]:
        for turn in self.turns:
            if turn.user is not None and turn.user.diverged:
                return (f"turn {turn.index}: \"{turn.user.text[:60]}\" parsed as {turn.user.intent}, "
                        f"expected {turn.user.expected_intent}")
            for action in turn.actions:
                if action.diverged:
                    return (f"turn {turn.index}, step {action.step}: expected {action.expected}, "
                            f"predicted {action.predicted} ({action.policy}, {action.confidence or 0:.2f})")
        return None

    def frustration(self) -> List[Dict[str, Any]]:
        return [{"turn": t.index, "score": t.user.frustration.get("score"), "level": t.user.frustration.get("level")}
                for t in self.turns if t.user is not None and isinstance(t.user.frustration, dict)]

    def as_dict(self) -> Dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "name": self.name, "source": self.source, "passed": self.passed,
                "divergences": self.divergences, **self.step_counts(), "turns": [asdict(t) for t in self.turns],
                "frustration": self.frustration(), "conformance": self.conformance}
