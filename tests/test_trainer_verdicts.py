"""Trainer verdicts without a model: who took each step of a recorded conversation, how its exported story
reads back step for step, and what the playbook counts count (fast: no Rasa server, no model)."""
from __future__ import annotations

import io

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SlotSet, UserUttered

from bot.replay.conformance import NOT_RECORDED, conformance, summed
from bot.replay.export import ExportError, save_story, to_test_story
from bot.replay.holders import normalized, steps
from bot.replay.reports import print_summary
from bot.replay.result import Replay
from bot.replay.stories import read_stories
from bot.settings import PROJECT_ROOT

DOMAIN = Domain.load(str(PROJECT_ROOT / "domain.yml"))
NORA_SAYS = "Nora here: your refund is on its way, 3 to 5 days."


def _user(text: str, intent: str) -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 1.0})


def _bot(policy: str = "RulePolicy"):
    return lambda name: ActionExecuted(name, policy=policy, confidence=1.0)


BOT = _bot()


def recorded_conversation() -> list[Event]:
    """What the gateway leaves in Rasa's tracker: the bot hands off, Nora takes over, sends the bot's own
    action unchanged (run between handed_off false/true), answers a question in her words, hands back."""
    return [
        ActionExecuted("action_session_start"), ActionExecuted("action_listen"),
        _user("where are my headphones?? promised days ago", "complain_delivery"),
        SlotSet("customer_id", "cust-1001"), SlotSet("issue_type", "delivery"), SlotSet("frustration_level", "angry"),
        BOT("action_handle_complaint"), BotUttered("Thanks, Dana. I can see order A1001."),
        SlotSet("case_id", "CASE-501"), SlotSet("playbook_step", "resolve_options"), BOT("action_listen"),
        _user("No. I want to talk to a person.", "request_human"),
        BOT("action_handoff"), BotUttered("I'm getting a colleague for you."), SlotSet("handed_off", True),
        SlotSet("handoff_reason", "customer_request"), BOT("action_listen"),
        _user("hello? anyone there?", "greet"),  # waiting for a person: logged, nobody predicted
        _user("hello??", "greet"),
        SlotSet("handed_off", True),  # Nora takes over
        SlotSet("handed_off", False), ActionExecuted("action_handle_complaint", confidence=0.0),
        BotUttered("Here is what I can do right now. Which would you prefer?"),
        SlotSet("pending_question", "choose_option"), SlotSet("handed_off", True), ActionExecuted("action_listen"),
        _user("when do I get my money back?", "complain_billing"),
        BotUttered(NORA_SAYS, metadata={"agent": "nora"}), ActionExecuted("action_listen"),
        BotUttered("Anything else?", metadata={"agent": "nora"}), ActionExecuted("action_listen"),
        SlotSet("handed_off", False), SlotSet("angry_streak", 0.0),  # Nora hands back
        _user("thanks, that's all", "thank"), SlotSet("frustration_level", "calm"),
        BOT("action_close_loop"), BotUttered("You're welcome!"), SlotSet("playbook_step", "close_loop"),
        BOT("action_listen"),
    ]


def _who(found) -> list[tuple[str, bool]]:
    return [(s.action, s.by_agent) for s in found]


def test_steps_taken_while_a_person_held_the_conversation_are_the_agents():
    found = steps(normalized(recorded_conversation()))
    assert _who(found) == [
        ("action_listen", False), ("action_handle_complaint", False), ("action_listen", False),
        ("action_handoff", False), ("action_listen", False),  # the bot's own handoff and its listen
        ("action_listen", True), ("action_handle_complaint", True), ("action_listen", True),  # waiting, then Nora
        ("action_listen", True), ("action_listen", True),
        ("action_close_loop", False), ("action_listen", False)]  # handed back: the bot's again
    by_step = found[1:]
    assert all(s.agent == "nora" for s in by_step if s.by_agent)
    assert by_step[5].texts == ["Here is what I can do right now. Which would you prefer?"]
    assert by_step[7].texts == [NORA_SAYS] and by_step[8].texts == ["Anything else?"]
    assert NORA_SAYS not in [t for s in by_step if not s.by_agent for t in s.texts]
    assert by_step[0].texts == ["Thanks, Dana. I can see order A1001."]


def test_normalising_puts_events_where_a_story_puts_them():
    events = normalized(recorded_conversation())
    names = [type(e).__name__ + ":" + (getattr(e, "action_name", None) or getattr(e, "key", None) or
                                       getattr(e, "text", "") or "") for e in events]
    # Two messages logged back to back get the listen a story reader puts between them.
    at = names.index("UserUttered:hello? anyone there?")
    assert names[at + 1] == "ActionExecuted:action_listen" and names[at + 2] == "UserUttered:hello??"
    # The bracket around Nora's unchanged bot action is gone; the hand-back follows the next message.
    assert sum(1 for n in names if n == "SlotSet:handed_off") == 3
    thanks = names.index("UserUttered:thanks, that's all")
    assert names[thanks + 1:thanks + 3] == ["SlotSet:handed_off", "SlotSet:angry_streak"]


def test_a_message_nobody_answered_is_not_the_bots_step(tmp_path):
    """The bot was down: two messages logged back to back. The listen a story puts between them is nobody's."""
    events = [ActionExecuted("action_listen"), _user("my parcel is lost", "complain_delivery"),
              _user("hello??", "greet"), BOT("utter_greet"), BOT("action_listen")]
    found = steps(normalized(events))[1:]
    assert _who(found) == [("action_listen", True), ("utter_greet", False), ("action_listen", False)]
    [story] = read_stories(save_story(to_test_story(events, "bot was down", DOMAIN), "bot was down", tmp_path), DOMAIN)
    assert _who(steps(normalized(story.events))[1:]) == _who(found)


def test_exported_story_reads_back_step_for_step_and_corrections_land_on_the_bot(tmp_path):
    events = recorded_conversation()
    conversation_steps = _who(steps(normalized(events)))[1:]  # the replay starts after the first listen
    text = to_test_story(events, "nora takes over", DOMAIN)
    [story] = read_stories(save_story(text, "nora takes over", tmp_path), DOMAIN)
    story_steps = _who(steps(story.events))[1:]
    assert story_steps == conversation_steps

    corrected = to_test_story(events, "close loop corrected", DOMAIN, {9: "action_handoff"})
    [story] = read_stories(save_story(corrected, "close loop corrected", tmp_path), DOMAIN)
    story_steps = _who(steps(story.events))[1:]
    assert story_steps[9] == ("action_handoff", False)
    assert story_steps[:9] == conversation_steps[:9] and story_steps[10:] == conversation_steps[10:]
    with pytest.raises(ExportError, match="step 6 was taken by Nora, not by the bot"):
        to_test_story(events, "x", DOMAIN, {6: "action_handoff"}, {"nora": "Nora"})


def test_conformance_counts_only_what_can_be_measured_and_says_why():
    story_with_playbook = [ActionExecuted("action_listen"), _user("where is it", "complain_delivery"),
                           ActionExecuted("action_handle_complaint"), SlotSet("playbook_step", "resolve_options")]
    story_without = [ActionExecuted("action_listen"), _user("where is it", "complain_delivery"),
                     ActionExecuted("action_handle_complaint")]
    greeting = [ActionExecuted("action_listen"), _user("hi", "greet"), ActionExecuted("utter_greet")]
    each = [conformance(story_with_playbook, [])] + [conformance(story_without, []) for _ in range(9)] + \
        [conformance(greeting, [])]
    assert [c["counted"] for c in each].count(True) == 1
    assert each[1]["not_counted_reason"] == NOT_RECORDED and "never complained" in each[10]["not_counted_reason"]
    total = summed(each)
    assert total["conversations"] == 11 and total["counted"] == 1
    assert total["steps_done"]["acknowledge"] == 1 and "learn" not in total["steps_done"]
    assert total["not_counted"] == {NOT_RECORDED: 9, each[10]["not_counted_reason"]: 1}
    # A recorded conversation always counts: its actions ran, so no playbook step means none was done.
    assert conformance(story_without, [], kind="conversation")["counted"] is True

    out = io.StringIO()
    replays = [Replay(id=str(n), kind="story", name=str(n), source="s", conformance=c) for n, c in enumerate(each)]
    print_summary(replays, 1.0, out)
    assert "playbook over the 1 of 11 replays that can be measured: acknowledge 1/1" in out.getvalue()
    assert "not counted: 9 (because the story does not list the playbook_step slot" in out.getvalue()


def test_steps_a_person_took_are_marked_in_the_conformance():
    events = normalized(recorded_conversation())
    events.insert(events.index(next(e for e in events if isinstance(e, SlotSet) and e.key == "pending_question")),
                  SlotSet("playbook_step", "compensate"))
    found = conformance(events, [], {s.position: s for s in steps(events)}, kind="conversation")
    assert "compensate" in found["steps_done"] and found["steps_by_agent"] == ["compensate"]
