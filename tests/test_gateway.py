"""The gateway end to end: widget socket, customer tokens, agent login, handoff and suggestions, against the real bot."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from bot.casedb.engine import session_scope
from bot.casedb.models import Account, ChatConversation, ChatMessage, Handoff, SuggestionEvent, ThrottleEvent
from bot.gateway.accounts import create_account
from bot.gateway.app import create_app
from bot.gateway.config import load_config
from bot.gateway.identity import sign_customer_token
from bot.settings import PROJECT_ROOT
from bot.gateway.client import Staff, Widget
from tests.rest_client import get

TOKEN_SECRET = "test-customer-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery"


def _account(url: str, username: str, name: str, role: str = "agent") -> None:
    with session_scope(url) as session:
        if session.query(Account).filter(Account.username == username).first() is None:
            create_account(session, username, PASSWORD, role, name)


@pytest.fixture
async def gateway(live_bot, tmp_path):
    """The gateway in this process, in front of the live bot (its Rasa, action server and case database)."""
    url = live_bot.case_db_url
    with session_scope(url) as session:  # each test starts with every earlier conversation ended
        # every earlier conversation ended, and no agent history from other suites on the shared live bot
        session.query(ChatConversation).update({"status": "closed", "assigned_agent": None, "last_agent": None})
        session.query(ThrottleEvent).delete()  # ... and no failed attempts counted from earlier tests
    _account(url, "maria", "Maria")
    _account(url, "omar", "Omar")
    _account(url, "tess", "Tess", "trainer")
    config = load_config(rasa_url=live_bot.rasa_url, database_url=url, customer_token_secret=TOKEN_SECRET,
                         session_secret="test-session-secret-long-enough-for-hs256-signing", port=0,
                         trainer_export_dir=str(tmp_path / "trainer"))
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    config.port = server.port
    http = aiohttp.ClientSession()
    staff = []

    def agent() -> Staff:
        staff.append(Staff(base))
        return staff[-1]

    yield type("Gateway", (), {"url": base, "http": http, "config": config, "db_url": url, "agent": staticmethod(agent),
                               "export_dir": tmp_path / "trainer",
                               "widget": staticmethod(lambda: Widget(base, http))})
    for member in staff:
        await member.close()
    await http.close()
    await server.close()
    with session_scope(url) as session:  # limits reached here must not refuse the next test file's logins
        session.query(ThrottleEvent).delete()


@contextlib.asynccontextmanager
async def another_gateway(gateway, **overrides):
    """A second gateway on the same database and secrets (a restart, or other settings); yields (url, config)."""
    config = load_config(rasa_url=gateway.config.rasa_url, database_url=gateway.db_url,
                         customer_token_secret=TOKEN_SECRET, session_secret=gateway.config.session_secret, port=0,
                         trainer_export_dir=str(gateway.export_dir), **overrides)
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    config.port = server.port
    try:
        yield str(server.make_url("")).rstrip("/"), config
    finally:
        await server.close()


def token(customer_id: str, **claims) -> str:
    now = datetime.now(timezone.utc)
    payload = {"sub": customer_id, "iat": now, "exp": now + timedelta(minutes=10), **claims}
    return jwt.encode(payload, claims.pop("secret", TOKEN_SECRET) if "secret" in claims else TOKEN_SECRET, "HS256")


def stored_messages(url: str, conversation_id: str):
    with session_scope(url) as session:
        return [(m.sender, m.text, m.client_id) for m in session.query(ChatMessage)
                .filter(ChatMessage.conversation_id == conversation_id).order_by(ChatMessage.id)]


def is_message(sender: str):
    return lambda e: e.get("type") == "message" and e["message"]["sender"] == sender


# -- customers ------------------------------------------------------------------------------------
async def test_signed_in_customer_is_recognised_and_the_conversation_survives_reconnects(gateway):
    widget = gateway.widget()
    welcome = await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
    assert welcome["type"] == "welcome" and welcome["customer"] == {"name": "Dana"} and welcome["history"] == []
    client_id = await widget.send("where is my headphones order?? it was promised days ago")
    ack = await widget.until(lambda e: e["type"] == "ack")
    assert ack["client_id"] == client_id
    # Stored before the acknowledgement.
    assert ("customer", "where is my headphones order?? it was promised days ago", client_id) in \
        stored_messages(gateway.db_url, widget.conversation_id)
    await widget.until(lambda e: is_message("bot")(e) and e["message"]["buttons"])
    bot_text = " ".join(m["text"] for m in widget.messages("bot"))
    assert "A1001" in bot_text and "CASE-501" in bot_text, bot_text
    assert all("frustration" not in m for m in widget.messages())  # the widget never sees the NLU's reading
    await widget.close()

    again = gateway.widget()
    welcome = await again.connect(resume=widget.resume, token=sign_customer_token("cust-1001", TOKEN_SECRET))
    assert welcome["conversation_id"] == widget.conversation_id
    assert [m["text"] for m in welcome["history"]][0] == "where is my headphones order?? it was promised days ago"
    assert len(welcome["history"]) == 1 + len(widget.messages("bot"))
    # A resend of an unacknowledged message is acknowledged again and stored once.
    await again.send("where is my headphones order?? it was promised days ago", client_id=client_id)
    assert (await again.until(lambda e: e["type"] == "ack"))["id"] == ack["id"]
    await again.settle(1.0)
    assert [c for _, _, c in stored_messages(gateway.db_url, widget.conversation_id)].count(client_id) == 1
    await again.close()


async def test_another_customer_on_the_same_browser_does_not_see_the_conversation(gateway):
    dana = gateway.widget()
    await dana.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
    await dana.send("hello")
    await dana.until(lambda e: e["type"] == "ack")
    await dana.close()
    for other_token in (None, sign_customer_token("cust-1002", TOKEN_SECRET)):
        visitor = gateway.widget()
        welcome = await visitor.connect(token=other_token, resume=dana.resume)
        assert welcome["conversation_id"] != dana.conversation_id and welcome["history"] == []
        await visitor.close()
    forged = gateway.widget()
    welcome = await forged.connect(resume=dana.resume[:-4] + "AAAA")
    assert welcome["conversation_id"] != dana.conversation_id
    await forged.close()


@pytest.mark.parametrize("bad_token, code", [
    ("expired", "token_expired"),
    ("forged", "token_invalid"),
    ("unknown customer", "token_invalid"),
    ("too long-lived", "token_invalid"),
    ("not a jwt", "token_invalid"),
])
async def test_bad_customer_tokens_get_a_clear_error_and_the_socket_closes(gateway, bad_token, code):
    now = datetime.now(timezone.utc)
    value = {
        "expired": jwt.encode({"sub": "cust-1001", "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)},
                              TOKEN_SECRET, "HS256"),
        "forged": jwt.encode({"sub": "cust-1001", "iat": now, "exp": now + timedelta(minutes=5)}, "a-guessed-secret-that-is-also-long-enough-x", "HS256"),
        "unknown customer": sign_customer_token("cust-9999", TOKEN_SECRET),
        "too long-lived": jwt.encode({"sub": "cust-1001", "iat": now, "exp": now + timedelta(days=30)},
                                     TOKEN_SECRET, "HS256"),
        "not a jwt": "<script>alert(1)</script>",
    }[bad_token]
    widget = gateway.widget()
    first = await widget.connect(token=value)
    assert first["type"] == "error" and first["code"] == code and first["message"]
    closing = await widget.socket.receive(timeout=10)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED) and widget.socket.close_code == 4401


async def test_bad_widget_input_gets_clear_errors_and_nothing_is_stored(gateway):
    widget = gateway.widget()
    await widget.connect()
    await widget.send("   ", client_id="empty")
    error = await widget.until(lambda e: e["type"] == "error")
    assert error["code"] == "bad_request" and error["client_id"] == "empty"
    await widget.send("x" * (gateway.config.max_message_chars + 1), client_id="huge")
    error = await widget.until(lambda e: e["type"] == "error")
    assert error["code"] == "too_long" and str(gateway.config.max_message_chars) in error["message"]
    await widget.socket.send_str("{not json")
    assert (await widget.until(lambda e: e["type"] == "error"))["code"] == "bad_request"
    await widget.socket.send_str(json.dumps({"type": "message", "client_id": 5, "text": ["not", "text"]}))
    assert (await widget.until(lambda e: e["type"] == "error"))["code"] == "bad_request"
    assert stored_messages(gateway.db_url, widget.conversation_id) == []
    # Still usable afterwards.
    await widget.send("hi there")
    assert (await widget.until(lambda e: e["type"] in ("ack", "error")))["type"] == "ack"
    await widget.close()


async def test_a_flood_of_messages_is_rate_limited_with_a_clear_error(gateway):
    widget = gateway.widget()
    await widget.connect()
    burst = gateway.config.rate_burst
    for n in range(burst + 3):
        await widget.send(f"message {n}", client_id=f"m{n}")
    events = [await widget.until(lambda e: e["type"] in ("ack", "error")) for _ in range(burst + 3)]
    acked = [e for e in events if e["type"] == "ack"]
    limited = [e for e in events if e["type"] == "error"]
    assert len(acked) == burst and limited and all(e["code"] == "rate_limited" for e in limited)
    assert len([s for s in stored_messages(gateway.db_url, widget.conversation_id) if s[0] == "customer"]) == burst
    await widget.close()


async def test_sockets_from_other_websites_are_refused(gateway):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.http.ws_connect(gateway.url + "/ws/widget", headers={"Origin": "https://evil.example"})
    assert refused.value.status == 403


# -- agents ---------------------------------------------------------------------------------------
async def test_agent_endpoints_need_a_valid_session(gateway):
    async with gateway.http.get(gateway.url + "/api/queue") as response:
        assert response.status == 401 and "log in" in (await response.json())["error"]
    async with gateway.http.post(gateway.url + "/api/conversations/x/send", json={"text": "hi"}) as response:
        assert response.status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await gateway.http.ws_connect(gateway.url + "/ws/console", headers={"Origin": gateway.url})
    assert refused.value.status == 401
    async with gateway.http.get(gateway.url + "/console", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("/login")
    agent = gateway.agent()
    assert await agent.login("maria", "wrong password") == 401
    assert await agent.login("nobody", PASSWORD) == 401
    assert (await agent.get("/api/me"))[0] == 401
    assert await agent.login("maria", PASSWORD) == 302
    status, me = await agent.get("/api/me")
    assert status == 200 and me == {"username": "maria", "name": "Maria", "role": "agent"}
    cookie = next(iter(agent.http.cookie_jar))
    assert cookie["httponly"] and cookie["samesite"] == "Strict"
    # A tampered cookie is no session at all.
    agent.http.cookie_jar.update_cookies({"mend_session": cookie.value[:-6] + "AAAAAA"})
    assert (await agent.get("/api/me"))[0] == 401


async def test_handoff_agent_takes_over_sends_a_suggestion_and_hands_back(gateway):
    agent = gateway.agent()
    assert await agent.login("maria", PASSWORD) == 302
    await agent.open_console()
    widget = gateway.widget()
    await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
    await widget.send("WHERE IS MY ORDER?! this is the third time I'm asking, you people are useless")
    await widget.until(lambda e: is_message("bot")(e) and e["message"]["buttons"])
    await widget.send("I want to talk to a real person")
    await widget.until(lambda e: is_message("bot")(e))
    queued = await agent.until(lambda e: e["type"] == "queue" and any(
        s["conversation_id"] == widget.conversation_id for s in e["queue"]["waiting"]))
    item = next(s for s in queued["queue"]["waiting"] if s["conversation_id"] == widget.conversation_id)
    assert item["customer"]["name"] == "Dana Whitfield" and item["issue_type"] == "delivery"
    assert item["frustration"]["level"] in ("annoyed", "angry") and item["handoff_reason"] == "customer_request"

    status, detail = await agent.get(f"/api/conversations/{widget.conversation_id}")
    assert status == 200 and "CASE-501" in (detail["handoff_summary"] or "")
    assert any(o["id"] == "A1001" for o in detail["history"]["orders"])
    assert any(c["id"] == "CASE-501" and c["contacts"] for c in detail["history"]["cases"])
    customer_lines = [m for m in detail["messages"] if m["sender"] == "customer"]
    assert customer_lines[0]["frustration"]["level"] == "angry" and customer_lines[0]["frustration"]["cues"]
    assert {s["step"]: s["done"] for s in detail["playbook"]}["apologize"] is True

    assert (await agent.post(f"/api/conversations/{widget.conversation_id}/take"))[0] == 200
    joined = await widget.until(lambda e: e["type"] == "agent_joined")
    assert joined["name"] == "Maria"
    await agent.watch(widget.conversation_id)
    # Another agent cannot grab it.
    omar = gateway.agent()
    await omar.login("omar", PASSWORD)
    assert (await omar.post(f"/api/conversations/{widget.conversation_id}/take"))[0] == 409
    assert (await omar.post(f"/api/conversations/{widget.conversation_id}/send", {"text": "hi"}))[0] == 409

    bot_replies_before = len(widget.messages("bot"))
    await widget.send("ok. can you just refund me then?")
    suggested = await agent.until(lambda e: e["type"] == "suggestions" and e["conversation_id"] == widget.conversation_id)
    assert 1 <= len(suggested["suggestions"]) <= 3
    for suggestion in suggested["suggestions"]:
        assert suggestion["text"] and suggestion["why"] and suggestion["source"] in ("policy", "library", "learned")
        assert isinstance(suggestion["id"], int)  # sent back with the reply, for the telemetry
        if suggestion["source"] == "policy":
            assert 0.5 <= suggestion["confidence"] <= 1.0  # the policy counts where it is confident
        assert "colleague has your conversation" not in suggestion["text"]  # written as the bot would speak
        assert "{" not in suggestion["text"]  # every placeholder filled from Dana's case
    # Just taken over: the agent is offered an introduction that shows they know the case.
    assert any(s["kind"] == "greet_takeover" and "Maria" in s["text"] and "CASE-501" in s["text"]
               for s in suggested["suggestions"])
    await widget.settle(2.0)
    assert len(widget.messages("bot")) == bot_replies_before  # the bot stays quiet while a person has the chat

    choice = suggested["suggestions"][0]
    status, sent = await agent.post(f"/api/conversations/{widget.conversation_id}/send",
                                    {"text": choice["text"], "action": choice["action"], "suggestion_id": choice["id"]})
    assert status == 200, sent
    seen = await widget.until(is_message("agent"))
    assert seen["message"]["agent_name"] == "Maria"
    tracker = get(f"{gateway.config.rasa_url}/conversations/{widget.conversation_id}/tracker")
    assert any(e["event"] == "user" and e["text"] == "ok. can you just refund me then?" for e in tracker["events"])
    assert any(e["event"] == "bot" and e.get("text") == seen["message"]["text"] for e in tracker["events"])

    edited = "Hi Dana, Maria here: <b>refund</b> on its way & sorry!"
    status, _ = await agent.post(f"/api/conversations/{widget.conversation_id}/send", {"text": edited, "action": None})
    assert status == 200
    assert (await widget.until(is_message("agent")))["message"]["text"] == edited  # text, unchanged
    # What became of the suggestions is kept: the one sent as is, the others ignored.
    with session_scope(gateway.db_url) as session:
        outcomes = {e.id: e.outcome for e in session.query(SuggestionEvent)
                    .filter(SuggestionEvent.conversation_id == widget.conversation_id)}
    assert outcomes[choice["id"]] == "as_is"
    assert all(outcomes[s["id"]] == "ignored" for s in suggested["suggestions"][1:])

    assert (await agent.post(f"/api/conversations/{widget.conversation_id}/handback"))[0] == 200
    assert (await widget.until(lambda e: e["type"] == "agent_left"))["name"] == "Maria"
    await widget.send("thanks, that's all")
    await widget.until(is_message("bot"))
    with session_scope(gateway.db_url) as session:
        conversation = session.get(ChatConversation, widget.conversation_id)
        assert conversation.status == "bot" and conversation.last_agent == "maria"
    await widget.close()


async def test_bad_agent_input_is_refused_clearly(gateway):
    agent = gateway.agent()
    await agent.login("maria", PASSWORD)
    widget = gateway.widget()
    await widget.connect()
    await widget.send("hello")
    await widget.until(lambda e: e["type"] == "ack")
    path = f"/api/conversations/{widget.conversation_id}"
    assert (await agent.post(path + "/take"))[0] == 200
    for body, status in ([{"text": ""}, 400], [{"text": "x" * 5000}, 413], [{"text": 42}, 400], [["a"], 400]):
        got, answer = await agent.post(path + "/send", body)
        assert got == status and answer["error"], (body, answer)
    async with agent.http.post(gateway.url + path + "/send", data="{oops", headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
    assert (await agent.get("/api/conversations/w-does-not-exist"))[0] == 404
    assert (await agent.post("/api/conversations/w-does-not-exist/take"))[0] == 404
    async with agent.http.post(gateway.url + path + "/send", json={"text": "hi"},
                               headers={"Origin": "https://evil.example"}) as r:
        assert r.status == 403
    await widget.close()


async def test_returning_customer_goes_to_the_agent_who_helped_before(gateway):
    agent = gateway.agent()
    await agent.login("omar", PASSWORD)
    await agent.open_console()
    first = gateway.widget()
    await first.connect(token=sign_customer_token("cust-1002", TOKEN_SECRET))
    await first.send("hello")
    await first.until(lambda e: e["type"] == "ack")
    assert (await agent.post(f"/api/conversations/{first.conversation_id}/take"))[0] == 200
    assert (await agent.post(f"/api/conversations/{first.conversation_id}/send", {"text": "Sorted, Sam!"}))[0] == 200
    assert (await agent.post(f"/api/conversations/{first.conversation_id}/handback"))[0] == 200
    await first.close()
    with session_scope(gateway.db_url) as session:  # a day later: that conversation has ended
        session.get(ChatConversation, first.conversation_id).last_activity -= timedelta(days=2)

    later = gateway.widget()
    await later.connect(token=sign_customer_token("cust-1002", TOKEN_SECRET))
    assert later.conversation_id != first.conversation_id
    await later.send("I need to speak to a person please")
    joined = await later.until(lambda e: e["type"] == "agent_joined", timeout=120)
    assert joined["name"] == "Omar"
    assert any("helped you before" in m["text"] for m in later.messages("system"))
    await agent.until(lambda e: e["type"] == "assigned" and e["conversation_id"] == later.conversation_id)
    await later.close()


async def test_rasa_outage_tells_the_customer_a_person_will_answer_and_keeps_the_message(gateway, live_bot):
    config = load_config(rasa_url="http://127.0.0.1:9", database_url=gateway.db_url,
                         customer_token_secret=TOKEN_SECRET, session_secret="test-session-secret-long-enough-for-hs256-signing", rasa_timeout=3)
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    try:
        widget = Widget(str(server.make_url("")).rstrip("/"), gateway.http)
        await widget.connect(token=sign_customer_token("cust-1004", TOKEN_SECRET))
        await widget.send("I can't log in to my account")
        notice = await widget.until(is_message("system"))
        assert "person" in notice["message"]["text"] and "saved" in notice["message"]["text"]
        with session_scope(gateway.db_url) as session:
            conversation = session.get(ChatConversation, widget.conversation_id)
            assert conversation.status == "waiting" and conversation.handoff_reason == "bot_unavailable"
        assert ("customer", "I can't log in to my account") in [
            (s, t) for s, t, _ in stored_messages(gateway.db_url, widget.conversation_id)]
        agent = Staff(widget.base_url)
        await agent.login("maria", PASSWORD)
        status, queue = await agent.get("/api/queue")
        assert any(s["conversation_id"] == widget.conversation_id and s["last_message"] == "I can't log in to my account"
                   for s in queue["waiting"])
        await agent.close()
        await widget.close()
    finally:
        await server.close()


def test_accounts_command_creates_agents_and_refuses_weak_passwords(tmp_path):
    url = f"sqlite:///{tmp_path / 'accounts.db'}"
    env = dict(os.environ, MEND_DATABASE_URL=url, PYTHONPATH=str(PROJECT_ROOT))

    def run(*args: str, password: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bot", "accounts", *args], input=password + "\n", env=env,
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)

    assert run("create", "lena", "--role", "agent", "--name", "Lena", "--password-stdin", password="a long enough secret").returncode == 0
    weak = run("create", "kim", "--password-stdin", password="short")
    assert weak.returncode == 2 and "at least" in weak.stderr
    again = run("create", "lena", "--password-stdin", password="another long secret")
    assert again.returncode == 2 and "already exists" in again.stderr
    listing = subprocess.run([sys.executable, "-m", "bot", "accounts", "list"], env=env, cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=120)
    assert "lena" in listing.stdout and "kim" not in listing.stdout
    with session_scope(url) as session:
        stored = session.query(Account).filter(Account.username == "lena").one().password_hash
        assert stored.startswith("$argon2") and "a long enough secret" not in stored


async def test_a_message_acknowledged_before_a_gateway_restart_is_still_answered(gateway):
    from bot.gateway import transcript

    widget = gateway.widget()
    await widget.connect(token=sign_customer_token("cust-1004", TOKEN_SECRET))
    await widget.close()
    # The gateway stored and acknowledged this message, then stopped before Rasa saw it.
    with session_scope(gateway.db_url) as session:
        transcript.add_message(session, widget.conversation_id, "customer", "I can't log in, my account is locked",
                               client_id="lost-1")
    config = load_config(rasa_url=gateway.config.rasa_url, database_url=gateway.db_url,
                         customer_token_secret=TOKEN_SECRET, session_secret="test-session-secret-long-enough-for-hs256-signing")
    restarted = TestServer(create_app(config), host="127.0.0.1")
    await restarted.start_server()
    try:
        for _ in range(120):
            replies = [t for s, t, _ in stored_messages(gateway.db_url, widget.conversation_id) if s == "bot"]
            if replies:
                break
            await asyncio.sleep(0.5)
        assert replies and any("Lee" in t or "account" in t.lower() for t in replies), replies
    finally:
        await restarted.close()
    tracker = get(f"{gateway.config.rasa_url}/conversations/{widget.conversation_id}/tracker")
    assert [e["text"] for e in tracker["events"] if e["event"] == "user"] == ["I can't log in, my account is locked"]


def test_rasa_and_the_action_server_listen_on_loopback_only(live_bot):
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                listening.add((address, int(port, 16)))
    for port in (live_bot.rasa_port, live_bot.actions_port):
        addresses = {a for a, p in listening if p == port}
        assert addresses == {"0100007F"}, (port, addresses)  # 127.0.0.1, nothing else


async def test_repeated_wrong_passwords_are_slowed_down_with_a_clear_message(gateway):
    agent = gateway.agent()
    statuses = [await agent.login("maria", f"wrong password {n}") for n in range(6)]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    async with agent.http.post(gateway.url + "/login", data={"username": "maria", "password": PASSWORD}) as response:
        assert response.status == 429 and "Too many failed sign-ins" in await response.text()  # even the right one, for now
        assert response.headers["Retry-After"]
    async with agent.http.post(gateway.url + "/login", data={"username": "x" * 100_000, "password": "y" * 100_000},
                               allow_redirects=False) as response:
        assert response.status == 401 and "Wrong username or password" in await response.text()
