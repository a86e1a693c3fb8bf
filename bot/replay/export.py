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

from bot.replay.replayer import _start
from bot.replay.stories import NOT_PREDICTED

MAX_NAME = 120


class ExportError(ValueError):
    pass


def story_name(name: str) -> str:
    cleaned = re.sub(r"[\x00-\x1f]", " ", name or "").strip()[:MAX_NAME]
    if not cleaned:
        raise ExportError("give the story a name")
    return cleaned


def corrected_events(events: List[Event], corrections: Dict[int, str], domain: Domain) -> List[Event]:
    actions = set(domain.action_names_or_texts)
    for step, action in corrections.items():
        if action not in actions:
            raise ExportError(f"step {step}: '{action}' is not an action of the domain")
    start = _start(events)
    result: List[Event] = []
    step = 0
    skipping = False
    for position, event in enumerate(events):
        if position < start or (isinstance(event, SlotSet) and event.key == "session_started_metadata"):
            continue  # the story starts at the first customer message
        if isinstance(event, (UserUttered, ActionExecuted)):
            skipping = False
        if isinstance(event, ActionExecuted) and (event.action_name or event.action_text) not in NOT_PREDICTED:
            if step in corrections and corrections[step] != event.action_name:
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
    return result


def to_test_story(events: List[Event], name: str, domain: Domain, corrections: Optional[Dict[int, str]] = None) -> str:
    name = story_name(name)
    fixed = corrected_events(events, corrections or {}, domain)
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
