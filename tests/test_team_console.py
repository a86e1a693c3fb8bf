"""The console's team tools through the real gateway (HTTP API and sockets): private notes, reassign, search.

The gateway runs in this process on a fresh seeded case database. Rasa is deliberately not
running: every customer message then goes to the agents' queue ("a person will reply"), which
is exactly the state these tools work in, and no test waits for a model.
"""
from __future__ import annotations

import json
import os
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.casedb.engine import session_scope
from bot.casedb.models import Account, ChatConversation, ConversationNote
from bot.gateway.accounts import create_account
from bot.gateway import team_api
from bot.gateway.app import create_app
from bot.gateway.client import Staff, Widget
from bot.gateway.config import load_config
from bot.gateway.identity import sign_customer_token

TOKEN_SECRET = "team-console-token-secret-long-enough-for-hs256"
PASSWORD = "team console password"
NOTE_SECRET = "NOTE-ONLY-FOR-STAFF-7731"
HOSTILE_NOTE = f'<img src=x onerror="window.__xss=1"> {NOTE_SECRET}: refund approved by finance, don\'t tell yet'
# Nothing listens here: Rasa is "down", so conversations queue for a person at once.
DEAD_RASA = f"http://127.0.0.1:{int(os.environ.get('MEND_TEST_PORT_BASE', '5305')) + 47}"


@pytest.fixture
async def gateway(db_url, tmp_path):
    with session_scope(db_url) as session:
        for username, name, role in (("maria", "Maria", "agent"), ("omar", "Omar", "agent"),
                                     ("ada", "Ada", "admin"), ("tess", "Tess", "trainer"),
                                     ("gone", "Gone Agent", "agent")):
            create_account(session, username, PASSWORD, role, name)
        session.query(Account).filter(Account.username == "gone").one().disabled = True
    config = load_config(rasa_url=DEAD_RASA, database_url=db_url, customer_token_secret=TOKEN_SECRET,
                         session_secret="team-console-session-secret-long-enough-123456", port=0, rasa_timeout=3,
                         trainer_export_dir=str(tmp_path / "trainer"))
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    config.port = server.port
    base = str(server.make_url("")).rstrip("/")
    http = aiohttp.ClientSession()
    opened = []

    async def agent(username: str, console: bool = True) -> Staff:
        member = Staff(base)
        opened.append(member)
        assert await member.login(username, PASSWORD) == 302
        if console:
            await member.open_console()
        return member

    async def waiting_conversation(customer_id: str, text: str) -> Widget:
        """A signed-in customer's conversation, queued for a person (the bot is down)."""
        widget = Widget(base, http)
        opened.append(widget)
        await widget.connect(token=sign_customer_token(customer_id, TOKEN_SECRET))
        await widget.send(text)
        await widget.until(lambda e: e["type"] == "status" and e["status"] == "waiting", timeout=30)
        return widget

    yield type("Gateway", (), {"url": base, "http": http, "db_url": db_url, "app": server.app,
                               "agent": staticmethod(agent), "waiting": staticmethod(waiting_conversation)})
    for member in opened:
        await member.close()
    await http.close()
    await server.close()


def frames_text(widget: Widget) -> str:
    return "\n".join(json.dumps(e) for e in widget.received) + json.dumps(widget.welcome)


def stored_notes(url: str, conversation_id: str):
    with session_scope(url) as session:
        return [(n.author, n.text) for n in session.query(ConversationNote)
                .filter(ConversationNote.conversation_id == conversation_id).order_by(ConversationNote.id)]


async def raw_post(staff: Staff, url: str, **kwargs):
    async with staff.http.post(url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


# -- private notes ------------------------------------------------------------------------------
async def test_a_note_reaches_colleagues_live_and_never_the_customer(gateway):
    widget = await gateway.waiting("cust-1001", "my headphones never arrived")
    conversation = widget.conversation_id
    maria, omar = await gateway.agent("maria"), await gateway.agent("omar")
    await omar.watch(conversation)  # a colleague following the conversation
    assert (await maria.post(f"/api/conversations/{conversation}/take"))[0] == 200
    await widget.until(lambda e: e["type"] == "agent_joined")

    status, answer = await maria.post(f"/api/conversations/{conversation}/notes", {"text": "  " + HOSTILE_NOTE + "\n"})
    assert status == 201, answer
    assert answer["note"]["text"] == HOSTILE_NOTE and answer["note"]["author_name"] == "Maria"
    pushed = await omar.until(lambda e: e["type"] == "note")
    assert pushed["conversation_id"] == conversation and pushed["note"]["text"] == HOSTILE_NOTE
    status, listed = await omar.get(f"/api/conversations/{conversation}/notes")
    assert status == 200 and [(n["author"], n["author_name"], n["text"]) for n in listed["notes"]] == \
        [("maria", "Maria", HOSTILE_NOTE)]
    assert listed["notes"][0]["created_at"].endswith("Z")

    # The customer's socket never carried it, not even after the agent kept talking.
    assert (await maria.post(f"/api/conversations/{conversation}/send", {"text": "Looking into it now."}))[0] == 200
    await widget.until(lambda e: e["type"] == "message" and e["message"]["sender"] == "agent")
    await widget.settle(1.0)
    assert NOTE_SECRET not in frames_text(widget)
    # Nor the history a reconnecting widget gets.
    again = Widget(gateway.url, gateway.http)
    welcome = await again.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET), resume=widget.resume)
    assert welcome["conversation_id"] == conversation and welcome["history"]
    assert NOTE_SECRET not in json.dumps(welcome)
    await again.close()


async def test_notes_need_a_staff_session_and_the_console_origin(gateway):
    widget = await gateway.waiting("cust-1002", "charged twice")
    path = f"{gateway.url}/api/conversations/{widget.conversation_id}/notes"
    async with gateway.http.get(path) as response:
        assert response.status == 401 and "log in" in (await response.json())["error"]
    async with gateway.http.post(path, json={"text": "sneaky"}) as response:
        assert response.status == 401
    tess = await gateway.agent("tess", console=False)  # a trainer is not an agent
    assert (await tess.get(f"/api/conversations/{widget.conversation_id}/notes"))[0] == 403
    maria = await gateway.agent("maria", console=False)
    status, answer = await raw_post(maria, path, json={"text": "from another site"},
                                    headers={"Origin": "https://evil.example"})
    assert status == 403 and "Cross-site" in answer["error"]
    admin = await gateway.agent("ada", console=False)  # admins read and write notes too
    assert (await admin.post(f"/api/conversations/{widget.conversation_id}/notes", {"text": "checked by Ada"}))[0] == 201
    assert stored_notes(gateway.db_url, widget.conversation_id) == [("ada", "checked by Ada")]


async def test_bad_notes_are_refused_with_clear_errors_and_stored_notes_stay(gateway):
    widget = await gateway.waiting("cust-1003", "the blender leaks")
    conversation = widget.conversation_id
    maria = await gateway.agent("maria", console=False)
    path = f"/api/conversations/{conversation}/notes"
    assert (await maria.post(path, {"text": "first note"}))[0] == 201
    limit = gateway.app[team_api.TEAM].settings.note_max_chars
    for body, says in (({"text": ""}, "empty"), ({"text": " \n\t "}, "empty"), ({"text": 42}, "must be text"),
                       ({"text": ["a"]}, "must be text"), ({}, "must be text"), (["text"], "JSON object"),
                       ({"text": "x" * (limit + 1)}, f"limit is {limit}")):
        status, answer = await maria.post(path, body)
        assert status == 400 and says in answer["error"], (body, answer)
    status, answer = await raw_post(maria, gateway.url + path, data="{oops",
                                    headers={"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in answer["error"]
    status, answer = await raw_post(maria, gateway.url + path, data="text=hello")
    assert status == 400 and "Send JSON" in answer["error"]
    assert (await maria.post(path, {"text": "y" * limit}))[0] == 201  # exactly the limit is fine
    assert stored_notes(gateway.db_url, conversation) == [("maria", "first note"), ("maria", "y" * limit)]
    assert (await maria.post("/api/conversations/w-does-not-exist/notes", {"text": "hi"}))[0] == 404
    assert (await maria.get("/api/conversations/w-does-not-exist/notes"))[0] == 404
    assert (await maria.get("/api/conversations/" + "w" * 300 + "/notes"))[0] == 404


# -- reassign -----------------------------------------------------------------------------------
async def test_reassigning_passes_the_conversation_and_the_old_agent_can_no_longer_reply(gateway):
    widget = await gateway.waiting("cust-1001", "still waiting for my parcel")
    conversation = widget.conversation_id
    path = f"/api/conversations/{conversation}/reassign"
    maria, omar = await gateway.agent("maria"), await gateway.agent("omar")
    status, listed = await maria.get("/api/agents")
    assert status == 200
    agents = {a["username"]: a for a in listed["agents"]}
    assert set(agents) == {"maria", "omar", "ada"}  # no trainer, no disabled account
    assert agents["omar"] == {"username": "omar", "name": "Omar", "role": "agent", "online": True}
    assert agents["ada"]["online"] is False

    assert (await omar.post(path, {"to": "omar"}))[0] == 409  # nobody has it yet: not Omar's to pass
    assert (await maria.post(f"/api/conversations/{conversation}/take"))[0] == 200
    status, answer = await omar.post(path, {"to": "omar"})
    assert status == 409 and "Only the agent who has the conversation" in answer["error"]
    for body, says in (({"to": "nobody"}, "no active staff account named 'nobody'"),
                       ({"to": "gone"}, "no active staff account"), ({"to": "tess"}, "not an agent"),
                       ({"to": "maria"}, "already has this conversation"), ({"to": 42}, "staff username"),
                       ({"to": "  "}, "staff username"), ({}, "Say who gets the conversation"),
                       ({"to": "x" * 500}, "long")):
        status, answer = await maria.post(path, body)
        assert status == 400 and says in answer["error"], (body, answer)
    with session_scope(gateway.db_url) as session:
        assert session.get(ChatConversation, conversation).assigned_agent == "maria"  # refusals changed nothing

    status, answer = await maria.post(path, {"to": "omar"})
    assert status == 200 and answer == {"ok": True, "assigned_agent": "omar", "status": "agent"}
    assigned = await omar.until(lambda e: e["type"] == "assigned")
    assert assigned["conversation_id"] == conversation
    joined = await widget.until(lambda e: e["type"] == "message" and e["message"]["sender"] == "system"
                                and "Omar" in e["message"]["text"])
    assert joined["message"]["text"] == "Omar from our team has joined the conversation."
    status, answer = await maria.post(f"/api/conversations/{conversation}/send", {"text": "still me?"})
    assert status == 409
    assert (await omar.post(f"/api/conversations/{conversation}/send", {"text": "Omar here, on it."}))[0] == 200
    assert (await widget.until(lambda e: e["type"] == "message" and e["message"]["sender"] == "agent"))[
        "message"]["agent_name"] == "Omar"
    queue = (await maria.get("/api/queue"))[1]
    assert conversation not in [s["conversation_id"] for s in queue["mine"]]
    assert conversation in [s["conversation_id"] for s in (await omar.get("/api/queue"))[1]["mine"]]

    # Back to the queue: the customer is told politely and waits for the next person.
    status, answer = await omar.post(path, {"to": None})
    assert status == 200 and answer["status"] == "waiting"
    await widget.until(lambda e: e["type"] == "status" and e["status"] == "waiting")
    queue = (await maria.get("/api/queue"))[1]
    assert conversation in [s["conversation_id"] for s in queue["waiting"]]
    polite = [m["text"] for m in widget.messages("system")][-1]
    assert "next available person" in polite
    assert (await omar.post(f"/api/conversations/{conversation}/send", {"text": "hello?"}))[0] == 409
    # An admin may hand a waiting conversation straight to someone.
    admin = await gateway.agent("ada", console=False)
    assert (await admin.post(path, {"to": "maria"}))[0] == 200
    await maria.until(lambda e: e["type"] == "assigned" and e["conversation_id"] == conversation)
    with session_scope(gateway.db_url) as session:
        stored = session.get(ChatConversation, conversation)
        assert (stored.status, stored.assigned_agent, stored.last_agent) == ("agent", "maria", "maria")
    assert (await maria.post(path, {"to": None}))[0] == 200


# -- search -------------------------------------------------------------------------------------
async def test_search_finds_conversations_by_name_email_order_case_and_id(gateway):
    dana = await gateway.waiting("cust-1001", "where are my headphones")
    sam = await gateway.waiting("cust-1002", "you charged me twice")
    maria = await gateway.agent("maria", console=False)

    async def found(query: str):
        status, answer = await maria.get("/api/search?q=" + quote(query, safe=""))
        assert status == 200, answer
        return [r["conversation_id"] for r in answer["results"]]

    assert await found("dana") == [dana.conversation_id]
    assert await found("  WHITFIELD ") == [dana.conversation_id]
    assert await found("SAM@example") == [sam.conversation_id]
    assert await found("a1001") == [dana.conversation_id]          # Dana's order
    assert await found("B2002") == [sam.conversation_id]           # Sam's order
    assert await found("case-501") == [dana.conversation_id]       # Dana's case
    assert await found(sam.conversation_id[2:14]) == [sam.conversation_id]
    assert set(await found("example.com")) == {dana.conversation_id, sam.conversation_id}
    for wildcard in ("%%", "__", "%_", "\\%"):  # the user's wildcards are literal characters
        assert await found(wildcard) == [], wildcard
    assert await found("<script>") == []

    status, answer = await maria.get("/api/search?q=dana")
    queue_keys = set((await maria.get("/api/queue"))[1]["waiting"][0])
    assert set(answer["results"][0]) == queue_keys  # the console renders results like queue items
    assert answer["results"][0]["customer"]["name"] == "Dana Whitfield" and answer["truncated"] is False
    for bad in ("", "x", "%20%20x%20", "y" * 101):
        status, answer = await maria.get("/api/search?q=" + bad)
        assert status == 400 and "2 to 100 characters" in answer["error"], bad
    assert (await maria.get("/api/search"))[0] == 400
    async with gateway.http.get(gateway.url + "/api/search?q=dana") as response:
        assert response.status == 401
