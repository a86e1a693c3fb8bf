"""Staff display names come from the accounts table, the same on every gateway (issue 12).

A customer on gateway A whose agent logged in on gateway B reads the agent's display name ("Alice"),
never the username ("alice.k"): on the takeover notice, on the agent's replies, and after reconnecting
to A. A renamed account shows its new name on the next reply. The multi-gateway test reuses
tests/test_gateway_fanout.py's two in-process gateways (fake Rasa, one database, a real Redis) and is
skipped, saying why, without Redis.
"""
from __future__ import annotations

from typing import Any, Dict, List

import aiohttp
import pytest
from sqlalchemy import update

from bot.casedb.engine import session_scope
from bot.casedb.models import Account
from bot.casedb.runner import Database
from bot.gateway.accounts import create_account
from bot.gateway.agent_names import AgentNames
from bot.gateway.app import HUB, ROUTER
from bot.gateway.client import Staff, Widget
from bot.gateway.identity import sign_customer_token
from tests.test_gateway_fanout import PASSWORD, TOKEN_SECRET, _base, _eventually, _two_gateways


def _rename(db_url: str, username: str, name: str) -> None:
    """What an admin's rename does to the accounts table (Mend has no rename endpoint yet)."""
    with session_scope(db_url) as session:
        session.execute(update(Account).where(Account.username == username).values(display_name=name))


def _agent_names(messages: List[Dict[str, Any]]) -> List[Any]:
    return [m["agent_name"] for m in messages if m["sender"] == "agent"]


async def test_customer_on_a_reads_the_display_name_of_an_agent_logged_in_on_b(db_url, tmp_path, redis_prefix,
                                                                              monkeypatch):
    monkeypatch.setenv("MEND_AGENT_NAME_CACHE_SECONDS", "2")
    with session_scope(db_url) as session:
        create_account(session, "alice.k", PASSWORD, "agent", "Alice")
    rasa, gateway_a, gateway_b = await _two_gateways(db_url, tmp_path)
    http = aiohttp.ClientSession()
    agent = Staff(_base(gateway_b))
    widget = Widget(_base(gateway_a), http)
    try:
        assert await agent.login("alice.k", PASSWORD) == 302
        await agent.open_console()
        await _eventually(lambda: "alice.k" in gateway_a.app[HUB].online_agents())
        await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
        conversation_id = widget.conversation_id
        await widget.send("I want to talk to a person please")
        await widget.until(lambda e: e.get("type") == "status" and e.get("status") == "waiting", 30)

        # Alice takes over on B: the customer on A reads "Alice" in the header, the notice and the join event.
        assert (await agent.post(f"/api/conversations/{conversation_id}/take"))[0] == 200
        status = await widget.until(lambda e: e.get("type") == "status" and e.get("status") == "agent", 30)
        assert status["agent"] == {"name": "Alice"}
        assert [e["name"] for e in widget.received if e.get("type") == "agent_joined"] == ["Alice"]  # came before
        notices = [m["text"] for m in widget.messages("system")]
        assert "Alice from our team has joined the conversation." in notices, notices

        # Her reply reaches the customer on A under her display name.
        status_code, sent = await agent.post(f"/api/conversations/{conversation_id}/send", {"text": "Hi, Alice here."})
        assert status_code == 200, sent
        reply = await widget.until(lambda e: e.get("type") == "message" and e["message"]["id"] == sent["message"]["id"])
        assert reply["message"]["agent_name"] == "Alice"

        # The customer reloads the page on A, which never saw Alice log in: same names in the welcome.
        welcome = await widget.reconnect()
        assert welcome["agent"] == {"name": "Alice"}
        assert _agent_names(welcome["history"]) == ["Alice"]
        assert "alice.k" not in str(welcome)

        # Alice is renamed: her next reply carries the new name at once (her own gateway reads it with
        # her session), and gateway A shows it within the configured cache time.
        _rename(db_url, "alice.k", "Alice Kim")
        status_code, sent = await agent.post(f"/api/conversations/{conversation_id}/send",
                                             {"text": "Still looking into it."})
        assert status_code == 200, sent
        assert sent["message"]["agent_name"] == "Alice Kim"
        reply = await widget.until(lambda e: e.get("type") == "message" and e["message"]["id"] == sent["message"]["id"])
        assert reply["message"]["agent_name"] == "Alice Kim"

        names_on_a = gateway_a.app[ROUTER].agent_names
        await _eventually(names_on_a.needs_load, timeout=5)  # A's copy has expired
        welcome = await widget.reconnect()
        assert welcome["agent"] == {"name": "Alice Kim"}
        assert _agent_names(welcome["history"]) == ["Alice Kim", "Alice Kim"]
    finally:
        await widget.close()
        await agent.close()
        await http.close()
        await gateway_a.close()
        await gateway_b.close()
        await rasa.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_names_are_loaded_once_per_ttl_and_follow_renames_and_new_accounts(db_url):
    with session_scope(db_url) as session:
        create_account(session, "alice.k", PASSWORD, "agent", "Alice")
    clock = _Clock()
    names = AgentNames(Database(db_url), ttl_seconds=30, clock=clock)
    assert names.name_of("alice.k") == "alice.k"  # nothing loaded yet: the username, never an error

    await names.fresh("alice.k")
    assert names.get("alice.k", "alice.k") == "Alice" and names["alice.k"] == "Alice" and "alice.k" in names
    for _ in range(50):  # every message of a busy conversation: no database read within the TTL
        await names.fresh("alice.k")
    assert names.loads == 1

    _rename(db_url, "alice.k", "Alice Kim")
    clock.now += 31
    await names.fresh("alice.k")
    assert names.name_of("alice.k") == "Alice Kim" and names.loads == 2

    # An account created since the last load is found on first use; a username with no account
    # reloads at most once a second, however many messages name it.
    with session_scope(db_url) as session:
        create_account(session, "bo", PASSWORD, "agent", "Bo")
    clock.now += 1.5
    await names.fresh("bo")
    assert names.name_of("bo") == "Bo" and names.loads == 3
    for _ in range(20):
        await names.fresh("nobody")
    assert names.name_of("nobody") == "nobody" and names.loads == 3

    # The process that renames someone invalidates: the next lookup reloads at once.
    _rename(db_url, "bo", "Bo Li")
    names.invalidate()
    await names.fresh()
    assert names.name_of("bo") == "Bo Li"

    # A staff member's session shows a name different from the copy: reload on next use.
    _rename(db_url, "bo", "Bo Lindqvist")
    names.noticed("bo", "Bo Lindqvist")
    with session_scope(db_url) as session:
        assert names.fresh_in(session, "bo").name_of("bo") == "Bo Lindqvist"


async def test_unreadable_database_shows_usernames_and_retries_later(tmp_path):
    clock = _Clock()
    names = AgentNames(Database(f"sqlite:///{tmp_path / 'missing' / 'no.db'}"), ttl_seconds=30, clock=clock)
    assert await names.fresh("alice.k") is names  # no exception: a name never fails a message
    assert names.name_of("alice.k") == "alice.k" and names.loads == 0
    assert not names.needs_load("alice.k")  # not retried on every message ...
    clock.now += 6
    assert names.needs_load("alice.k")  # ... but a few seconds later


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_bad_cache_setting_is_refused_with_its_name(monkeypatch, value):
    monkeypatch.setenv("MEND_AGENT_NAME_CACHE_SECONDS", value)
    with pytest.raises(RuntimeError, match="agent_name_cache_seconds"):
        AgentNames(Database("sqlite://"))
