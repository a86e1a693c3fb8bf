"""The fault suite: each part of Mend dies in the middle of a customer's conversation.

Real processes (action server, Rasa, gateway, started by ``bot.services.Services``), a widget
client on the real socket, and PostgreSQL reached through a TCP proxy this test cuts and
restores, so only this test's database "dies". For every fault: no silent customer (every
message gets a reply, or a clear "a person will reply", within 5 s), no lost message (each
stored exactly once in chat_messages, and once in Rasa's tracker when Rasa is up), and the
conversation in the agents' queue with the reason. A summary table is printed at the end.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.parse
from collections import Counter
from typing import Any, Dict, List, Optional

import aiohttp
import pytest

from bot.casedb.engine import get_engine, session_scope
from bot.casedb.models import Account, ChatConversation, ChatMessage
from bot.gateway.accounts import create_account
from bot.gateway.client import Staff, Widget
from bot.gateway.identity import sign_customer_token
from bot.settings import PROJECT_ROOT
from tests.conftest import POSTGRES_URL, _reset
from tests.rest_client import get
from tests.tcp_proxy import TcpProxy

TOKEN_SECRET = "fault-suite-customer-secret-long-enough-for-hs256"
PASSWORD = "fault suite agent password"
ANSWER_WITHIN = 5.0  # seconds: the target
ROWS: List[Dict[str, Any]] = []  # the summary table


# -- a TCP proxy in front of PostgreSQL: cut() makes the database unreachable for everyone using it ---------
DatabaseProxy = TcpProxy


# -- the running product --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    from bot.services import Services
    from bot.setup import MODEL

    if not MODEL.exists():
        pytest.fail("no trained model: run `make test` (it trains one) or `python -m bot train`")
    work = tmp_path_factory.mktemp("faults")
    proxy = None
    if POSTGRES_URL:
        direct = urllib.parse.urlsplit(POSTGRES_URL)
        proxy = DatabaseProxy(direct.hostname or "127.0.0.1", direct.port or 5432)
        url = POSTGRES_URL.replace(direct.netloc, f"{direct.username or 'postgres'}@127.0.0.1:{proxy.port}")
    else:
        url = f"sqlite:///{work / 'mend.db'}"
    _reset(url)
    with session_scope(url) as session:
        if session.query(Account).filter(Account.username == "maria").first() is None:
            create_account(session, "maria", PASSWORD, "agent", "Maria")
    base = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))
    services = Services(rasa_port=base + 10, actions_port=base + 60, gateway_port=base + 20,
                        tracker_db=work / "tracker.db", log_dir=work / "log",
                        env={"MEND_DATABASE_URL": url, "MEND_CUSTOMER_TOKEN_SECRET": TOKEN_SECRET,
                             "MEND_SESSION_SECRET": "fault-suite-session-secret-long-enough-123456"})
    services.start()
    try:
        yield type("Stack", (), {"services": services, "db_url": url, "proxy": proxy, "logs": work / "log"})
    finally:
        services.stop()
        get_engine(url).dispose()
        if proxy is not None:
            proxy.close()
        _print_summary(request)


def _print_summary(request: pytest.FixtureRequest) -> None:
    if not ROWS:
        return
    lines = ["", "Fault suite (answer = first reply or 'a person will reply' after the customer's message)",
             f"{'fault':<38} {'answer s':>8} {'what the customer read':<38} {'queue reason':<20} {'lost':>4} {'silent':>6}"]
    for row in ROWS:
        lines.append(f"{row['fault']:<38} {row['answer']:>8.2f} {row['said'][:38]:<38} {row['reason'] or '-':<20} "
                     f"{row['lost']:>4} {row['silent']:>6}")
    report = PROJECT_ROOT / "var" / "fault-suite.txt"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        for line in lines + [f"(also written to {report.relative_to(PROJECT_ROOT)})"]:
            (reporter.write_line if reporter else print)(line)


# -- what the customer and the agents see ---------------------------------------------------------------------


def is_answer(event: Dict[str, Any]) -> bool:
    """Something the customer reads after their message: the bot, a person, a system notice, or "not sent yet"."""
    if event.get("type") == "message":
        return event["message"]["sender"] in ("bot", "agent", "system")
    return event.get("type") == "notice" or (event.get("type") == "error" and event.get("code") == "not_stored")


def said(event: Dict[str, Any]) -> str:
    if event.get("type") == "message":
        return event["message"]["text"]
    return str(event.get("message") or "")


async def answered_in(widget: Widget, since: float, timeout: float = 30) -> tuple:
    """(seconds from ``since`` to the first answer, that answer)."""
    event = await widget.until(is_answer, timeout=timeout)
    return widget.received_at[-1] - since, event


async def send_and_time(widget: Widget, text: str) -> tuple:
    sent = time.monotonic()
    await widget.send(text)
    return await answered_in(widget, sent)


def stored_customer_messages(url: str, conversation_id: str) -> List[tuple]:
    with session_scope(url) as session:
        return [(m.client_id, m.text) for m in session.query(ChatMessage)
                .filter(ChatMessage.conversation_id == conversation_id, ChatMessage.sender == "customer")
                .order_by(ChatMessage.id)]


def conversation_row(url: str, conversation_id: str) -> tuple:
    with session_scope(url) as session:
        conversation = session.get(ChatConversation, conversation_id)
        return conversation.status, conversation.handoff_reason


def rasa_user_texts(services, conversation_id: str) -> List[str]:
    tracker = get(f"{services.rasa_url}/conversations/{conversation_id}/tracker?include_events=ALL"
                  f"&token={services.rasa_token}")
    return [e["text"] for e in tracker["events"] if e["event"] == "user"]


async def in_agents_queue(stack, conversation_id: str, timeout: float = 30) -> Optional[str]:
    """The handoff reason the agents' queue shows for the conversation (None if it is not waiting)."""
    agent = Staff(stack.services.gateway_url)
    try:
        assert await agent.login("maria", PASSWORD) == 302
        deadline = time.monotonic() + timeout
        while True:
            status, queue = await agent.get("/api/queue")
            found = [s for s in queue.get("waiting", []) + queue.get("mine", []) if s["conversation_id"] == conversation_id]
            if found or time.monotonic() > deadline:
                return found[0]["handoff_reason"] if found else None
            await asyncio.sleep(0.5)
    finally:
        await agent.close()


async def wait_until(predicate, timeout: float = 60, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every)


def check_nothing_lost(stack, widget: Widget, sent: List[str], rasa_up: bool = True) -> int:
    """Every message the customer sent is stored once (and in Rasa's tracker once): the number lost or doubled."""
    stored = Counter(text for _, text in stored_customer_messages(stack.db_url, widget.conversation_id))
    problems = sum(abs(stored[text] - 1) for text in sent)
    assert not widget.pending, f"messages never acknowledged: {widget.pending}"
    if rasa_up:
        in_rasa = Counter(rasa_user_texts(stack.services, widget.conversation_id))
        problems += sum(abs(in_rasa[text] - 1) for text in sent)
        assert all(in_rasa[text] == 1 for text in sent), (sent, in_rasa)
    assert all(stored[text] == 1 for text in sent), (sent, stored)
    return problems


async def start_conversation(stack, http, customer: str, first: str) -> Widget:
    """A signed-in customer mid-conversation: the first message is answered by the bot."""
    widget = Widget(stack.services.gateway_url, http)
    await widget.connect(token=sign_customer_token(customer, TOKEN_SECRET))
    await widget.send(first)
    reply = await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", timeout=120)
    assert reply["message"]["text"]
    await widget.settle(1.0)
    return widget


def record(fault: str, answer: float, event: Dict[str, Any], reason: Optional[str], lost: int) -> None:
    silent = int(answer > ANSWER_WITHIN)
    ROWS.append({"fault": fault, "answer": answer, "said": said(event), "reason": reason, "lost": lost, "silent": silent})
    assert answer <= ANSWER_WITHIN, f"{fault}: the customer waited {answer:.1f}s for an answer"


# -- the faults ---------------------------------------------------------------------------------------------------
async def test_action_server_killed_mid_conversation(stack):
    services = stack.services
    async with aiohttp.ClientSession() as http:
        widget = await start_conversation(stack, http, "cust-1002", "I was charged twice for order B2002!")
        services.kill("actions", signal.SIGKILL)
        second = "Please refund the duplicate charge on B2002"
        seconds, answer = await send_and_time(widget, second)
        assert "person" in said(answer) and "saved" in said(answer)
        assert conversation_row(stack.db_url, widget.conversation_id) == ("waiting", "actions_unavailable")
        reason = await in_agents_queue(stack, widget.conversation_id)
        assert reason == "actions_unavailable"
        lost = check_nothing_lost(stack, widget, ["I was charged twice for order B2002!", second])
        record("action server killed (SIGKILL)", seconds, answer, reason, lost)
        await widget.close()
    services.restart("actions")


async def test_rasa_killed_mid_conversation(stack):
    services = stack.services
    async with aiohttp.ClientSession() as http:
        first = "The replacement blender leaks again, this is the second one"
        widget = await start_conversation(stack, http, "cust-1003", first)
        second = "It is leaking all over my kitchen counter"
        sent = time.monotonic()
        await widget.send(second)
        await widget.until(lambda e: e.get("type") == "ack")
        services.kill("rasa", signal.SIGKILL)  # while it works on the message
        seconds, answer = await answered_in(widget, sent)
        if answer["type"] == "message" and answer["message"]["sender"] == "bot":
            # Rasa answered before it died; the next message meets it dead.
            await widget.settle(1.0)
            sent = time.monotonic()
            second_b = "Hello? Is anyone there?"
            await widget.send(second_b)
            seconds, answer = await answered_in(widget, sent)
            extra = [second_b]
        else:
            extra = []
        assert "person" in said(answer) and "saved" in said(answer)
        assert conversation_row(stack.db_url, widget.conversation_id) == ("waiting", "bot_unavailable")
        reason = await in_agents_queue(stack, widget.conversation_id)
        assert reason == "bot_unavailable"
        services.restart("rasa")
        # Once Rasa is back, what it missed reaches its tracker (the console's frustration and suggestions use it).
        expected = [first, second] + extra
        assert await wait_until(lambda: Counter(rasa_user_texts(services, widget.conversation_id)) >= Counter(expected),
                                timeout=60)
        lost = check_nothing_lost(stack, widget, expected)
        record("Rasa killed (SIGKILL)", seconds, answer, reason, lost)
        await widget.close()


async def test_rasa_hung_mid_conversation(stack):
    services = stack.services
    async with aiohttp.ClientSession() as http:
        first = "I can't log in to my account, it says locked"
        widget = await start_conversation(stack, http, "cust-1004", first)
        services.kill("rasa", signal.SIGSTOP)
        try:
            second = "Still locked out, I tried again just now"
            sent = time.monotonic()
            await widget.send(second)
            seconds, answer = await answered_in(widget, sent)
            assert answer["type"] == "notice" and "person" in said(answer)
            handed = await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "system",
                                        timeout=30)
            queued_after = widget.received_at[-1] - sent
            assert "person" in said(handed)
            reason = await in_agents_queue(stack, widget.conversation_id)
            assert reason == "bot_timeout"
        finally:
            services.kill("rasa", signal.SIGCONT)
        # Rasa wakes up and answers late; the message is in its tracker once.
        assert await wait_until(lambda: Counter(rasa_user_texts(services, widget.conversation_id))[second] >= 1, timeout=60)
        await asyncio.sleep(3)
        lost = check_nothing_lost(stack, widget, [first, second])
        record(f"Rasa hung (SIGSTOP, queued at {queued_after:.0f}s)", seconds, answer, reason, lost)
        await widget.close()


async def test_gateway_killed_mid_conversation(stack):
    services = stack.services
    async with aiohttp.ClientSession() as http:
        first = "My parcel E5005 never arrived, the tracking says lost"
        widget = await start_conversation(stack, http, "cust-1005", first)
        acked = "Can you send a new one please?"
        await widget.send(acked)
        await widget.until(lambda e: e.get("type") == "ack")
        services.kill("gateway", signal.SIGKILL)  # acknowledged, maybe not answered yet
        unsent = "And please make it express this time"
        await widget.send(unsent)  # the socket is dead: kept by the client, like the widget's localStorage
        assert unsent in [f["text"] for f in widget.pending.values()]
        services.restart("gateway")
        back = time.monotonic()
        await widget.reconnect()  # hello with the resume token, then the unacknowledged message again
        while not (_handled(stack, widget, acked) and _handled(stack, widget, unsent)) and time.monotonic() < back + 60:
            try:
                await widget.next(timeout=0.2)
            except asyncio.TimeoutError:
                pass
        seconds = time.monotonic() - back
        assert _handled(stack, widget, acked), "the message acknowledged before the kill was never answered"
        assert _handled(stack, widget, unsent), "the message sent while the gateway was down was never answered"
        # The customer sees the answer to what they sent while the gateway was down, live.
        await wait_until(lambda: widget.messages("bot"), timeout=10)
        answer = widget.messages("bot")[-1]
        status, reason = conversation_row(stack.db_url, widget.conversation_id)
        lost = check_nothing_lost(stack, widget, [first, acked, unsent])
        record("gateway killed (SIGKILL) + restart", seconds, {"type": "message", "message": answer},
               reason if status == "waiting" else f"none: bot answered", lost)
        await widget.close()


def _handled(stack, widget: Widget, text: str) -> bool:
    """The customer message was processed (Rasa has it) and something was said to the customer after it."""
    with session_scope(stack.db_url) as session:
        rows = session.query(ChatMessage).filter(ChatMessage.conversation_id == widget.conversation_id) \
            .order_by(ChatMessage.id).all()
        mine = [m for m in rows if m.sender == "customer" and m.text == text]
        return len(mine) == 1 and bool(mine[0].delivered_to_bot) and \
            any(m.sender in ("bot", "system", "agent") and m.id > mine[0].id for m in rows)


async def test_case_database_unreachable_when_the_customer_writes(stack):
    if stack.proxy is None:
        pytest.skip("needs PostgreSQL (MEND_TEST_POSTGRES_URL): the database is cut through a TCP proxy")
    async with aiohttp.ClientSession() as http:
        first = "Where are my headphones? They were promised days ago"
        widget = await start_conversation(stack, http, "cust-1001", first)
        stack.proxy.cut()
        try:
            second = "I want a full refund for A1001"
            seconds, answer = await send_and_time(widget, second)
            assert answer.get("code") == "not_stored" and "automatically" in said(answer)
            # The client keeps it and resends, as the widget does; the database stays down a while.
            await asyncio.sleep(5)
            assert second in [f["text"] for f in widget.pending.values()]
        finally:
            stack.proxy.restore()
        stored = await widget.until(lambda e: e.get("type") == "ack", timeout=40)
        assert stored["client_id"] not in widget.pending
        person = await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "system",
                                    timeout=30)
        assert "person" in said(person)
        reason = await in_agents_queue(stack, widget.conversation_id)
        assert reason == "case_db_unavailable"
        assert await wait_until(lambda: Counter(rasa_user_texts(stack.services, widget.conversation_id))[second] == 1)
        lost = check_nothing_lost(stack, widget, [first, second])
        record("case database down (customer writes)", seconds, answer, reason, lost)
        await widget.close()


async def test_case_database_dies_while_the_bot_works(stack):
    if stack.proxy is None:
        pytest.skip("needs PostgreSQL (MEND_TEST_POSTGRES_URL): the database is cut through a TCP proxy")
    async with aiohttp.ClientSession() as http:
        widget = Widget(stack.services.gateway_url, http)
        await widget.connect()  # a guest
        first = "Hi, my order is late and nobody tells me anything"
        await widget.send(first)
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", timeout=120)
        await widget.settle(1.0)
        second = "My email is dana@example.com and the order is A1001"
        sent = time.monotonic()
        await widget.send(second)
        await widget.until(lambda e: e.get("type") == "ack")
        stack.proxy.cut()  # stored and acknowledged; the bot's action meets a dead database
        try:
            seconds, answer = await answered_in(widget, sent)
            texts = [said(answer)] + [said(e) for e in await widget.settle(3.0) if is_answer(e)]
            assert any("person" in t or "colleague" in t for t in texts), texts
            assert any("can't reach our case system" in t or "can't answer" in t for t in texts), texts
        finally:
            stack.proxy.restore()
        # Once the database is back, what the customer was told is stored and the handoff is queued.
        reason = await in_agents_queue(stack, widget.conversation_id, timeout=40)
        assert reason == "case_db_unavailable"
        lost = check_nothing_lost(stack, widget, [first, second])
        with session_scope(stack.db_url) as session:
            stored = [m.text for m in session.query(ChatMessage).filter(
                ChatMessage.conversation_id == widget.conversation_id, ChatMessage.sender != "customer")]
        assert any("can't reach our case system" in t or "can't answer" in t for t in stored), stored
        record("case database dies mid-turn", seconds, answer, reason, lost)
        await widget.close()
