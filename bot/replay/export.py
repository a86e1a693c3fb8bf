"""A replayed conversation as a Rasa test story (Rasa's own story writer), with a trainer's corrections.

A correction replaces the action at a step with the one the trainer says was right and drops
what the wrong action said and set, so the story expects the right behaviour from now on.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.core.training_data.story_writer.yaml_story_writer import YAMLStoryWriter

from bot.replay.holders import LISTEN, by_position, normalized
from bot.replay.replayer import _start

MAX_NAME = 120


class ExportError(ValueError):
    pass


def story_name(name: str) -> str:
    cleaned = re.sub(r"[\x00-\x1f]", " ", name or "").strip()[:MAX_NAME]
    if not cleaned:
        raise ExportError("give the story a name")
    return cleaned


class _WrittenListen(ActionExecuted):
    """A listen the story must state: Rasa's story writer leaves out plain listens (the reader adds one
    before each customer message), which would merge a listen followed by more steps into the next one."""


def _explicit_listens(events: List[Event]) -> List[Event]:
    """Listens the story reader would not put back by itself become written ones, so step numbers stay."""
    written = [i for i, e in enumerate(events) if isinstance(e, (UserUttered, ActionExecuted, SlotSet))]
    result = list(events)
    previous_listen = False
    for n, i in enumerate(written):
        event = events[i]
        is_listen = isinstance(event, ActionExecuted) and event.action_name == LISTEN
        if is_listen:
            following = events[written[n + 1]] if n + 1 < len(written) else None
            implied = (following is None or isinstance(following, UserUttered)) and not previous_listen
            if not implied:
                result[i] = _WrittenListen(LISTEN, timestamp=event.timestamp)
        previous_listen = is_listen
    return result


def corrected_events(events: List[Event], corrections: Dict[int, str], domain: Domain,
                     agent_names: Optional[Dict[str, str]] = None) -> List[Event]:
    """The conversation as a test story's events, with the trainer's corrections.

    Step numbers are those of the replay (``holders.normalized`` events). Only the bot's steps can be
    corrected; the steps a person took stay as they were and keep ``handed_off``, so the story's
    replay shows them as the agent's and does not judge them.
    """
    actions = set(domain.action_names_or_texts)
    for step, action in corrections.items():
        if action not in actions:
            raise ExportError(f"step {step}: '{action}' is not an action of the domain")
    events = normalized(events)
    taken = by_position(events)
    start = _start(events)
    result: List[Event] = []
    step = 0
    skipping = False
    agent_steps: Dict[int, str] = {}
    for position, event in enumerate(events):
        if position < start or (isinstance(event, SlotSet) and event.key == "session_started_metadata"):
            continue  # the story starts at the first customer message
        if isinstance(event, (UserUttered, ActionExecuted)):
            skipping = False
        if position in taken:
            if taken[position].by_agent:
                agent = taken[position].agent
                agent_steps[step] = (agent_names or {}).get(agent or "", agent) or "an agent"
            elif step in corrections and corrections[step] != event.action_name:
                result.append(ActionExecuted(corrections[step], timestamp=event.timestamp))
                skipping = True  # what the wrong action said and set is not part of the right story
                step += 1
                continue
            step += 1
        if skipping and isinstance(event, (BotUttered, SlotSet)):
            continue
        result.append(event)
    unknown = [s for s in corrections if s >= step or s < 0]
    if unknown:
        raise ExportError(f"no step {unknown[0]} in this conversation (it has {step} steps)")
    by_person = sorted(s for s in corrections if s in agent_steps)
    if by_person:
        raise ExportError(f"step {by_person[0]} was taken by {agent_steps[by_person[0]]}, not by the bot: "
                          f"only the bot's steps can be corrected")
    return _explicit_listens(result)


def to_test_story(events: List[Event], name: str, domain: Domain, corrections: Optional[Dict[int, str]] = None,
                  agent_names: Optional[Dict[str, str]] = None) -> str:
    """The events as a Rasa test story; it replays green unless a correction makes it expect another action."""
    name = story_name(name)
    fixed = corrected_events(events, corrections or {}, domain, agent_names)
    tracker = DialogueStateTracker.from_events(name, fixed, domain.slots)
    steps = tracker.as_story().story_steps
    if not steps:
        raise ExportError("this conversation has nothing to export yet")
    steps[0].block_name = name
    return YAMLStoryWriter().dumps(steps, is_test_story=True)


def save_story(yaml_text: str, name: str, folder: Path) -> Path:
    """Write into ``folder`` under a file name made from the story name; never over an existing file."""
    slug = re.sub(r"[^a-z0-9]+", "_", story_name(name).lower()).strip("_")[:60] or "story"
    path = folder / f"test_{slug}.yml"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(yaml_text)
    except FileExistsError as error:
        raise FileExistsError(f"{path.name} already exists in {folder}; choose another story name") from error
    return path
