"""Suggested replies for agents: what fits the moment, from the dialogue policy where it is confident
and from the reply library and replies agents sent before (ranked in bot/assist/ranker.py).

Rasa's ``/predict`` scores every action without changing the tracker. Responses
(``utter_*``) are rendered by Rasa's templated NLG with the conversation's slots (conditional
variations included); custom actions are previewed by running their recovery turn on a
recording repository (bot/casedb/recording.py): it reads the real case database and keeps
the turn's writes in memory, so the agent sees exactly what the bot would say, and nothing is
written or locked until the agent sends it.
"""
from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from rasa.core.nlg.response import TemplatedNaturalLanguageGenerator
from sqlalchemy.orm import sessionmaker

from bot.assist.facts import facts_from_case_db
from bot.assist.learned import candidates as learned_candidates
from bot.assist.moment import moment_from_tracker
from bot.assist.ranker import Ranker
from bot.casedb.engine import get_engine
from bot.casedb.recording import RecordingRepository, recording_session
from bot.recovery import turns
from bot.recovery.conversation import TurnReply
from bot.recovery.playbook import STEPS
from bot.recovery.tracker_state import turn_input

logger = logging.getLogger(__name__)

# Actions that are machinery, not something an agent would say.
NOT_REPLIES = {
    "action_listen", "action_session_start", "action_restart", "action_back",
    "action_default_fallback", "action_deactivate_loop", "action_revert_fallback_events", "action_extract_slots",
    "action_default_ask_affirmation", "action_default_ask_rephrase", "action_two_stage_fallback",
    "action_unlikely_intent", "action_follow_up",
}
# The playbook step a domain response serves.
RESPONSE_STEPS = {
    "utter_apologize": "apologize", "utter_ask_verification": "acknowledge", "utter_offer_human": "keep_informed",
    "utter_handoff": "keep_informed", "utter_anything_else": "close_loop", "utter_goodbye": "close_loop",
    "utter_you_are_welcome": "close_loop", "utter_greet": "acknowledge",
}


MIN_CONFIDENCE = 0.01  # below this the policy is not suggesting it at all


def ranked_actions(prediction: Mapping[str, Any], limit: int = 3) -> List[Tuple[str, float]]:
    scores = [(str(s.get("action")), float(s.get("score") or 0.0)) for s in prediction.get("scores") or []
              if isinstance(s, dict) and s.get("action")]
    scores.sort(key=lambda pair: pair[1], reverse=True)
    wanted = [(a, s) for a, s in scores if a not in NOT_REPLIES and (a.startswith("utter_") or a in turns.ACTION_TURNS)
              and s >= MIN_CONFIDENCE]
    # RulePolicy scores its fallback at the fallback threshold whenever no rule applies: only a real pick counts.
    top = scores[0][0] if scores else None
    return [(a, s) for a, s in wanted if a != "action_fallback" or a == top][:limit]


def reply_point(events: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """The conversation as it stood when the customer's last message had just arrived (and been tracked)."""
    events = list(events or [])
    last_user = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=None)
    if last_user is None:
        return []
    end = last_user + 1
    while end < len(events) and events[end].get("event") in ("slot", "user_featurization"):
        end += 1
    return events[:end]


# The channel the gateway talks to Rasa on: channel-specific variations are chosen as for the bot.
OUTPUT_CHANNEL = "rest"


def render_response(name: str, domain: Mapping[str, Any], slots: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """A domain response as the bot would say it now, chosen and filled by Rasa's own templated NLG
    (conditional variations included), so a suggestion never reads differently from the bot."""
    generated = TemplatedNaturalLanguageGenerator(domain.get("responses") or {}).generate_from_slots(
        name, dict(slots), OUTPUT_CHANNEL)
    if not generated or not generated.get("text"):
        return None
    return {"text": str(generated["text"]), "buttons": list(generated.get("buttons") or [])}


def preview_turn(action: str, tracker: Mapping[str, Any], database_url: Optional[str] = None,
                 recorder: Optional[RecordingRepository] = None) -> TurnReply:
    """What a custom action would say now: its turn reads the real case database, and its writes are
    recorded in ``recorder`` (what sending it would record) instead of made. The database is never
    written or locked for a preview, so a preview cannot hold up the bot or another agent."""
    # The agent speaks as the bot would if it still had the conversation.
    slots = dict(tracker.get("slots") or {}, handed_off=False)
    turn = turn_input(str(tracker.get("sender_id") or ""), slots, tracker.get("latest_message"),
                      tracker.get("events") or [])
    with recording_session(database_url, recorder) as (session, _):
        return turns.ACTION_TURNS[action](turn, session)


def _join(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    return {"text": " ".join(p["text"] for p in parts if p.get("text")).strip(),
            "parts": [p["text"] for p in parts if p.get("text")],
            "buttons": next((p["buttons"] for p in reversed(parts) if p.get("buttons")), [])}


def render_action(action: str, tracker: Mapping[str, Any], domain: Mapping[str, Any],
                  database_url: Optional[str] = None) -> Optional[Dict[str, Any]]:
    slots = tracker.get("slots") or {}
    if action.startswith("utter_"):
        rendered = render_response(action, domain, slots)
        if rendered:
            rendered["step"] = RESPONSE_STEPS.get(action)
        return rendered
    reply = preview_turn(action, tracker, database_url)
    merged = dict(slots, **reply.slots)
    parts = [render_response(m.response, domain, merged) if m.response else {"text": m.text, "buttons": m.buttons}
             for m in reply.messages]
    rendered = _join([p for p in parts if p])
    if not rendered["text"]:
        return None
    before = set(slots.get("playbook_steps") or [])
    new_steps = [s for s in reply.slots.get("playbook_steps") or [] if s not in before]
    step = reply.slots.get("playbook_step") or (new_steps[-1] if new_steps else None)
    rendered["step"] = step if step in STEPS else None
    return rendered


def said_since_customer(events: Sequence[Mapping[str, Any]]) -> set:
    """What the bot or agent already said after the customer's last message (not worth suggesting again)."""
    said = set()
    for event in reversed(list(events or [])):
        if event.get("event") == "user":
            break
        if event.get("event") == "bot" and event.get("text"):
            said.add(str(event["text"]).strip())
    return said


# The playbook step a kind of reply serves (shown beside it; the console's playbook panel follows it).
KIND_STEPS = {"greet_takeover": "acknowledge", "apologize": "apologize", "acknowledge_repeat": "acknowledge",
              "offer_options": "resolve_options", "resolution_status": "explain", "refund_timing": "keep_informed",
              "delivery_status": "keep_informed", "next_steps": "keep_informed", "ask_verification": "acknowledge",
              "ask_details": "explain", "compensate": "compensate", "escalate": "keep_informed",
              "close_loop": "close_loop", "thanks_reply": "close_loop"}


def _zero_embed(texts: Sequence[str]) -> np.ndarray:
    return np.zeros((len(texts), 1), dtype=np.float32)


@lru_cache(maxsize=1)
def get_ranker() -> Ranker:
    """The process's ranker: the reply library embedded once with the NLU's sentence encoder."""
    try:
        from bot.nlu.sentence_encoder import encode
        encode(["warm up"])
        return Ranker(encode)
    except Exception as error:  # no encoder installed: the situation alone still ranks the library
        logger.warning("suggestions retrieve without meaning (sentence encoder unavailable: %s)", error)
        return Ranker(_zero_embed)


def policy_candidates(prediction: Mapping[str, Any], tracker: Mapping[str, Any], domain: Mapping[str, Any],
                      database_url: Optional[str], limit: int) -> List[Dict[str, Any]]:
    """The policy's top replies, rendered as the bot would say them now."""
    found: List[Dict[str, Any]] = []
    for action, score in ranked_actions(prediction, limit=limit):
        try:
            rendered = render_action(action, tracker, domain, database_url)
        except Exception:  # one broken preview must not take the others down
            logger.exception("Could not preview %s", action)
            continue
        if rendered and rendered.get("text"):
            rendered.pop("parts", None)
            found.append({"action": action, "confidence": round(score, 3), **rendered})
    return found


def suggestions(prediction: Mapping[str, Any], domain: Mapping[str, Any], database_url: Optional[str] = None,
                limit: int = 3, agent_name: Optional[str] = None, ranker: Optional[Ranker] = None) -> List[Dict[str, Any]]:
    """The ``limit`` replies that fit the moment, best first, each with its kind, source and reason."""
    # The tracker's slots are current: Rasa's tracking policy set them for the bot's turns, the gateway
    # appended them for the messages a person received (``Router._track``).
    tracker = prediction.get("tracker") or {}
    policy = policy_candidates(prediction, tracker, domain, database_url, limit + 3)
    # The policy may have been asked about the conversation as it stood at the customer's last message;
    # the moment is the conversation as it stands now.
    current = prediction.get("current_tracker") or tracker
    session = sessionmaker(bind=get_engine(database_url), future=True)()
    try:
        facts = facts_from_case_db(session, current.get("slots") or {}, agent_name=agent_name)
        moment = moment_from_tracker(current, facts)
        already = said_since_customer(current.get("events") or []) | set(prediction.get("already_said") or ())
        moment.bot_said = list(dict.fromkeys(moment.bot_said + sorted(already)))
        learned = learned_candidates(session, moment.issue_type)
    finally:
        session.close()
    ranked = (ranker or get_ranker()).rank(moment, policy, learned, limit=limit)
    result = []
    for candidate in ranked:
        item = candidate.as_dict()
        item["step"] = item.get("step") or KIND_STEPS.get(candidate.kind)
        if item["step"] not in STEPS:
            item["step"] = None
        result.append(item)
    return result
