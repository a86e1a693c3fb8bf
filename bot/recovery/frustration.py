"""Conversation-level frustration: the messages so far, weighed with what history adds.

Also the reading of a tapped button (``tap_reading``): Rasa gives a tap (a ``/intent`` payload)
no NLU frustration, yet it is a customer turn the agents and the conversation level should see.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

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


# What a tap says, on the per-message scale (calm 0, annoyed 0.5): a tap has no tone of voice, so
# it is never angry and never far from the middle of its level.
TAP_UNRESOLVED_SCORE = 0.5   # "No, not yet", "Still broken": the problem goes on
TAP_NEUTRAL_SCORE = 0.1      # an offered option chosen, "No, keep going"
TAP_CALM_SCORE = 0.0         # "Yes, all good", "That works, thanks"
TAP_SOURCE = "tap"


def tap_reading(title: Optional[str], intent: Optional[str] = None, lexicon: Optional[str] = None) -> Dict[str, Any]:
    """The frustration reading of a tapped button, from the words on it (or its intent's name).

    By tapping, the customer chose those words. A title that says the problem is not solved, or
    that carries a frustration cue, reads as annoyed; one with gratitude ("Yes, all good", "That
    works") as calm evidence; any other choice (an offered remedy) as calm, weakly. The reading
    has the per-message shape (``score``, ``level``, ``cues``, ``calm_cues``) plus ``source: tap``.
    """
    from bot.nlu.cues import detector_for  # spaCy: loaded only where taps are rated (the Rasa server)

    words = (title or "").strip() or (intent or "").replace("_", " ").strip() or "(button)"
    words = words[:200]
    detector = detector_for(lexicon)
    report = detector.detect(words)
    cue = f"tap: \"{words}\""
    if detector.says_unresolved(words) or report.cues:
        score, level, cues, calm = TAP_UNRESOLVED_SCORE, "annoyed", [cue], []
    elif report.calm_cues:
        score, level, cues, calm = TAP_CALM_SCORE, "calm", [], [cue]
    else:
        score, level, cues, calm = TAP_NEUTRAL_SCORE, "calm", [], [cue]
    return {"score": score, "level": level, "cues": cues, "calm_cues": calm, "source": TAP_SOURCE}


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
    accepted resolution lowers it. A tapped button (``source: tap``) counts with the smaller
    ``tap_weight``: a choice says less about how someone feels than their own words, so it
    neither extends nor breaks a run of angry messages.
    """
    settings = settings or section("frustration")
    weight = float(settings.get("recent_weight", 0.6))
    tap_weight = float(settings.get("tap_weight", 0.3))
    smoothed: Optional[float] = None
    trend: List[float] = []
    streak = 0
    for message in message_scores:
        score = float(message.get("score") or 0.0)
        tap = message.get("source") == TAP_SOURCE
        newest = tap_weight if tap else weight
        smoothed = score if smoothed is None else newest * score + (1 - newest) * smoothed
        trend.append(round(smoothed, 4))
        if not tap:
            streak = streak + 1 if message.get("level") == "angry" else 0
    base = smoothed or 0.0
    boost = min(float(settings.get("repeat_contact_max", 0.3)),
                float(settings.get("repeat_contact_step", 0.12)) * max(0, earlier_contacts))
    boost += float(settings.get("failed_turn_step", 0.1)) * max(0, failed_turns)
    if resolved:
        boost -= float(settings.get("resolved_relief", 0.25))
    score = round(min(1.0, max(0.0, base + boost)), 4)
    return ConversationFrustration(score=score, level=level_for(score, settings), angry_streak=streak, trend=trend)
