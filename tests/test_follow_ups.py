"""Promises kept: the check-in the bot promises ("I'll check back here myself") reaches the customer.

Unit level: the gateway's follow-up job against a real case database (SQLite and PostgreSQL) and
the real Rasa + action server of ``live_bot``. End to end: the whole product in processes (Rasa,
action server, gateway) with ``follow_up.reminder_minutes: 1`` in its settings file, Dana in the
widget, Rasa and the gateway restarted before the check-in is due.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any, Dict, List

import aiohttp
import pytest
import yaml
from aiohttp.test_utils import TestServer

from bot.casedb import repository as repo
from bot.casedb.engine import session_scope
from bot.casedb.models import Account, Case, ChatConversation, ChatMessage, FollowUp, Handoff
from bot.gateway import transcript
from bot.gateway.accounts import create_account
from bot.gateway.app import create_app
from bot.gateway.client import Staff, Widget
from bot.gateway.config import load_config
from bot.gateway.follow_ups import FollowUpJob, FollowUpSettings
from bot.gateway.hub import Hub
from bot.gateway.identity import sign_customer_token
from bot.gateway.rasa_client import RasaClient
from bot.casedb.runner import Database
from bot.gateway.routing import Router
from bot.settings import DEFAULT_FILE
from tests.conftest import _reset, running

TOKEN_SECRET = "follow-up-test-customer-secret-long-enough-for-hs256"
SESSION_SECRET = "follow-up-test-session-secret-long-enough-for-hs256"
PASSWORD = "correct horse battery"
CHECK_IN = "checking in on"
PORT_BASE = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))


# -- helpers --------------------------------------------------------------------------------------
def _chat(url: str, customer_id: str = "cust-1001", status: str = "bot", agent: str | None = None) -> str:
    conversation_id = "w-fu-" + uuid.uuid4().hex[:12]
    with session_scope(url) as session:
        transcript.open_conversation(session, conversation_id, customer_id)
        transcript.update(session, conversation_id, status=status, assigned_agent=agent, case_id="CASE-501")
    return conversation_id


def _promise(url: str, conversation_id: str, due_in: timedelta, case_id: str = "CASE-501") -> int:
    with session_scope(url) as session:
        repo.schedule_follow_up(session, case_id, conversation_id, datetime.utcnow() + due_in,
                                "Check that 'Free express replacement' worked.")
        return session.query(FollowUp.id).filter(FollowUp.conversation_id == conversation_id) \
            .order_by(FollowUp.id.desc()).first()[0]


def _row(url: str, follow_up_id: int) -> Dict[str, Any]:
    with session_scope(url) as session:
        row = session.get(FollowUp, follow_up_id)
        return {"done": row.done, "sent_at": row.sent_at, "attempts": row.attempts, "outcome": row.outcome}


def _bot_lines(url: str, conversation_id: str) -> List[ChatMessage]:
    with session_scope(url) as session:
        return [m for m in session.query(ChatMessage).filter(ChatMessage.conversation_id == conversation_id,
                                                             ChatMessage.sender == "bot").order_by(ChatMessage.id)]


def _check_ins(url: str, conversation_id: str) -> List[ChatMessage]:
    return [m for m in _bot_lines(url, conversation_id) if CHECK_IN in m.text]


async def _rasa_knows_the_case(rasa_url: str, conversation_id: str) -> None:
    """Dana complained in this conversation (through Rasa's REST channel, as the gateway sends it): the bot
    found her case, which the check-in names."""
    rasa = RasaClient(rasa_url, timeout=60)
    await rasa.start()
    try:
        replies = await rasa.send(conversation_id, "where are my headphones?? they were promised days ago",
                                  {"customer_id": "cust-1001"})
        assert any("CASE-501" in (r.get("text") or "") for r in replies), replies
    finally:
        await rasa.close()


class Jobs:
    """Follow-up jobs as gateway processes run them: each with its own database handle, Rasa client and hub."""

    def __init__(self) -> None:
        self.clients: List[RasaClient] = []

    async def make(self, url: str, rasa_url: str, **settings: float) -> FollowUpJob:
        db = Database(url)
        rasa = RasaClient(rasa_url, timeout=20)
        await rasa.start()
        self.clients.append(rasa)
        values = dict(poll_seconds=0.5, retry_seconds=30.0, retry_max_seconds=600.0)
        values.update(settings)
        return FollowUpJob(db, rasa, Router(db, rasa, Hub()), FollowUpSettings(**values), rasa_timeout=20)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@pytest.fixture
async def jobs():
    made = Jobs()
    yield made
    await made.close()


# -- the job against a real database ---------------------------------------------------------------
async def test_a_due_check_in_is_posted_once_and_one_not_due_waits(db_url, live_bot, jobs):
    conversation_id = _chat(db_url)
    await _rasa_knows_the_case(live_bot.rasa_url, conversation_id)
    due = _promise(db_url, conversation_id, timedelta(seconds=-5))
    later = _promise(db_url, conversation_id, timedelta(hours=1))
    job = await jobs.make(db_url, live_bot.rasa_url)

    assert await job.run_once() == 1
    [check_in] = _check_ins(db_url, conversation_id)
    assert "Hi Dana, checking in on CASE-501" in check_in.text
    assert [b["title"] for b in transcript.message_dict(check_in)["buttons"]] == ["Yes, all good", "No, not yet"]
    delivered = _row(db_url, due)
    assert delivered["done"] and delivered["attempts"] == 1 and delivered["outcome"] is None
    assert delivered["sent_at"] <= datetime.utcnow()
    assert _row(db_url, later) == {"done": False, "sent_at": None, "attempts": 0, "outcome": None}

    assert await job.run_once() == 0  # nothing more is due: nothing is said twice
    assert len(_check_ins(db_url, conversation_id)) == 1
    with session_scope(db_url) as session:  # posting is activity: this is the conversation the customer resumes
        assert transcript.latest_open_conversation(session, "cust-1001", 1).id == conversation_id


async def test_when_rasa_is_down_the_check_in_waits_and_is_sent_later(db_url, live_bot, jobs):
    conversation_id = _chat(db_url)
    await _rasa_knows_the_case(live_bot.rasa_url, conversation_id)
    due = _promise(db_url, conversation_id, timedelta(seconds=-1))
    down = await jobs.make(db_url, f"http://127.0.0.1:{PORT_BASE + 99}", retry_seconds=2)  # nothing listens there

    assert await down.run_once() == 0
    failed = _row(db_url, due)
    assert failed["attempts"] == 1 and not failed["done"] and failed["sent_at"] > datetime.utcnow()  # backing off
    assert await down.run_once() == 0 and _row(db_url, due)["attempts"] == 1  # not hammered while backing off
    assert _check_ins(db_url, conversation_id) == []

    up = await jobs.make(db_url, live_bot.rasa_url)
    assert await up.run_once() == 0  # still within the backoff
    await asyncio.sleep(2.2)
    assert await up.run_once() == 1
    assert len(_check_ins(db_url, conversation_id)) == 1
    assert _row(db_url, due)["done"] and _row(db_url, due)["attempts"] == 2


async def test_two_jobs_running_side_by_side_send_each_check_in_once(db_url, live_bot, jobs):
    conversations = [_chat(db_url) for _ in range(3)]
    for conversation_id in conversations:
        await _rasa_knows_the_case(live_bot.rasa_url, conversation_id)
        _promise(db_url, conversation_id, timedelta(seconds=-1))
    first, second = await jobs.make(db_url, live_bot.rasa_url), await jobs.make(db_url, live_bot.rasa_url)

    counts = await asyncio.gather(first.run_once(), second.run_once(), first.run_once(), second.run_once())
    assert sum(counts) == 3
    assert [len(_check_ins(db_url, c)) for c in conversations] == [1, 1, 1]


def test_a_claim_is_won_by_exactly_one_of_many_concurrent_claimers(db_url):
    conversation_id = _chat(db_url)
    follow_up_id = _promise(db_url, conversation_id, timedelta(seconds=-1))
    results: List[bool] = []
    start = threading.Barrier(6)

    def claim() -> None:
        start.wait()
        with session_scope(db_url) as session:
            results.append(repo.claim_follow_up(session, follow_up_id, 0, datetime.utcnow() + timedelta(seconds=30)))

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    with session_scope(db_url) as session:  # the loser of a claim cannot mark it delivered either
        assert repo.mark_follow_up_delivered(session, follow_up_id, attempt=0) is False
        assert repo.mark_follow_up_delivered(session, follow_up_id, attempt=1) is True


# -- a person has the conversation: the bot does not talk over them ----------------------------------
@pytest.fixture
async def gateway(live_bot, tmp_path):
    url = live_bot.case_db_url
    with session_scope(url) as session:
        if session.query(Account).filter(Account.username == "maria").first() is None:
            create_account(session, "maria", PASSWORD, "agent", "Maria")
    config = load_config(rasa_url=live_bot.rasa_url, database_url=url, customer_token_secret=TOKEN_SECRET,
                         session_secret=SESSION_SECRET, port=0, trainer_export_dir=str(tmp_path / "trainer"))
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    agent = Staff(base)
    yield type("Gateway", (), {"url": base, "db_url": url, "agent": agent})
    await agent.close()
    await server.close()


async def test_a_check_in_due_while_an_agent_has_the_chat_goes_to_the_agent(gateway):
    url = gateway.db_url
    conversation_id = _chat(url, status="agent", agent="maria")
    agent = gateway.agent
    assert await agent.login("maria", PASSWORD) == 302
    await agent.open_console()
    follow_up_id = _promise(url, conversation_id, timedelta(seconds=-1))

    event = await agent.until(lambda e: e.get("type") == "follow_up_due", timeout=30)  # the job polls every 5 s
    assert event["conversation_id"] == conversation_id and event["case_id"] == "CASE-501"
    assert event["follow_up"]["state"] == "with_agent" and "Free express replacement" in event["follow_up"]["note"]
    assert _row(url, follow_up_id)["outcome"] == "agent"
    assert _bot_lines(url, conversation_id) == []  # nothing said to the customer over the agent's head

    status, detail = await agent.get(f"/api/conversations/{conversation_id}")
    assert status == 200
    [case] = [c for c in detail["history"]["cases"] if c["id"] == "CASE-501"]
    [promise] = [p for p in case["follow_ups"] if p["id"] == follow_up_id]
    assert promise["state"] == "with_agent" and promise["due_at"].endswith("Z")


def test_the_console_names_each_promise_state(db_url):
    from bot.gateway.views import history_view

    conversation_id = _chat(db_url)
    scheduled = _promise(db_url, conversation_id, timedelta(hours=2))
    overdue = _promise(db_url, conversation_id, timedelta(minutes=-10))
    sent = _promise(db_url, conversation_id, timedelta(minutes=-20))
    answered = _promise(db_url, conversation_id, timedelta(minutes=-30))
    with session_scope(db_url) as session:
        for follow_up_id in (sent, answered):
            assert repo.claim_follow_up(session, follow_up_id, 0, datetime.utcnow())
            assert repo.mark_follow_up_delivered(session, follow_up_id, 1)
        assert repo.record_follow_up_outcome(session, "CASE-501", "not_fixed")  # the latest delivered one
        view = history_view(repo.customer_history(session, "cust-1001"))
    [case] = [c for c in view["cases"] if c["id"] == "CASE-501"]
    states = {p["id"]: p for p in case["follow_ups"]}
    assert states[scheduled]["state"] == "scheduled" and states[scheduled]["sent_at"] is None
    assert states[overdue]["state"] == "overdue"
    answered_now = states[sent] if states[sent]["outcome"] else states[answered]
    assert answered_now["state"] == "answered" and answered_now["outcome"] == "not_fixed"
    assert sorted(p["state"] for p in (states[sent], states[answered])) == ["answered", "sent"]
    with pytest.raises(ValueError):
        with session_scope(db_url) as session:
            repo.record_follow_up_outcome(session, "CASE-501", "<script>")


# -- the whole product, with restarts ---------------------------------------------------------------
@pytest.fixture(scope="module")
def product(tmp_path_factory):
    """Rasa, action server and gateway in their own processes, the check-in one minute after a resolution."""
    from bot.services import Services

    directory = tmp_path_factory.mktemp("follow-ups")
    url = f"sqlite:///{directory / 'mend.db'}"
    _reset(url)
    with session_scope(url) as session:
        create_account(session, "maria", PASSWORD, "agent", "Maria")
    settings = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    settings["follow_up"].update(reminder_minutes=1, poll_seconds=2, retry_seconds=2, retry_max_seconds=8)
    settings_file = directory / "recovery.yml"
    settings_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
    services = Services(rasa_port=PORT_BASE + 10, actions_port=PORT_BASE + 60, gateway_port=PORT_BASE + 20,
                        tracker_db=directory / "tracker.db", log_dir=directory / "log",
                        env={"MEND_DATABASE_URL": url, "MEND_SETTINGS_FILE": str(settings_file),
                             "MEND_CUSTOMER_TOKEN_SECRET": TOKEN_SECRET, "MEND_SESSION_SECRET": SESSION_SECRET,
                             "RASA_TELEMETRY_ENABLED": "false"})
    with running(services, url):
        yield services


async def _until_handled(url: str, conversation_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(url) as session:
            pending = session.query(ChatMessage).filter(ChatMessage.conversation_id == conversation_id,
                                                        ChatMessage.sender == "customer",
                                                        ChatMessage.delivered_to_bot.is_(False)).count()
        if not pending:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the gateway did not finish handling Dana's messages")


def _is_check_in(event: Dict[str, Any]) -> bool:
    return event.get("type") == "message" and event["message"]["sender"] == "bot" and CHECK_IN in event["message"]["text"]


async def test_the_check_in_reaches_dana_on_time_after_restarts_once_and_not_yet_brings_a_person(product):
    url = product.case_db_url
    base = product.gateway_url
    dana_token = sign_customer_token("cust-1001", TOKEN_SECRET)
    async with aiohttp.ClientSession() as http:
        widget = Widget(base, http)
        await widget.connect(token=dana_token)
        conversation_id = widget.conversation_id
        await widget.send("where are my headphones?? they were promised days ago")
        options = await widget.until(lambda e: e.get("type") == "message" and e["message"]["buttons"], timeout=120)
        choice = options["message"]["buttons"][0]
        await widget.send(choice["title"], payload=choice["payload"])
        promised = await widget.until(lambda e: e.get("type") == "message" and "check back here myself"
                                      in e["message"]["text"], timeout=120)
        assert "CASE-501" in promised["message"]["text"]
        with session_scope(url) as session:
            row = session.query(FollowUp).filter(FollowUp.conversation_id == conversation_id).one()
            due_at, follow_up_id = row.due_at, row.id
        assert timedelta(seconds=50) < due_at - datetime.utcnow() <= timedelta(seconds=61)
        resume = widget.resume
        await widget.close()
        await _until_handled(url, conversation_id)  # the restarts come between turns, not inside one

        # Both processes crash; Rasa forgets everything it kept in memory. The gateway comes back first and
        # the open widget reconnects with its resume token; Rasa comes back while the widget waits.
        product.kill("gateway")
        product.kill("rasa")
        await asyncio.to_thread(product.restart, "gateway")
        widget = Widget(base, http)
        welcome = await widget.connect(token=dana_token, resume=resume)
        assert welcome["conversation_id"] == conversation_id
        assert datetime.utcnow() < due_at and not any(CHECK_IN in m["text"] for m in welcome["history"])
        async def restart_rasa() -> datetime:
            await asyncio.to_thread(product.restart, "rasa")
            return datetime.utcnow()  # it answers again (restart waits for /status)

        rasa_back = asyncio.ensure_future(restart_rasa())
        arrived = await widget.until(_is_check_in, timeout=240)
        arrived_at = datetime.utcnow()
        rasa_up_at = await rasa_back
        with session_scope(url) as session:
            attempts = session.get(FollowUp, follow_up_id).attempts
        # On time: never before it was due; after that, within a poll (2 s) plus a margin for this loaded
        # machine; if Rasa was still starting at the due time, within a retry (at most 8 s) of its return.
        assert arrived_at >= due_at - timedelta(seconds=1), (arrived_at, due_at)
        rasa_up_at = due_at if attempts == 1 else rasa_up_at
        assert arrived_at <= max(due_at, rasa_up_at) + timedelta(seconds=2 + 8 + 15), (arrived_at, due_at, rasa_up_at)
        assert arrived["message"]["text"].startswith("Hi Dana, checking in on CASE-501")
        assert [b["payload"] for b in arrived["message"]["buttons"]] == ["/affirm", "/deny"]

        await widget.settle(quiet=5.0)  # a few more polls: exactly once
        assert sum(1 for e in widget.received if _is_check_in(e)) == 1
        assert len(_check_ins(url, conversation_id)) == 1

        # The agents' view: the promise, its due time and that it was sent.
        agent = Staff(base)
        try:
            assert await agent.login("maria", PASSWORD) == 302
            status, detail = await agent.get(f"/api/conversations/{conversation_id}")
            assert status == 200
            assert any(CHECK_IN in m["text"] for m in detail["messages"] if m["sender"] == "bot")
            [case] = [c for c in detail["history"]["cases"] if c["id"] == "CASE-501"]
            [promise] = [p for p in case["follow_ups"] if p["id"] == follow_up_id]
            assert promise["state"] == "sent" and promise["due_at"] == due_at.replace(microsecond=0).isoformat() + "Z"
            assert promise["sent_at"] is not None

            # Dana leaves; when she comes back, the check-in is in her history, once.
            resume = widget.resume
            await widget.close()
            widget = Widget(base, http)
            welcome = await widget.connect(token=dana_token, resume=resume)
            assert welcome["conversation_id"] == conversation_id
            assert sum(1 for m in welcome["history"] if CHECK_IN in m["text"]) == 1

            # "No, not yet": the case reopens and a person is told why.
            await widget.send("No, not yet", client_id="c-" + uuid.uuid4().hex, payload="/deny")  # ids are unique
            await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot"
                               and "reopened" in e["message"]["text"], timeout=60)
            waiting: List[Dict[str, Any]] = []
            for _ in range(50):  # the bot's words come first, then the conversation is queued
                status, queue = await agent.get("/api/queue")
                assert status == 200
                waiting = [s for s in queue["waiting"] if s["conversation_id"] == conversation_id]
                if waiting:
                    break
                await asyncio.sleep(0.2)
            [waiting] = waiting
            assert waiting["handoff_reason"] == "follow_up_not_fixed"
            with session_scope(url) as session:
                assert session.get(FollowUp, follow_up_id).outcome == "not_fixed"
                assert session.get(Case, "CASE-501").status == "open"
                assert session.query(Handoff).filter(Handoff.conversation_id == conversation_id,
                                                     Handoff.reason == "follow_up_not_fixed").count() == 1
                assert session.get(ChatConversation, conversation_id).status in ("waiting", "agent")
            status, detail = await agent.get(f"/api/conversations/{conversation_id}")
            [case] = [c for c in detail["history"]["cases"] if c["id"] == "CASE-501"]
            assert [p["state"] for p in case["follow_ups"] if p["id"] == follow_up_id] == ["answered"]
        finally:
            await agent.close()
            await widget.close()


# -- the customer's answer to the check-in (the custom actions against a real database) ---------------
def _dana_checked_in(db_url: str, sender: str):
    from tests.chat_sim import SimulatedChat

    chat = SimulatedChat(sender, {"customer_id": "cust-1001"})
    chat.say("WHERE ARE MY HEADPHONES?? this is ridiculous", "complain_delivery", level="angry")
    chat.say('/choose_option{"option":"reship_express"}', "choose_option", entities={"option": "reship_express"})
    assert not any(e.get("event") == "reminder" for e in chat.all_events)  # no in-memory Rasa reminder any more
    with session_scope(db_url) as session:  # the promise is stored; let it fall due, and the case be closed meanwhile
        row = session.query(FollowUp).filter(FollowUp.conversation_id == sender).one()
        row.due_at = datetime.utcnow() - timedelta(seconds=1)
        session.get(Case, "CASE-501").status = "resolved"
    text = chat.texts(chat.say("EXTERNAL: EXTERNAL_follow_up", "EXTERNAL_follow_up"))
    assert "checking in on CASE-501" in text and chat.slots["pending_question"] == "confirm_fixed"
    return chat


def test_not_yet_reopens_the_case_and_hands_over_with_the_reason(db_url):
    chat = _dana_checked_in(db_url, "dana-check-in-no")
    text = chat.texts(chat.say("/deny", "deny"))
    assert "reopened your case" in text and "<utter_handoff>" in text
    assert chat.slots["handed_off"] is True and chat.slots["handoff_reason"] == "follow_up_not_fixed"
    with session_scope(db_url) as session:
        assert session.get(Case, "CASE-501").status == "open"
        assert session.query(FollowUp).filter(FollowUp.conversation_id == "dana-check-in-no").one().outcome == "not_fixed"
        handoff = session.query(Handoff).filter(Handoff.conversation_id == "dana-check-in-no").one()
        assert handoff.reason == "follow_up_not_fixed" and "CASE-501" in handoff.summary


def test_yes_all_good_closes_the_case_and_the_loop(db_url):
    chat = _dana_checked_in(db_url, "dana-check-in-yes")
    with session_scope(db_url) as session:
        session.get(Case, "CASE-501").status = "open"
    text = chat.texts(chat.say("/affirm", "affirm"))
    assert "I've closed CASE-501" in text and "<utter_anything_else>" in text and not chat.slots.get("handed_off")
    with session_scope(db_url) as session:
        assert session.get(Case, "CASE-501").status == "resolved"
        assert session.query(FollowUp).filter(FollowUp.conversation_id == "dana-check-in-yes").one().outcome == "fixed"
        assert session.query(Handoff).filter(Handoff.conversation_id == "dana-check-in-yes").count() == 0


def test_the_agent_sees_the_promises_and_their_due_times_in_the_console(product):
    """In a real browser (Debian's headless Chromium through Playwright, as tests/test_browser_story.py)."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser_story import CHROMIUM, CHROMIUM_FLAGS, SHOTS

    url = product.case_db_url
    conversation_id = _chat(url)
    due = datetime.utcnow() + timedelta(hours=2)
    mark = uuid.uuid4().hex[:8]
    with session_scope(url) as session:
        repo.schedule_follow_up(session, "CASE-501", conversation_id, due, f"Check that '<b>{mark}</b>' worked.")
        repo.schedule_follow_up(session, "CASE-501", conversation_id, datetime.utcnow() - timedelta(hours=1),
                                f"Check the refund {mark} arrived.")
        answered = session.query(FollowUp).filter(FollowUp.note == f"Check the refund {mark} arrived.").one()
        answered.done, answered.sent_at, answered.outcome = True, datetime.utcnow(), "fixed"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_page(viewport={"width": 1440, "height": 900})
            page.goto(f"{product.gateway_url}/console")
            page.fill('input[name="username"]', "maria")
            page.fill('input[name="password"]', PASSWORD)
            page.locator('button[type="submit"]').click()
            page.wait_for_url("**/console")
            page.goto(f"{product.gateway_url}/console#conversation={conversation_id}")
            page.reload()  # the console opens the conversation named in the address when it loads
            case = page.locator('[data-case-id="CASE-501"]')
            try:
                case.locator('[data-testid="promise"]').first.wait_for(timeout=30_000)
            finally:
                page.screenshot(path=str(SHOTS / "console-promises.png"), full_page=True)
            promises = case.locator('[data-testid="promise"]')
            texts = [promises.nth(i).inner_text() for i in range(promises.count())]
            scheduled = next(t for t in texts if f"<b>{mark}</b>" in t)  # shown as text, not HTML
            assert "Scheduled" in scheduled and "due" in scheduled
            assert any("Answered" in t and "customer says it's fixed" in t and mark in t for t in texts)
            assert case.locator('[data-state="scheduled"]', has_text=mark).locator("time").first.get_attribute("datetime").startswith(
                due.strftime("%Y-%m-%dT%H:%M"))
            case.screenshot(path=str(SHOTS / "console-promises.png"))
        finally:
            chromium.close()
