"""``python -m bot replay``: replay test stories or a recorded conversation against the trained model.

    python -m bot replay tests/                       every story file in a folder
    python -m bot replay tests/test_stories.yml --junit var/replay.xml --html var/replay.html
    python -m bot replay --conversation w-1234abcd    a conversation from the tracker store

Exit code 0 when nothing diverges, 1 when a story or conversation diverges, 2 on bad input.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

from bot.settings import PROJECT_ROOT


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="*", type=Path, help="story files or folders")
    parser.add_argument("--conversation", action="append", default=[], metavar="ID",
                        help="replay a recorded conversation from the tracker store (repeatable)")
    parser.add_argument("--model", type=Path, default=PROJECT_ROOT / "models" / "mend.tar.gz")
    parser.add_argument("--endpoints", type=Path, default=PROJECT_ROOT / "endpoints.yml",
                        help="where the tracker store is configured (for --conversation)")
    parser.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    parser.add_argument("--html", type=Path, help="write a self-contained HTML report here")
    parser.add_argument("--quiet", action="store_true", help="show turns only for stories that diverge")
    return parser


async def _conversation_events(conversation_id: str, endpoints: Path, domain):  # type: ignore[no-untyped-def]
    from rasa.core.tracker_store import TrackerStore
    from rasa.utils.endpoints import read_endpoint_config

    config = read_endpoint_config(str(endpoints), "tracker_store")
    store = TrackerStore.create(config, domain)
    tracker = await store.retrieve_full_tracker(conversation_id)
    if tracker is None or not tracker.events:
        return None
    return list(tracker.events)


async def run(options: argparse.Namespace) -> int:
    from bot.replay.predictors import InProcessPredictor
    from bot.replay.reports import check_report_path, print_replay, print_summary, write_html, write_junit
    from bot.replay.replayer import replay
    from bot.replay.stories import StoryFileError, read_stories, story_files

    if not options.paths and not options.conversation:
        print("replay: name story files or folders, or --conversation ID", file=sys.stderr)
        return 2
    if not options.model.exists():
        print(f"replay: no trained model at {options.model} (run `python -m bot train`)", file=sys.stderr)
        return 2
    for report in (options.junit, options.html):
        try:
            if report is not None:
                check_report_path(report)
        except FileExistsError as error:
            print(f"replay: {error}", file=sys.stderr)
            return 2
    started = time.perf_counter()
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    # Bad input is found before the (slow) model load: the domain comes from the model archive.
    domain = LocalModelStorage.metadata_from_archive(options.model).domain
    cases = []
    try:
        for path in story_files(options.paths):
            for story in read_stories(path, domain):
                cases.append(("story", story.name, story.source, story.events))
    except StoryFileError as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    for conversation_id in options.conversation:
        events = await _conversation_events(conversation_id[:200], options.endpoints, domain)
        if events is None:
            print(f"replay: no conversation '{conversation_id[:200]}' in the tracker store "
                  f"configured in {options.endpoints}", file=sys.stderr)
            return 2
        cases.append(("conversation", conversation_id, f"conversation {conversation_id}", events))
    loading = time.perf_counter()
    predictor = await InProcessPredictor.load(str(options.model))
    loaded = time.perf_counter()
    replays = []
    for kind, name, source, events in cases:
        result = await replay(predictor, events, id=f"{kind}:{source}:{name}", kind=kind, name=name, source=source)
        replays.append(result)
        print_replay(result, sys.stdout, verbose=not options.quiet)
    seconds = time.perf_counter() - started
    print_summary(replays, time.perf_counter() - loaded, sys.stdout)
    print(f"wall time {seconds:.1f} s, of which loading the model {loaded - loading:.1f} s")
    try:
        if options.junit:
            write_junit(replays, options.junit, seconds)
            print(f"JUnit report: {options.junit}")
        if options.html:
            write_html(replays, options.html, seconds)
            print(f"HTML report: {options.html}")
    except (FileExistsError, OSError) as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    return 0 if all(r.passed for r in replays) else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = _parser().parse_args(argv)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(logging.ERROR)
    configure_structlog(logging.ERROR)
    # Libraries' deprecation notices would bury the replay; Rasa re-arms warning filters while loading.
    warnings.showwarning = lambda *args, **kwargs: None
    return asyncio.run(run(options))
