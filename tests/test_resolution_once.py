"""Resolutions and compensation are once per case (issue 9, item 2), on SQLite and PostgreSQL.

A case holds one active resolution. Asked again, in the same conversation or another, in words or
with an old button, the customer gets the resolution they have, its status and what happens next,
and nothing new is granted; a different resolution needs a person, or the explicit change flow
(turn the resolution down right away, pick another offered option: the first is cancelled). A case
reopened because the fix failed records that fix as failed and may get a new one. The limits hold
per case and per customer, also for two writers at once.
"""
from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import yaml

from bot.casedb import repository as repo
from bot.casedb.engine import session_scope
from bot.casedb.models import CaseContact, Compensation, Handoff, Resolution
from bot.settings import DEFAULT_FILE, load_settings
from tests.chat_sim import SimulatedChat

DANA = {"customer_id": "cust-1001"}
PRIYA = {"customer_id": "cust-1003"}
RESHIP = '/choose_option{"option":"reship_express"}'
REFUND = '/choose_option{"option":"refund_full"}'


def _rows(db_url, case_id="CASE-501"):
    with session_scope(db_url) as session:
        resolutions = [(r.option_code, r.status) for r in
                       session.query(Resolution).filter_by(case_id=case_id).order_by(Resolution.id)]
        compensations = [c.amount for c in session.query(Compensation).filter_by(case_id=case_id).order_by(Compensation.id)]
    return resolutions, compensations


def _dana_with_express_replacement(sender: str) -> SimulatedChat:
    chat = SimulatedChat(sender, DANA)
    chat.say("WHERE ARE MY HEADPHONES?? this is ridiculous", "complain_delivery", level="angry")
    reply = chat.texts(chat.say(RESHIP, "choose_option", entities={"option": "reship_express"}))
    assert "Done: A replacement goes out today by express" in reply and "credit" in reply
    return chat


def _choose(chat: SimulatedChat, code: str):
    return chat.say(f'/choose_option{{"option":"{code}"}}', "choose_option", entities={"option": code})


def _assert_resolution_stands(reply: str):
    assert 'Case CASE-501 already has a resolution: "Send a new one by express, free"' in reply
    assert "status: in progress" in reply and "A replacement goes out today by express" in reply
    assert "credit we added stays on your account" in reply
    assert "You'll hear from us by " in reply and "I'll check back here" in reply
    assert "Your reference is CASE-501" in reply
    assert "<utter_offer_human>" in reply and "Done:" not in reply and "I've added" not in reply


# -- Dana's follow-up ---------------------------------------------------------------------------
def test_dana_asking_for_a_full_refund_as_well_gets_her_resolution_not_a_second_one(db_url):
    chat = _dana_with_express_replacement("dana-again")
    before = _rows(db_url)
    assert before[0] == [("reship_express", "in_progress")] and len(before[1]) == 1

    # "as well", before even answering "does that work for you?": read as a choice of the refund option.
    reply = chat.texts(chat.say("can I get a full refund as well?", "choose_option"))
    _assert_resolution_stands(reply)
    assert _rows(db_url) == before
    assert chat.slots["pending_question"] == "offer_human" and chat.slots["resolution"] == "reship_express"

    # The same question read as a new delivery complaint: the same answer, still nothing new.
    reply = chat.texts(chat.say("I want a full refund as well", "complain_delivery", level="annoyed"))
    _assert_resolution_stands(reply)
    assert "Here is what I can do" not in reply and all(not m.get("buttons") or "/choose_option" not in str(m["buttons"])
                                                        for m in chat.transcript[-1]["bot"])
    assert _rows(db_url) == before

    # She takes the offer of a person: a colleague gets the conversation with the case.
    reply = chat.texts(chat.say("yes please", "affirm"))
    assert "<utter_handoff>" in reply
    with session_scope(db_url) as session:
        handoff = session.query(Handoff).filter_by(conversation_id="dana-again").one()
        assert handoff.case_id == "CASE-501" and "chosen: reship_express" in handoff.summary
    assert _rows(db_url) == before


def test_an_old_button_tapped_again_grants_nothing(db_url):
    chat = _dana_with_express_replacement("dana-buttons")
    before = _rows(db_url)
    chat.say("yes that works", "affirm")
    # Every option button of the first answer, tapped again after the case is resolved.
    for code in ("refund_full", "wait_priority", "reship_express"):
        reply = chat.texts(_choose(chat, code))
        _assert_resolution_stands(reply)
    assert _rows(db_url) == before


def test_two_conversations_about_one_case(db_url):
    # Two tabs open at once: both were offered the options before either chose.
    first, second = SimulatedChat("dana-tab-1", DANA), SimulatedChat("dana-tab-2", DANA)
    for chat in (first, second):
        chat.say("where are my headphones??", "complain_delivery", level="annoyed")
        assert chat.slots["offered_options"] == ["reship_express", "refund_full"]
    assert "Done:" in first.texts(_choose(first, "reship_express"))
    reply = second.texts(_choose(second, "refund_full"))
    _assert_resolution_stands(reply)
    assert _rows(db_url)[0] == [("reship_express", "in_progress")] and len(_rows(db_url)[1]) == 1

    # A conversation started the next day asks where things are: the resolution, not the options again.
    later = SimulatedChat("dana-next-day", DANA)
    reply = later.texts(later.say("any news on my headphones? I'd like the money back now", "complain_delivery",
                                  level="annoyed"))
    assert "Thanks, Dana. I have the history here" in reply
    _assert_resolution_stands(reply)
    assert later.slots["case_id"] == "CASE-501" and later.slots["offered_options"] == []
    reply = later.texts(later.say(REFUND, "choose_option", entities={"option": "refund_full"}))
    _assert_resolution_stands(reply)
    assert _rows(db_url)[0] == [("reship_express", "in_progress")] and len(_rows(db_url)[1]) == 1


def test_another_kind_of_problem_in_the_same_conversation_is_a_case_of_its_own(db_url):
    chat = _dana_with_express_replacement("dana-and-billing")
    before = _rows(db_url)
    reply = chat.texts(chat.say("and I was also charged twice for them!", "complain_billing", issue_confidence=0.97))
    assert "already has a resolution" not in reply and "Here is what I can do" in reply
    billing_case = chat.slots["case_id"]
    assert billing_case != "CASE-501" and chat.slots["offered_options"] == ["billing_review", "refund_duplicate"]
    assert "Done:" in chat.texts(_choose(chat, "billing_review"))
    assert _rows(db_url, billing_case)[0] == [("billing_review", "in_progress")]
    assert _rows(db_url) == before


def test_hostile_or_empty_follow_ups_change_nothing(db_url):
    chat = _dana_with_express_replacement("dana-hostile")
    before = _rows(db_url)
    for text, entities in (("", None), ("x" * 100_000, None), ("refund", {"option": "<script>alert(1)</script>"}),
                           ('/choose_option{"option":"refund_full\' OR 1=1"}', {"option": "refund_full' OR 1=1"})):
        reply = chat.texts(chat.say(text, "choose_option", entities=entities))
        assert "Traceback" not in reply and "CASE-501" in reply and "Done:" not in reply
    assert _rows(db_url) == before
    with session_scope(db_url) as session:
        contact = session.query(CaseContact).filter_by(conversation_id="dana-hostile").one()
        assert len(contact.summary) <= 4000


# -- the explicit change flow -------------------------------------------------------------------
def test_turning_the_resolution_down_right_away_changes_it_and_cancels_the_first(db_url):
    chat = _dana_with_express_replacement("dana-change")
    granted = _rows(db_url)[1]
    reply = chat.texts(chat.say("no, that doesn't work for me", "deny"))
    assert "Would one of these suit you better?" in reply
    reply = chat.texts(_choose(chat, "refund_full"))
    assert "cancelled \"Send a new one by express, free\"" in reply and "Done: We cancel the order and refund" in reply
    assert "I've added" not in reply  # the credit already given stays; nothing on top
    assert _rows(db_url) == ([("reship_express", "cancelled"), ("refund_full", "in_progress")], granted)
    # ... and having changed once, "as well" is still answered with the one resolution.
    reply = chat.texts(chat.say("and the express one as well please", "choose_option"))
    assert 'already has a resolution: "Cancel and refund in full"' in reply and "Done:" not in reply
    assert _rows(db_url) == ([("reship_express", "cancelled"), ("refund_full", "in_progress")], granted)


# -- reopened because the fix failed ------------------------------------------------------------
def test_priya_reopened_case_gets_a_new_resolution_and_the_failed_fix_is_recorded(db_url):
    chat = SimulatedChat("priya-again", PRIYA)
    reply = chat.texts(chat.say("the replacement blender leaks too", "complain_product", level="annoyed"))
    assert "Here is what I can do" in reply and chat.slots["offered_options"] == ["refund_keep", "upgrade_model"]
    assert _rows(db_url, "CASE-733")[0] == [("replace", "failed")]
    reply = chat.texts(chat.say("full refund please", "choose_option"))
    assert "refund you in full" in reply and "credit" in reply
    resolutions, compensations = _rows(db_url, "CASE-733")
    assert resolutions == [("replace", "failed"), ("refund_keep", "in_progress")] and len(compensations) == 1
    # Another conversation asking for the upgrade too: the refund stands.
    other = SimulatedChat("priya-other", PRIYA)
    reply = other.texts(other.say("can I have the upgraded model as well?", "complain_product"))
    assert 'Case CASE-733 already has a resolution: "Full refund, no need to return it"' in reply
    assert _rows(db_url, "CASE-733") == (resolutions, compensations)


def test_priya_changes_her_mind_as_in_the_demo_story(db_url):
    chat = SimulatedChat("priya-story", PRIYA)
    chat.say("the replacement blender leaks as well, again", "complain_product", level="annoyed")
    assert "Done:" in chat.texts(_choose(chat, "upgrade_model"))
    chat.say("no actually", "deny")
    assert "Done: We refund you in full" in chat.texts(_choose(chat, "refund_keep"))
    assert "Thank you for your patience" in chat.texts(chat.say("yes", "affirm"))
    resolutions, compensations = _rows(db_url, "CASE-733")
    assert resolutions == [("replace", "failed"), ("upgrade_model", "cancelled"), ("refund_keep", "in_progress")]
    assert len(compensations) == 1


def test_a_confirmed_fix_is_done_and_a_later_failure_reopens_the_case(db_url):
    chat = _dana_with_express_replacement("dana-done")
    with session_scope(db_url) as session:
        repo.close_case(session, "CASE-501")
    assert _rows(db_url)[0] == [("reship_express", "done")]
    again = SimulatedChat("dana-weeks-later", DANA)
    reply = again.texts(again.say("the replacement headphones never came either!", "complain_delivery", level="angry"))
    assert "Here is what I can do" in reply and "already has a resolution" not in reply
    assert _rows(db_url)[0] == [("reship_express", "failed")]
    assert "Done:" in again.texts(_choose(again, "refund_full"))
    resolutions, compensations = _rows(db_url)
    assert resolutions == [("reship_express", "failed"), ("refund_full", "in_progress")]
    assert sum(compensations) <= Decimal("50.00")  # max_per_case holds over both resolutions


# -- two writers at once --------------------------------------------------------------------------
def test_two_requests_choosing_at_the_same_moment_record_exactly_one_resolution(db_url):
    chats = [SimulatedChat(f"dana-race-{i}", DANA) for i in range(2)]
    for chat in chats:
        chat.say("where are my headphones??", "complain_delivery", level="angry")
    start, replies, errors = threading.Barrier(2), {}, []

    def choose(index: int, code: str) -> None:
        try:
            start.wait(timeout=10)
            replies[index] = SimulatedChat.texts(_choose(chats[index], code))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=choose, args=(0, "reship_express")),
               threading.Thread(target=choose, args=(1, "refund_full"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(replies) == 2
    resolutions, compensations = _rows(db_url)
    assert len([r for r in resolutions if r[1] == "in_progress"]) == 1 and len(resolutions) == 1
    assert len(compensations) == 1
    done = [r for r in replies.values() if "Done:" in r]
    refused = [r for r in replies.values() if "already has a resolution" in r]
    assert len(done) == 1 and len(refused) == 1 and "can't reach our case system" not in "".join(replies.values())


def test_a_second_choice_waits_for_the_first_and_then_finds_it(db_url):
    """The lock, step by step: the first writer holds the case uncommitted while the second turn runs."""
    waiting = SimulatedChat("dana-waits", DANA)
    waiting.say("where are my headphones??", "complain_delivery", level="annoyed")
    first_holds, result = threading.Event(), {}
    release = threading.Event()

    def first_writer() -> None:
        with session_scope(db_url) as session:
            repo.record_resolution(session, "CASE-501", "wait_priority", "We push the carrier for priority handling.")
            first_holds.set()
            release.wait(timeout=30)
        result["committed_at"] = time.monotonic()

    def second_turn() -> None:
        result["reply"] = SimulatedChat.texts(_choose(waiting, "refund_full"))
        result["answered_at"] = time.monotonic()

    writer = threading.Thread(target=first_writer)
    writer.start()
    assert first_holds.wait(timeout=10)
    turn = threading.Thread(target=second_turn)
    turn.start()
    time.sleep(1.0)
    assert "reply" not in result  # the second turn waits on the held case, it does not go ahead
    release.set()
    writer.join(timeout=30)
    turn.join(timeout=30)
    assert result["answered_at"] >= result["committed_at"]
    assert 'already has a resolution: "Keep waiting, with daily updates"' in result["reply"]
    assert _rows(db_url) == ([("wait_priority", "in_progress")], [])


def test_the_repository_refuses_a_second_resolution_and_amounts_over_the_limits(db_url):
    with session_scope(db_url) as session:
        repo.record_resolution(session, "CASE-501", "reship_express", "express")
    with session_scope(db_url) as session:
        with pytest.raises(repo.ResolutionExists) as clash:
            repo.record_resolution(session, "CASE-501", "refund_full", "refund")
        assert clash.value.existing.option_code == "reship_express"
        # Replacing needs the customer's explicit change of that very resolution.
        with pytest.raises(repo.ResolutionExists):
            repo.record_resolution(session, "CASE-501", "refund_full", "refund", replaces="wait_priority")
    with session_scope(db_url) as session:
        repo.record_compensation(session, "CASE-501", "store_credit", Decimal("40.00"), "USD", "late")
        with pytest.raises(repo.CompensationRefused):
            repo.record_compensation(session, "CASE-501", "store_credit", Decimal("10.01"), "USD", "again")
        repo.record_compensation(session, "CASE-501", "store_credit", Decimal("10.00"), "USD", "up to the limit")
        with pytest.raises(repo.CompensationRefused):
            repo.record_compensation(session, "CASE-501", "store_credit", Decimal("0.01"), "USD", "over")
        with pytest.raises(repo.CompensationRefused):
            repo.record_compensation(session, "CASE-501", "store_credit", Decimal("-5"), "USD", "negative")
    assert _rows(db_url)[1] == [Decimal("40.00"), Decimal("10.00")]


def test_concurrent_grants_on_two_cases_of_one_customer_stay_within_the_customer_limit(db_url):
    with session_scope(db_url) as session:
        cases = [repo.open_case(session, "cust-1002", "billing", "B2002", f"problem {i}") for i in range(2)]
    limits = {"max_per_case": 50, "max_per_customer": 60, "customer_window_days": 90}
    start, outcomes = threading.Barrier(2), []

    def grant(case_id: str) -> None:
        start.wait(timeout=10)
        try:
            with session_scope(db_url) as session:
                repo.record_compensation(session, case_id, "store_credit", Decimal("40.00"), "USD", "race",
                                         settings=limits)
            outcomes.append("granted")
        except repo.CompensationRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=grant, args=(case_id,)) for case_id in cases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["granted", "refused"]
    with session_scope(db_url) as session:
        since = datetime.utcnow() - timedelta(days=90)
        assert repo.customer_compensation_total(session, "cust-1002", since) == Decimal("40.00")


# -- the per-customer limit -----------------------------------------------------------------------
@pytest.fixture
def customer_limit_50(tmp_path, monkeypatch):
    """The shipped settings with a per-customer limit of $50 (the same as one case's)."""
    settings = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    settings["compensation"]["max_per_customer"] = 50.00
    path = tmp_path / "recovery.yml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    monkeypatch.setenv("MEND_SETTINGS_FILE", str(path))
    load_settings.cache_clear()
    yield
    monkeypatch.delenv("MEND_SETTINGS_FILE")
    load_settings.cache_clear()


def _customer_total(db_url, customer_id):
    with session_scope(db_url) as session:
        return repo.customer_compensation_total(session, customer_id, datetime.utcnow() - timedelta(days=90))


def test_the_customer_limit_holds_across_cases_and_conversations(db_url, customer_limit_50):
    first = SimulatedChat("dana-case-1", DANA)
    first.say("WHERE ARE MY HEADPHONES?? this is ridiculous", "complain_delivery", level="angry")
    assert "$40.00 credit" in first.texts(first.say(RESHIP, "choose_option", entities={"option": "reship_express"},
                                                    level="angry"))
    assert _customer_total(db_url, "cust-1001") == Decimal("40.00")
    # A week later, another conversation, another problem: a double charge.
    billing = SimulatedChat("dana-case-2", DANA)
    billing.say("you charged me twice for my headphones!!", "complain_billing", level="angry")
    second_case = billing.slots["case_id"]
    assert second_case != "CASE-501"
    reply = billing.texts(billing.say("refund the duplicate please", "choose_option", level="angry"))
    assert "Done:" in reply and "$10.00 credit" in reply  # the $20 tier, clipped to what is left of $50
    # A third problem in yet another conversation: the customer's limit is used up.
    third = SimulatedChat("dana-case-3", DANA)
    third.say("nobody answered my emails, WORST SUPPORT EVER", "complain_service", level="angry")
    assert third.slots["case_id"] not in ("CASE-501", second_case)
    reply = third.texts(third.say("a senior colleague please", "choose_option", level="angry"))
    assert "Done:" in reply and "credit" not in reply
    assert _customer_total(db_url, "cust-1001") == Decimal("50.00")


def test_the_shipped_customer_limit_counts_only_its_window(db_url):
    assert repo.compensation_limits() == (Decimal("50.00"), Decimal("80.00"), 90)
    with session_scope(db_url) as session:
        old = repo.open_case(session, "cust-1005", "delivery", "E5005", "an old problem")
        recent = repo.open_case(session, "cust-1005", "technical", None, "a recent problem")
        repo.record_compensation(session, old, "store_credit", Decimal("50.00"), "USD", "long ago",
                                 now=datetime.utcnow() - timedelta(days=120))
        repo.record_compensation(session, recent, "store_credit", Decimal("50.00"), "USD", "last week")
        third = repo.open_case(session, "cust-1005", "service", None, "today")
        room = repo.compensation_room(session, third)
        assert room.customer_granted == Decimal("50.00") and room.left == Decimal("30.00")
        with pytest.raises(repo.CompensationRefused):
            repo.record_compensation(session, third, "store_credit", Decimal("30.01"), "USD", "over")


# -- through the running bot --------------------------------------------------------------------
@pytest.fixture
def fresh_live_data(live_bot):
    from tests.conftest import _reset

    _reset(live_bot.case_db_url)
    yield live_bot
    _reset(live_bot.case_db_url)  # later suites meet the demo scenarios as seeded


def test_dana_cannot_take_a_refund_on_top_through_the_rest_channel(fresh_live_data):
    from tests.rest_client import Customer, post

    live_bot = fresh_live_data
    dana = Customer(live_bot.rasa_url, f"t-{uuid.uuid4().hex[:10]}", "cust-1001")
    text = dana.text_of(dana.say("WHERE ARE MY HEADPHONES?! I was told they'd come yesterday. Ridiculous."))
    assert "CASE-501" in text
    text = dana.text_of(dana.say(RESHIP))
    assert "Done: A replacement goes out today by express" in text and "credit" in text
    for follow_up in ("can I get a full refund as well?", REFUND):
        text = dana.text_of(dana.say(follow_up))
        assert 'already has a resolution: "Send a new one by express, free"' in text, dana.transcript
        assert "Your reference is CASE-501" in text and "Done:" not in text
    # An agent sending the bot's "apply resolution" suggestion from the console runs the action through
    # Rasa's execute endpoint, as bot/gateway/routing/agent_replies.py does: the same answer.
    executed = post(f"{live_bot.rasa_url}/conversations/{dana.sender}/execute?include_events=NONE",
                    {"name": "action_apply_resolution"})
    text = "\n".join(m.get("text") or "" for m in executed["messages"])
    assert 'already has a resolution: "Send a new one by express, free"' in text and "Done:" not in text
    # A new conversation tapping the old button: the same answer.
    again = Customer(live_bot.rasa_url, f"t-{uuid.uuid4().hex[:10]}", "cust-1001")
    again.say("hi, about my headphones order")
    text = again.text_of(again.say(REFUND))
    assert "Done:" not in text
    with session_scope(live_bot.case_db_url) as session:
        assert [(r.option_code, r.status) for r in session.query(Resolution).filter_by(case_id="CASE-501")] == [
            ("reship_express", "in_progress")]
        assert session.query(Compensation).filter_by(case_id="CASE-501").count() == 1
