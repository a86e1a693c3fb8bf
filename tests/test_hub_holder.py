"""Who holds a conversation is read from the database, where it is recorded, never from a gateway's copy.

One gateway without Redis (the two-gateway case is in tests/test_gateway_fanout.py): an agent made the
holder in the database alone gets the customer's next message on a console that follows nothing; after
a reassignment (again in the database alone) the new holder gets them and the old one no longer does.
Then the hub on its own, with a stand-in database: a slow read of the holder does not reorder a
console's pushes, and a database that does not answer still lets watchers get theirs.
Rasa is tests/fake_rasa.py (no trained model needed).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any, Dict, List

import aiohttp
from aiohttp.test_utils import TestServer
from sqlalchemy.exc import OperationalError

from bot.casedb.engine import session_scope
from bot.gateway import transcript
from bot.gateway.accounts import create_account
from bot.gateway.app import HUB, create_app
from bot.gateway.client import Staff, Widget
from bot.gateway.config import load_config
from bot.gateway.hub import ConsoleClient, Hub
from bot.gateway.identity import sign_customer_token
from tests.fake_rasa import fake_rasa_app
from tests.test_gateway_fanout import assert_each_holder_got_only_its_message

TOKEN_SECRET = "hub-holder-customer-secret-long-enough-1234567"
SESSION_SECRET = "hub-holder-session-secret-long-enough-123456789"
PASSWORD = "hub holder password"


def _hold(db_url: str, conversation_id: str, agent: str) -> None:
    """Who holds the conversation, changed in the database alone: the gateway is not told."""
    with session_scope(db_url) as session:
        transcript.update(session, conversation_id, status="agent", assigned_agent=agent, last_agent=agent)


def _rated(message_id: int):
    return lambda e: e.get("type") == "message" and e["message"]["id"] == message_id \
        and e["message"]["frustration"] is not None


async def test_one_gateway_sends_a_conversation_to_the_holder_the_database_records(db_url, tmp_path):
    with session_scope(db_url) as session:
        create_account(session, "cy", PASSWORD, "agent", "Cy")
        create_account(session, "di", PASSWORD, "agent", "Di")
    rasa = TestServer(fake_rasa_app(), host="127.0.0.1")
    await rasa.start_server()
    config = load_config(rasa_url=str(rasa.make_url("")).rstrip("/"), database_url=db_url, port=0,
                         customer_token_secret=TOKEN_SECRET, session_secret=SESSION_SECRET,
                         trainer_export_dir=str(tmp_path / "trainer"))
    gateway = TestServer(create_app(config), host="127.0.0.1")
    await gateway.start_server()
    base = str(gateway.make_url("")).rstrip("/")
    http = aiohttp.ClientSession()
    cy, di, widget = Staff(base), Staff(base), Widget(base, http)
    try:
        assert gateway.app[HUB].fanout is None  # no Redis: one gateway
        for agent, username in ((cy, "cy"), (di, "di")):
            assert await agent.login(username, PASSWORD) == 302
            await agent.open_console()  # following no conversation: only holding one brings its messages
        await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
        conversation_id = widget.conversation_id
        await widget.send("hello, my parcel is late")
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", 30)
        assert not await gateway.app[HUB].watched(conversation_id)  # nobody follows it: no suggestions

        _hold(db_url, conversation_id, "cy")
        assert await gateway.app[HUB].watched(conversation_id)  # Cy holds it: suggestions are computed
        sent = await widget.send("is anyone there?")
        first = await widget.until(lambda e: e.get("type") == "ack" and e["client_id"] == sent)
        await cy.until(_rated(first["id"]), 30)

        _hold(db_url, conversation_id, "di")  # reassigned, in the database alone
        sent = await widget.send("hello again, anyone?")
        second = await widget.until(lambda e: e.get("type") == "ack" and e["client_id"] == sent)
        await di.until(_rated(second["id"]), 30)

        await assert_each_holder_got_only_its_message(cy, di, first["id"], second["id"])
    finally:
        await widget.close()
        await cy.close()
        await di.close()
        await http.close()
        await gateway.close()
        await rasa.close()


# -- the hub alone, with a stand-in database ----------------------------------------------------------------
class FakeSocket:
    closed = False

    def __init__(self) -> None:
        self.sent: List[Dict[str, Any]] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(json.loads(text))


class Holders:
    """``Database.run`` for ``holder_in``: who holds what, answering after ``delay`` seconds (or failing)."""

    def __init__(self, holders: Dict[str, str], delay: float = 0.0, down: bool = False) -> None:
        self.holders, self.delay, self.down = holders, delay, down

    async def run(self, work: Any, conversation_id: str) -> Any:
        await asyncio.sleep(self.delay)
        if self.down:
            raise OperationalError("SELECT", {}, ConnectionRefusedError("the database is down"))
        return self.holders.get(conversation_id)


def _console(hub: Hub, username: str, watching: tuple = ()) -> FakeSocket:
    socket = FakeSocket()
    hub.add_console(ConsoleClient(socket, username, set(watching)))  # type: ignore[arg-type]
    return socket


async def test_a_slow_read_of_the_holder_does_not_reorder_a_consoles_pushes():
    hub = Hub(database=Holders({"c-1": "cy"}, delay=0.3))
    cy = _console(hub, "cy")
    message = asyncio.ensure_future(hub.to_consoles({"type": "message", "n": 1}, conversation_id="c-1"))
    await asyncio.sleep(0.05)  # the holder is being read ...
    await asyncio.gather(hub.to_consoles({"type": "queue", "n": 2}, agent="cy"), message)  # ... when this comes
    assert [e["n"] for e in cy.sent] == [1, 2]


async def test_with_the_database_down_watchers_still_get_a_conversations_pushes(caplog):
    hub = Hub(database=Holders({"c-1": "cy"}, down=True))
    cy, watcher = _console(hub, "cy"), _console(hub, "di", watching=("c-1",))
    with caplog.at_level("WARNING", logger="bot.gateway.hub"):
        await hub.to_consoles({"type": "message", "n": 1}, conversation_id="c-1")
        assert await hub.watched("c-1")  # Di follows it
    assert [e["n"] for e in watcher.sent] == [1] and cy.sent == []
    assert any("could not read who holds c-1" in r.getMessage() for r in caplog.records)
