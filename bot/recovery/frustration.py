"""Conversation-level frustration: the messages so far, weighed with what history adds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from bot.settings import section


@dataclass
class ConversationFrustration:
    score: float
    level: str
    angry_streak: int
    trend: List[float]


def level_for(score: float, settings: Optional[Dict] = None) -> str:
    settings = settings or section("frustration")
    if score >= float(settings.get("angry_at", 0.62)):
        return "angry"
    if score >= float(settings.get("annoyed_at", 0.35)):
        return "annoyed"
    return "calm"


def conversation_frustration(
    message_scores: Sequence[Dict],
    earlier_contacts: int = 0,
    failed_turns: int = 0,
    resolved: bool = False,
    settings: Optional[Dict] = None,
) -> ConversationFrustration:
    """Combine per-message frustration (``{"score", "level"}`` dicts, oldest first) with history.

    A new message weighs most, but a calm line after an outburst does not wipe it out;
    repeat contacts about the same case and turns the bot failed raise the level, an
    accepted resolution lowers it.
    """
    settings = settings or section("frustration")
    weight = float(settings.get("recent_weight", 0.6))
    smoothed: Optional[float] = None
    trend: List[float] = []
    streak = 0
    for message in message_scores:
        score = float(message.get("score") or 0.0)
        smoothed = score if smoothed is None else weight * score + (1 - weight) * smoothed
        trend.append(round(smoothed, 4))
        streak = streak + 1 if message.get("level") == "angry" else 0
    base = smoothed or 0.0
    boost = min(float(settings.get("repeat_contact_max", 0.3)),
                float(settings.get("repeat_contact_step", 0.12)) * max(0, earlier_contacts))
    boost += float(settings.get("failed_turn_step", 0.1)) * max(0, failed_turns)
    if resolved:
        boost -= float(settings.get("resolved_relief", 0.25))
    score = round(min(1.0, max(0.0, base + boost)), 4)
    return ConversationFrustration(score=score, level=level_for(score, settings), angry_streak=streak, trend=trend)
