"""Who took each step of a conversation: the bot, or a person (an agent) who held the conversation.

A recorded conversation mixes both. The gateway marks a takeover with the slot ``handed_off``
(true at takeover, false at hand-back; it does not influence predictions), writes the agent's
words as bot events with ``metadata.agent``, logs actions an agent chose with ``policy: agent``,
and runs a bot action an agent sent unchanged between ``handed_off: false`` and ``handed_off: true``
(a bracket, not a hand-back). Stories exported from conversations keep ``handed_off``, so the
same rules tell the agent's steps in a recorded conversation and in its test story.

Rules: the steps answering a customer message belong to whoever held the conversation when the
message arrived (slot events logged right after the message count); a takeover or hand-back
between messages applies from there on; the bot's own handoff (``action_handoff`` setting the
slot) applies from the next message, so the bot's listen after handing off is still the bot's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered

from bot.replay.stories import NOT_PREDICTED

LISTEN = "action_listen"
HANDED_OFF = "handed_off"


@dataclass
class Step:
    """One predicted action of the conversation (its position in the events) and who took it."""

    position: int
    action: str
    by_agent: bool
    agent: Optional[str] = None  # the agent's username, when the conversation says who
    texts: List[str] = field(default_factory=list)  # what was said with this step (bot or agent)


def is_step(event: Event) -> bool:
    return isinstance(event, ActionExecuted) and (event.action_name or event.action_text) not in NOT_PREDICTED


def _handed_off(event: Event) -> Optional[bool]:
    if isinstance(event, SlotSet) and event.key == HANDED_OFF:
        return bool(event.value)
    return None


def brackets(events: List[Event]) -> Set[int]:
    """Positions of ``handed_off`` false/true pairs around a bot action an agent sent (no message or listen between)."""
    found: Set[int] = set()
    for i, event in enumerate(events):
        if _handed_off(event) is not False:
            continue
        for j in range(i + 1, len(events)):
            later = events[j]
            if isinstance(later, UserUttered) or (isinstance(later, ActionExecuted) and later.action_name == LISTEN):
                break
            if _handed_off(later) is True:
                found.update((i, j))
                break
    return found


def _agent_of(event: Event) -> Optional[str]:
    if isinstance(event, BotUttered):
        agent = (event.metadata or {}).get("agent")
        return str(agent) if agent else None
    return None


def steps(events: List[Event], start: int = 0) -> List[Step]:
    """Every predicted action from ``start`` on, with who took it and the words said with it."""
    skip = brackets(events)
    state = False          # the slot's value so far
    turn_held = False      # who holds the current customer message
    override: Optional[bool] = None  # a takeover or hand-back since the message was answered
    first_action = True    # no action yet since the last customer message
    owner: Optional[Step] = None   # the latest step; slot events after it are its own unless it is a listen
    found: List[Step] = []
    pending: List[str] = []  # words said before their step (an agent's message precedes the listen after it)
    pending_agent: Optional[str] = None
    for position in range(start, len(events)):
        event = events[position]
        if position in skip:
            continue
        if isinstance(event, UserUttered):
            first_action, override, owner = True, None, None
            continue
        value = _handed_off(event)
        if value is not None:
            state = value
            external = owner is None or owner.action == LISTEN or owner.by_agent
            if external and not first_action:
                override = value
            continue
        if isinstance(event, BotUttered):
            agent = _agent_of(event)
            if owner is not None and owner.action != LISTEN:
                owner.texts.append(event.text or "")  # said by the action just taken
                owner.agent = owner.agent or agent
            elif event.text:
                pending.append(event.text)  # an agent's own message: it belongs to the listen after it
                pending_agent = agent or pending_agent
            continue
        if not is_step(event):
            continue
        if first_action:
            turn_held, first_action = state, False
        held = override if override is not None else turn_held
        action = event.action_name or event.action_text or ""
        step = Step(position, action, bool(held) or event.policy == "agent", pending_agent,
                    [t for t in pending if t])
        pending, pending_agent = [], None
        found.append(step)
        owner = step
    _name_agents(found)
    return found


def _name_agents(found: List[Step]) -> None:
    """Each run of agent steps is named after the agent whose messages it holds (the first one found)."""
    run: List[Step] = []
    for step in found + [Step(-1, "", False)]:
        if step.by_agent:
            run.append(step)
            continue
        names = [s.agent for s in run if s.agent]
        for member in run:
            member.agent = member.agent or (names[0] if names else None)
        run = []


def by_position(events: List[Event], start: int = 0) -> Dict[int, Step]:
    return {step.position: step for step in steps(events, start)}


def normalized(events: List[Event]) -> List[Event]:
    """The events as a test story holds them, so a conversation and its exported story replay step for step.

    Drops the brackets around an action an agent sent; adds a listen between two customer messages the
    conversation logged back to back (the story reader adds one), marked as nobody's if the bot held the
    conversation (``handed_off`` does not influence predictions); slot events logged after a listen
    and before the next message with no action between (a takeover or hand-back) move to just after
    that message, where a story puts them.
    """
    skip = brackets(events)
    kept = [e for i, e in enumerate(events) if i not in skip]
    result: List[Event] = []
    waiting: List[Event] = []  # slot events after a listen, waiting to see what comes next
    after_listen = False
    last_user = False  # the latest step-or-message was a customer message
    state = False
    for event in kept:
        if isinstance(event, UserUttered):
            unanswered = last_user and not state  # nobody answered (the bot was down, a person not there yet)
            if last_user:
                if unanswered:  # not the bot's step: marked as a person's, which changes no prediction
                    result.append(SlotSet(HANDED_OFF, True, timestamp=event.timestamp))
                result.append(ActionExecuted(LISTEN, timestamp=event.timestamp))
            result.append(event)
            if unanswered:
                result.append(SlotSet(HANDED_OFF, False, timestamp=event.timestamp))
            result.extend(waiting)
            state = _state_after(state, waiting)
            waiting, after_listen, last_user = [], False, True
            continue
        if _handed_off(event) is not None and not (after_listen and isinstance(event, SlotSet)):
            state = bool(_handed_off(event))
        if after_listen and isinstance(event, SlotSet):
            waiting.append(event)
            continue
        if isinstance(event, ActionExecuted):
            result.extend(waiting)
            state = _state_after(state, waiting)
            waiting = []
            after_listen = event.action_name == LISTEN
            last_user = last_user and not is_step(event)
        result.append(event)
    result.extend(waiting)
    return result


def _state_after(state: bool, events: List[Event]) -> bool:
    for event in events:
        value = _handed_off(event)
        state = state if value is None else value
    return state
