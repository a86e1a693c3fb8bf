"""The replay loop, shared by stories and recorded conversations, by the command line and the trainer page.

Like ``rasa test``, the conversation stays on its script: after each prediction the expected
(story) or actual (recorded) event is applied, so every divergence is judged on its own.
Unlike it, every turn keeps what a trainer needs to see why: the parse of the user's text, the
deciding policy and confidence, the runner-up actions and the playbook step.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

from bot.replay.conformance import conformance
from bot.replay.holders import by_position, normalized
from bot.replay.predictors import Prediction
from bot.replay.result import ActionStep, Replay, Turn, UserStep

LISTEN = "action_listen"


def _start(events: List[Event]) -> int:
    """Replay starts after the first action_listen (session start and the like are given)."""
    for index, event in enumerate(events):
        if isinstance(event, ActionExecuted) and event.action_name == LISTEN:
            return index + 1
    return 0


def _after_action(events: List[Event], index: int) -> Dict[str, Any]:
    """The playbook step set by the action at ``index`` (events up to the next action or user message)."""
    step = None
    for event in events[index + 1:]:
        if isinstance(event, (ActionExecuted, UserUttered)):
            break
        if isinstance(event, SlotSet) and event.key == "playbook_step" and event.value:
            step = str(event.value)
    return {"playbook_step": step}


def _user_step(event: UserUttered, parse: Optional[Dict[str, Any]]) -> UserStep:
    recorded = event.parse_data or {}
    parsed = parse or recorded
    intent = (parsed.get("intent") or {}).get("name")
    expected = event.intent_name
    return UserStep(
        text=event.text or "", intent=intent, expected_intent=expected,
        intent_confidence=(parsed.get("intent") or {}).get("confidence"),
        issue_type=parsed.get("issue_type") if isinstance(parsed.get("issue_type"), dict) else None,
        # A tap ("/deny") is not re-parsed into a reading: keep the one the tracking recorded.
        frustration=next((f for f in (parsed.get("frustration"), recorded.get("frustration")) if isinstance(f, dict)), None),
        diverged=bool(parse is not None and event.text and expected and intent != expected),
    )


async def replay(predictor: Any, events: List[Event], *, id: str, kind: str, name: str, source: str) -> Replay:
    """Replay ``events`` against ``predictor``, turn by turn.

    Steps a person took while holding the conversation (see ``holders``) are shown with their
    words and never predicted or judged: they are not the bot's.
    """
    events = normalized(events)
    start = _start(events)
    taken = by_position(events)
    await predictor.reset(f"replay-{kind}", events[:start])
    result = Replay(id=id, kind=kind, name=name, source=source, events=[e.as_dict() for e in events])
    turn = Turn(index=0, user=None)
    step = 0
    try:
        for position in range(start, len(events)):
            event = events[position]
            if isinstance(event, UserUttered):
                if turn.user is not None or turn.actions:
                    result.turns.append(turn)
                    turn = Turn(index=len(result.turns), user=None)
                parse = await predictor.parse(event.text) if event.text else None
                turn.user = _user_step(event, parse)
                turn.timestamp = event.timestamp
            elif position in taken:
                who = taken[position]
                expected = who.action
                after = _after_action(events, position)
                if who.by_agent:
                    turn.actions.append(ActionStep(
                        step=step, expected=expected, predicted=None, policy=None, confidence=None,
                        playbook_step=after["playbook_step"], by_agent=True, agent=who.agent, agent_text=who.texts))
                else:
                    prediction: Prediction = await predictor.predict()
                    turn.actions.append(ActionStep(
                        step=step, expected=expected, predicted=prediction.action, policy=prediction.policy,
                        confidence=round(prediction.confidence, 4) if prediction.confidence is not None else None,
                        runner_ups=[r for r in prediction.ranking if r["action"] != prediction.action
                                    and r["confidence"] >= 0.005 and r["action"].startswith(("utter_", "action_"))][:3],
                        diverged=prediction.action != expected, playbook_step=after["playbook_step"],
                        bot_text=who.texts))
                step += 1
            await predictor.apply(event)
        if turn.user is not None or turn.actions:
            result.turns.append(turn)
    finally:
        await predictor.close()
    result.conformance = conformance(events, result.turns, taken, kind)
    return result
