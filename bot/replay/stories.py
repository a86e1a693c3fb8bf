"""Test stories read with Rasa's own YAML story reader and tracker generator, checked against the domain."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, UserUttered
from rasa.shared.core.generator import TrainingDataGenerator
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader
from rasa.shared.core.training_data.structures import RuleStep, StoryGraph
from rasa.shared.exceptions import RasaException

MAX_FILE_BYTES = 2_000_000
# Actions Rasa runs on its own (never predicted by the policies).
NOT_PREDICTED = {"action_session_start", "action_extract_slots"}


class StoryFileError(Exception):
    """A story file that cannot be replayed: says which file and, where known, which line."""

    def __init__(self, path: Path, message: str, line: Optional[int] = None) -> None:
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}{f':{line}' if line else ''}: {message}")


@dataclass
class StoryCase:
    name: str
    source: str
    events: List[Event]


def story_files(paths: Iterable[Path]) -> List[Path]:
    """The YAML files named, or found in folders (sorted), that hold stories."""
    found: List[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.yml") if YAMLStoryReader.is_stories_file(p))
            found += sorted(p for p in path.rglob("*.yaml") if YAMLStoryReader.is_stories_file(p))
        elif path.exists():
            found.append(path)
        else:
            raise StoryFileError(path, "no such file or folder")
    return found


def _line_of(text: str, token: str, after: str = "") -> Optional[int]:
    start = text.find(after) if after else 0
    position = text.find(token, max(start, 0))
    return text.count("\n", 0, position) + 1 if position >= 0 else None


def _yaml_line(error: Exception) -> Optional[int]:
    lines = re.findall(r"line (\d+)", str(error))  # the problem's line comes after the context's
    return int(lines[-1]) if lines else None


def read_stories(path: Path, domain: Domain) -> List[StoryCase]:
    """Every story in one file, as the event lists Rasa's test machinery would replay."""
    try:
        size = path.stat().st_size
    except OSError as error:
        raise StoryFileError(path, f"cannot read it ({error.strerror})") from error
    if size > MAX_FILE_BYTES:
        raise StoryFileError(path, f"the file is {size // 1024} KB; story files over {MAX_FILE_BYTES // 1024} KB are refused")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise StoryFileError(path, f"cannot read it as UTF-8 text ({error})") from error
    try:
        steps = YAMLStoryReader(domain, str(path)).read_from_file(path)
    except (RasaException, ValueError, KeyError, TypeError, AttributeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StoryFileError(path, f"not a valid Rasa story file: {message}", _yaml_line(error)) from error
    stories = [s for s in steps if not isinstance(s, RuleStep)]
    if not stories:
        raise StoryFileError(path, "holds no stories (a `stories:` list of `- story:` entries is expected)")
    intents, actions = set(domain.intents), set(domain.action_names_or_texts)
    for step in stories:
        for event in step.events:
            if isinstance(event, UserUttered) and event.intent_name and event.intent_name not in intents:
                raise StoryFileError(path, f"story '{step.block_name}' uses intent '{event.intent_name}', which is "
                                           f"not in the domain", _line_of(text, event.intent_name, step.block_name))
            if isinstance(event, ActionExecuted):
                name = event.action_name or event.action_text
                if event.action_name and name not in actions:
                    raise StoryFileError(path, f"story '{step.block_name}' uses action '{name}', which is not in "
                                               f"the domain", _line_of(text, name, step.block_name))
    generator = TrainingDataGenerator(StoryGraph(stories), domain, remove_duplicates=False, augmentation_factor=0,
                                      use_story_concatenation=False)
    trackers = generator.generate_story_trackers()
    return [StoryCase(tracker.sender_id or "story", str(path), list(tracker.events)) for tracker in trackers]
