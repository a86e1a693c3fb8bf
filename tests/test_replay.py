"""Trainer replay: every story in the repo replays green; a changed story fails at the right turn; recorded
conversations replay and round-trip into test stories; bad input gets a clear message and nothing is overwritten."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

from bot.replay.conformance import conformance
from bot.replay.export import ExportError, save_story, to_test_story
from bot.replay.predictors import InProcessPredictor
from bot.replay.replayer import replay
from bot.replay.stories import StoryFileError, read_stories, story_files
from bot.settings import PROJECT_ROOT
from tests.rest_client import Customer, get

MODEL = PROJECT_ROOT / "models" / "mend.tar.gz"
STORIES = PROJECT_ROOT / "tests" / "test_stories.yml"


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def predictor(loop):
    return loop.run_until_complete(InProcessPredictor.load(str(MODEL)))


def replay_story(loop, predictor, story):
    return loop.run_until_complete(replay(predictor, story.events, id=story.name, kind="story", name=story.name,
                                          source=story.source))


def test_every_story_in_the_repo_replays_green(loop, predictor):
    stories = [s for path in story_files([PROJECT_ROOT / "tests"]) for s in read_stories(path, predictor.domain)]
    assert len(stories) >= 11
    results = [replay_story(loop, predictor, story) for story in stories]
    failed = [(r.name, r.first_divergence()) for r in results if not r.passed]
    assert failed == []
    first = next(r for r in results if r.name == "delivery, verified customer, calm, full playbook")
    step = first.turns[0].actions[0]
    assert first.turns[0].user.intent == "complain_delivery" and first.turns[0].user.frustration["level"] == "calm"
    assert step.expected == step.predicted == "action_handle_complaint" and step.policy and step.confidence > 0.5
    assert step.playbook_step == "resolve_options"
    assert first.conformance["steps_done"][:4] == ["acknowledge", "apologize", "explain", "resolve_options"]


def test_an_altered_story_is_reported_failing_at_the_right_turn(loop, predictor, tmp_path):
    altered = tmp_path / "test_altered.yml"
    text = STORIES.read_text(encoding="utf-8")
    altered.write_text(text.replace("    intent: choose_option\n  - action: action_apply_resolution",
                                    "    intent: choose_option\n  - action: utter_goodbye", 1), encoding="utf-8")
    results = {r.name: r for r in (replay_story(loop, predictor, s) for s in read_stories(altered, predictor.domain))}
    broken = results.pop("delivery, verified customer, calm, full playbook")
    assert all(r.passed for r in results.values())
    assert broken.divergences == 1
    turn = next(t for t in broken.turns if any(a.diverged for a in t.actions))
    wrong = next(a for a in turn.actions if a.diverged)
    assert turn.index == 1 and turn.user.intent == "choose_option"
    assert (wrong.expected, wrong.predicted) == ("utter_goodbye", "action_apply_resolution")
    assert "expected utter_goodbye, predicted action_apply_resolution" in broken.first_divergence()


@pytest.mark.parametrize("content, expected", [
    ('version: "3.1"\nstories:\n- story: x\n  steps:\n  - user: hi\n    intent: greet\n   - action: utter_greet\n',
     ":7: not a valid Rasa story file"),
    ('version: "3.1"\nstories:\n- story: moon\n  steps:\n  - user: hi\n    intent: greet_the_moon\n  - action: utter_greet\n',
     ":6: story 'moon' uses intent 'greet_the_moon', which is not in the domain"),
    ('version: "3.1"\nstories:\n- story: act\n  steps:\n  - user: hi\n    intent: greet\n  - action: utter_sing\n',
     ":7: story 'act' uses action 'utter_sing', which is not in the domain"),
    ('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hi\n', "holds no stories"),
    ("", "holds no stories"),
])
def test_bad_story_files_are_named_with_file_and_line(predictor, tmp_path, content, expected):
    path = tmp_path / "test_bad.yml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(StoryFileError) as error:
        read_stories(path, predictor.domain)
    assert str(error.value).startswith(str(path)) and expected in str(error.value)


def test_huge_and_missing_story_files_are_refused(predictor, tmp_path):
    huge = tmp_path / "test_huge.yml"
    huge.write_text("# " + "x" * 2_100_000, encoding="utf-8")
    with pytest.raises(StoryFileError, match="refused"):
        read_stories(huge, predictor.domain)
    with pytest.raises(StoryFileError, match="no such file"):
        story_files([tmp_path / "missing.yml"])


def test_recorded_conversation_replays_and_round_trips_into_a_test_story(loop, predictor, live_bot, tmp_path):
    customer = Customer(live_bot.rasa_url, "replay-priya", "cust-1003")
    customer.say("the replacement blender you sent is leaking too, this is the second time")
    customer.say('/choose_option{"option":"refund_full"}')
    tracker = get(f"{live_bot.rasa_url}/conversations/replay-priya/tracker")
    events = [e for e in (Event.from_parameters(d) for d in tracker["events"]) if e is not None]
    recorded = loop.run_until_complete(replay(predictor, events, id="c", kind="conversation", name="priya",
                                              source="conversation replay-priya"))
    assert recorded.passed, recorded.first_divergence()
    assert recorded.turns[0].user.issue_type["name"] == "product"
    assert any("C3003" in text for a in recorded.turns[0].actions for text in a.bot_text)
    assert {"acknowledge", "apologize", "explain", "resolve_options"} <= set(recorded.conformance["steps_done"])
    assert recorded.conformance["complaint_to_acknowledgement"]["turns"] == 0

    exported = to_test_story(events, "priya's second leak", predictor.domain)
    path = save_story(exported, "priya's second leak", tmp_path)
    assert path.name == "test_priya_s_second_leak.yml"
    [story] = read_stories(path, predictor.domain)
    assert replay_story(loop, predictor, story).passed

    # A trainer marks step 2 (the resolution) as wrong: the story now expects the right action.
    corrected = to_test_story(events, "priya corrected", predictor.domain, {2: "action_handoff"})
    path = save_story(corrected, "priya corrected", tmp_path)
    [story] = read_stories(path, predictor.domain)
    result = replay_story(loop, predictor, story)
    wrong = [a for t in result.turns for a in t.actions if a.diverged]
    assert [(a.step, a.expected) for a in wrong] == [(2, "action_handoff")]
    with pytest.raises(FileExistsError):
        save_story(corrected, "priya corrected", tmp_path)  # never over an existing file
    assert path.read_text(encoding="utf-8") == corrected
    with pytest.raises(ExportError, match="not an action"):
        to_test_story(events, "x", predictor.domain, {2: "utter_sing"})
    with pytest.raises(ExportError, match="no step 99"):
        to_test_story(events, "x", predictor.domain, {99: "action_handoff"})


def test_conformance_finds_re_explanations_and_order():
    events = [ActionExecuted("action_listen"), UserUttered("where is my order", {"name": "complain_delivery"}),
              SlotSet("verified", True), SlotSet("customer_id", "cust-1001"),
              ActionExecuted("utter_ask_verification"), SlotSet("playbook_step", "resolve_options"),
              ActionExecuted("action_listen")]
    found = conformance(events, [])
    assert found["re_explanations"] == [{"turn": 0, "asked_for": "email and order number",
                                         "already_known": "verified customer cust-1001"}]
    assert found["steps_done"] == ["acknowledge", "apologize", "explain", "resolve_options"] and found["in_order"]
    assert "compensate" in found["steps_missing"]


def test_command_line_reports_exit_codes_and_never_overwrites(tmp_path, live_bot):
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), RASA_TELEMETRY_ENABLED="false")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", "replay", *args], cwd=PROJECT_ROOT, env=env,
                              capture_output=True, text=True, timeout=600)

    bad = tmp_path / "test_bad.yml"
    bad.write_text('version: "3.1"\nstories:\n- story: x\n  steps:\n  - user: hi\n    intent: nope\n', encoding="utf-8")
    result = run(str(bad))
    assert result.returncode == 2 and f"{bad}:6:" in result.stderr and "Traceback" not in result.stderr
    result = run("--conversation", "no-such-conversation-42")
    assert result.returncode == 2 and "no conversation 'no-such-conversation-42'" in result.stderr
    precious = tmp_path / "notes.xml"
    precious.write_text("my own notes", encoding="utf-8")
    altered = tmp_path / "test_altered.yml"
    altered.write_text(STORIES.read_text(encoding="utf-8").replace(
        "    intent: choose_option\n  - action: action_apply_resolution",
        "    intent: choose_option\n  - action: utter_goodbye", 1), encoding="utf-8")
    lee = Customer(live_bot.rasa_url, "replay-cli-lee", "cust-1004")
    lee.say("I can't get into my account, it says locked")
    endpoints = live_bot.endpoints_file()  # the live bot's tracker store
    result = run(str(altered), "--conversation", "replay-cli-lee", "--endpoints", str(endpoints), "--quiet",
                 "--junit", str(tmp_path / "replay.xml"), "--html", str(tmp_path / "r.html"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL (1 divergence)  delivery, verified customer, calm, full playbook" in result.stdout
    assert "PASS  replay-cli-lee  [conversation replay-cli-lee]" in result.stdout
    assert "11 passed, 1 failed" in result.stdout and "ms per turn" in result.stdout
    junit = (tmp_path / "replay.xml").read_text(encoding="utf-8")
    assert 'failures="1"' in junit and "expected utter_goodbye, predicted action_apply_resolution" in junit
    assert "FAIL (1)" in (tmp_path / "r.html").read_text(encoding="utf-8")
    result = run(str(STORIES), "--quiet", "--junit", str(precious))
    assert result.returncode == 2 and "not overwriting" in result.stderr
    assert precious.read_text(encoding="utf-8") == "my own notes"
