"""Rank suggested replies for the moment: the policy where it is confident, the reply library and the
replies agents sent before, retrieved by meaning and filled with the case's facts.

Two rules are never broken: no closing the loop on a case that is not resolved, and no repeating
what the bot or agent just said. Every suggestion carries the reason it is offered.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
from rapidfuzz import fuzz

from bot.assist.library import LibraryReply, fill, load_library
from bot.assist.moment import CLOSING_KINDS, TAKEOVER, Moment
from bot.settings import section

# What a domain response or custom action does for the customer, in the library's kinds.
ACTION_KINDS = {
    "utter_apologize": "apologize", "utter_ask_verification": "ask_verification", "utter_anything_else": "close_loop",
    "utter_goodbye": "close_loop", "utter_you_are_welcome": "thanks_reply", "utter_offer_human": "escalate",
    "utter_handoff": "escalate", "utter_greet": "greet_takeover",
}
STEP_KINDS = {"resolve_options": "offer_options", "compensate": "compensate", "keep_informed": "next_steps",
              "close_loop": "close_loop", "apologize": "apologize", "acknowledge": "acknowledge_repeat",
              "explain": "resolution_status"}

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass
class Candidate:
    kind: str
    text: str
    source: str                   # policy | library | learned
    why: str
    score: float = 0.0
    action: Optional[str] = None
    confidence: Optional[float] = None
    step: Optional[str] = None
    buttons: List[Dict[str, Any]] = field(default_factory=list)
    reply_id: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "source": self.source, "why": self.why,
                "score": round(self.score, 3), "action": self.action, "confidence": self.confidence,
                "step": self.step, "buttons": self.buttons, "reply_id": self.reply_id}


def ranking_settings() -> Dict[str, Any]:
    return section("assist").get("ranking") or {}


def normalized(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(text).lower()).strip()


def repeats(text: str, said: Iterable[str], threshold: float) -> bool:
    """The reply says again what was just said (the same words, give or take a few)."""
    mine = normalized(text)
    return any(mine and fuzz.ratio(mine, normalized(s)) >= threshold for s in said if s)


def breaks_never_rules(moment: Moment, kind: str, text: str, threshold: float) -> Optional[str]:
    if kind in CLOSING_KINDS and not moment.may_close():
        return "closes the loop on a case that is not resolved"
    if repeats(text, moment.bot_said, threshold):
        return "repeats what was just said"
    return None


def _prior(moment: Moment, kind: str, weights: Mapping[str, float]) -> float:
    """What the situation alone says for a kind of reply, before reading the customer's words."""
    w = lambda name: float(weights.get(name, 0.0))  # noqa: E731
    values = moment.condition_values()
    prior = 0.0
    if kind == "greet_takeover":
        prior += w("greet_at_takeover") if moment.moment == TAKEOVER else -1.0
    if kind == "ask_verification" and not values["verified"]:
        prior += w("verify_unknown_customer")
    if kind == "acknowledge_repeat" and values["repeat"] and moment.moment == TAKEOVER:
        prior += w("repeat_contacts")
    if kind == "apologize":
        prior += w("apologize_angry") if moment.frustration == "angry" else \
            w("apologize_annoyed") if moment.frustration == "annoyed" else 0.0
    if kind == "offer_options" and values["options_offered"] and not values["has_resolution"]:
        prior += w("open_options")
    if kind == "resolution_status" and values["has_resolution"] and not values["resolution_done"]:
        prior += w("resolution_exists")
    if kind == "compensate" and moment.frustration == "angry" and values["repeat"]:
        prior += w("compensate_angry_repeat")
    return prior


class Ranker:
    """Built once per process: the library's example questions are embedded once."""

    CACHE_SIZE = 5000

    def __init__(self, embed: Embed, library: Optional[Sequence[LibraryReply]] = None) -> None:
        self.embed = embed
        self.library = list(library if library is not None else load_library())
        asks = [a for r in self.library for a in r.asks]
        vectors = embed(asks) if asks else np.zeros((0, 1), dtype=np.float32)
        self._asks: Dict[str, np.ndarray] = {}
        self._cache: Dict[str, np.ndarray] = {}
        start = 0
        for reply in self.library:
            self._asks[reply.id] = vectors[start:start + len(reply.asks)]
            start += len(reply.asks)

    def _embedded(self, texts: List[str]) -> np.ndarray:
        """Embeddings of learned replies' customer messages, each computed once per process."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            if len(self._cache) + len(missing) > self.CACHE_SIZE:
                self._cache.clear()
            for text, vector in zip(missing, self.embed(missing)):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts])

    def rank(self, moment: Moment, policy: Sequence[Mapping[str, Any]] = (),
             learned: Sequence[Mapping[str, Any]] = (), limit: int = 3) -> List[Candidate]:
        settings = ranking_settings()
        weights = settings.get("priors") or {}
        threshold = float(settings.get("repeat_similarity", 90))
        values = moment.facts.placeholders()
        if values.get("issue_phrase"):
            values["issue_phrase_cap"] = values["issue_phrase"][0].upper() + values["issue_phrase"][1:]
        message = moment.customer_message.strip()
        query = self.embed([message])[0] if message else None
        found: List[Candidate] = []

        for reply in self.library:
            if not moment.holds(reply.when):
                continue
            text = fill(reply.text, values)
            if text is None:
                continue
            similarity = float(np.max(self._asks[reply.id] @ query)) if query is not None else 0.0
            if similarity < reply.min_similarity:
                continue
            why = fill(reply.why, values) or reply.why.split("{")[0].strip(" :")
            found.append(Candidate(reply.kind, text, "library", why, similarity + _prior(moment, reply.kind, weights),
                                   reply_id=reply.id))

        floor = float(settings.get("policy_confidence", 0.5))
        for item in policy:
            confidence = float(item.get("confidence") or 0.0)
            action = str(item.get("action") or "")
            kind = ACTION_KINDS.get(action) or STEP_KINDS.get(str(item.get("step") or "")) or "next_steps"
            if confidence < floor:
                continue  # beyond the policy's confident picks, the library answers
            found.append(Candidate(kind, str(item.get("text") or ""), "policy",
                                   f"The dialogue policy's pick ({confidence:.0%})",
                                   float(settings.get("policy_weight", 0.6)) * confidence + _prior(moment, kind, weights),
                                   action=action, confidence=confidence, step=item.get("step"),
                                   buttons=list(item.get("buttons") or [])))

        if query is not None and learned:
            vectors = self._embedded([str(item.get("answered") or "") for item in learned])
            least = float(settings.get("learned_similarity", 0.6))
            for item, vector in zip(learned, vectors):
                similarity = float(vector @ query)
                text = fill(str(item.get("template") or ""), values)
                if similarity < least or not text:
                    continue
                times = int(item.get("times_sent") or 1)
                found.append(Candidate("learned", text, "learned",
                                       f"Agents sent this {times} time{'s' if times != 1 else ''} to a message like this one",
                                       similarity * float(settings.get("learned_weight", 0.9)),
                                       reply_id=f"learned:{item.get('id')}"))

        kept: List[Candidate] = []
        seen_kinds, seen_texts = set(), set()
        for candidate in sorted(found, key=lambda c: -c.score):
            if breaks_never_rules(moment, candidate.kind, candidate.text, threshold):
                continue
            key = normalized(candidate.text)
            if candidate.kind in seen_kinds or key in seen_texts:
                continue  # three different things to say, not one said three ways
            seen_kinds.add(candidate.kind)
            seen_texts.add(key)
            kept.append(candidate)
            if len(kept) == limit:
                break
        return kept
