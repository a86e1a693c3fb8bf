"""Canned replies through the console API: admins manage them, agents read and fill them for a
conversation from its case in the database; bad and hostile input gets clear 4xx answers.

No Rasa needed: the gateway runs in this process on a seeded SQLite case database."""
from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.casedb.engine import session_scope
from bot.casedb.models import CannedReply
from bot.gateway import canned, transcript
from bot.gateway.accounts import create_account
from bot.gateway.app import create_app
from bot.gateway.client import Staff
from bot.gateway.config import load_config
from tests.conftest import NOW

PASSWORD = "canned replies password"


@pytest.fixture
async def site(db_url, tmp_path):
    with session_scope(db_url) as session:
        create_account(session, "ada", PASSWORD, "admin", "Ada Lovelace")
        create_account(session, "bo", PASSWORD, "agent", "Bo")
        create_account(session, "tim", PASSWORD, "trainer", "Tim")
        assert canned.seed_defaults(session) == len(canned.DEFAULT_REPLIES)
        dana = transcript.open_conversation(session, "w-canned-dana", "cust-1001")
        dana.case_id = "CASE-501"
        transcript.open_conversation(session, "w-canned-guest", None)
    config = load_config(rasa_url="http://127.0.0.1:9", database_url=db_url, port=0,
                         customer_token_secret="canned-test-customer-secret-long-enough-123",
                         session_secret="canned-test-session-secret-long-enough-123456",
                         trainer_export_dir=str(tmp_path / "trainer"))
    server = TestServer(create_app(config), host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    members = []

    async def login(username: str) -> Staff:
        member = Staff(base)
        members.append(member)
        assert await member.login(username, PASSWORD) == 302
        return member

    yield type("Site", (), {"url": base, "login": staticmethod(login), "db_url": db_url})
    for member in members:
        await member.close()
    await server.close()


async def call(member: Staff, method: str, path: str, body=None, raw: str | None = None, headers=None):
    kwargs = {"headers": dict(headers or {})}
    if raw is not None:
        kwargs["data"] = raw
        kwargs["headers"].setdefault("Content-Type", "application/json")
    elif body is not None:
        kwargs["json"] = body
    async with member.http.request(method, member.base_url + path, **kwargs) as response:
        return response.status, await response.json(content_type=None)


def shortcuts(url: str):
    with session_scope(url) as session:
        return sorted(s for (s,) in session.query(CannedReply.shortcut))


async def test_admin_adds_edits_and_deletes_and_agents_see_them_but_cannot_change_them(site):
    ada, bo = await site.login("ada"), await site.login("bo")
    status, listed = await call(bo, "GET", "/api/canned")
    assert status == 200 and {r["shortcut"] for r in listed["replies"]} >= {"hello", "sorry", "track", "bye"}
    assert listed["can_edit"] is False and "order_id" in listed["placeholders"]

    status, made = await call(ada, "POST", "/api/canned", {"shortcut": "refund-ok", "title": "Refund done",
                                                            "text": "Your refund for {order_id} is on its way."})
    assert status == 201 and made["reply"]["created_by"] == "ada"
    reply_id = made["reply"]["id"]
    status, edited = await call(ada, "PUT", f"/api/canned/{reply_id}",
                                {"shortcut": "refund", "title": "Refund sent", "text": "Refund for {order_id} sent."})
    assert status == 200 and edited["reply"]["shortcut"] == "refund"
    assert "refund" in shortcuts(site.db_url) and "refund-ok" not in shortcuts(site.db_url)

    # An agent (and a trainer) may not change them; nothing changes.
    before = shortcuts(site.db_url)
    for method, path, body in (("POST", "/api/canned", {"shortcut": "x", "title": "x", "text": "x"}),
                               ("PUT", f"/api/canned/{reply_id}", {"shortcut": "x", "title": "x", "text": "x"}),
                               ("DELETE", f"/api/canned/{reply_id}", None)):
        status, answer = await call(bo, method, path, body)
        assert status == 403 and "admin" in answer["error"], (method, answer)
    tim = await site.login("tim")
    assert (await call(tim, "POST", "/api/canned", {"shortcut": "x", "title": "x", "text": "x"}))[0] == 403
    assert shortcuts(site.db_url) == before

    # Another website cannot make an admin's browser change them.
    evil = {"Origin": "https://evil.example"}
    assert (await call(ada, "DELETE", f"/api/canned/{reply_id}", headers=evil))[0] == 403
    assert (await call(ada, "PUT", f"/api/canned/{reply_id}", {"shortcut": "z", "title": "z", "text": "z"},
                       headers=evil))[0] == 403
    assert (await call(ada, "POST", "/api/canned", {"shortcut": "z", "title": "z", "text": "z"},
                       headers=evil))[0] == 403
    assert shortcuts(site.db_url) == before

    assert (await call(ada, "DELETE", f"/api/canned/{reply_id}"))[0] == 200
    assert "refund" not in shortcuts(site.db_url)
    assert (await call(ada, "DELETE", f"/api/canned/{reply_id}"))[0] == 404
    assert (await call(ada, "PUT", "/api/canned/99999", {"shortcut": "q", "title": "q", "text": "q"}))[0] == 404
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(site.url + "/api/canned") as response:
            assert response.status == 401


@pytest.mark.parametrize("body, wanted", [
    ({"shortcut": "Bad Shortcut", "title": "t", "text": "x"}, "shortcut"),
    ({"shortcut": "-dash", "title": "t", "text": "x"}, "shortcut"),
    ({"shortcut": "a" * 41, "title": "t", "text": "x"}, "shortcut"),
    ({"shortcut": "ok", "title": "", "text": "x"}, "title: required"),
    ({"shortcut": "ok", "title": "t" * 121, "text": "x"}, "title: at most 120"),
    ({"shortcut": "ok", "title": "t", "text": "   "}, "text: required"),
    ({"shortcut": "ok", "title": "t", "text": "x" * 2001}, "text: at most 2000"),
    ({"shortcut": "ok", "title": "t", "text": "Hi {first_name}, see {refund_amount} and {bogus}"},
     "{refund_amount}, {bogus}"),
    ({"shortcut": 5, "title": ["t"], "text": None}, "shortcut"),
])
async def test_invalid_canned_replies_are_refused_with_what_is_wrong(site, body, wanted):
    ada = await site.login("ada")
    before = shortcuts(site.db_url)
    status, answer = await call(ada, "POST", "/api/canned", body)
    assert status == 400 and wanted in answer["error"], answer
    assert shortcuts(site.db_url) == before


async def test_duplicates_and_malformed_json_get_clear_errors(site):
    ada = await site.login("ada")
    status, answer = await call(ada, "POST", "/api/canned", {"shortcut": "hello", "title": "t", "text": "x"})
    assert status == 409 and '"/hello" already exists' in answer["error"]
    status, made = await call(ada, "POST", "/api/canned", {"shortcut": "other", "title": "t", "text": "x"})
    status, answer = await call(ada, "PUT", f"/api/canned/{made['reply']['id']}",
                                {"shortcut": "sorry", "title": "t", "text": "x"})
    assert status == 409 and "already exists" in answer["error"]
    for raw in ("{oops", "[1, 2]", "", "null"):
        status, answer = await call(ada, "POST", "/api/canned", raw=raw)
        assert status == 400 and answer["error"], raw
    status, answer = await call(ada, "POST", "/api/canned", raw="shortcut=x", headers={"Content-Type": "text/plain"})
    assert status == 400 and "JSON" in answer["error"]
    assert (await call(ada, "PUT", "/api/canned/not-a-number", {"shortcut": "q", "title": "q", "text": "q"}))[0] == 404


async def test_hostile_text_is_stored_as_text_and_returned_as_json(site):
    ada, bo = await site.login("ada"), await site.login("bo")
    hostile = '<script>alert(1)</script><img src=x onerror="x()"> & "quotes"'
    status, made = await call(ada, "POST", "/api/canned", {"shortcut": "xss", "title": "<b>bold</b>", "text": hostile})
    assert status == 201
    async with bo.http.get(bo.base_url + "/api/canned") as response:
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        listed = await response.json()
    stored = next(r for r in listed["replies"] if r["shortcut"] == "xss")
    assert stored["text"] == hostile and stored["title"] == "<b>bold</b>"  # unchanged text; the console renders text
    status, filled = await call(bo, "GET", f"/api/conversations/w-canned-dana/canned/{made['reply']['id']}")
    assert status == 200 and filled["text"] == hostile and filled["missing"] == []


async def test_fill_uses_the_conversations_customer_case_order_and_shipment(site):
    bo = await site.login("bo")
    _, listed = await call(bo, "GET", "/api/canned")
    ids = {r["shortcut"]: r["id"] for r in listed["replies"]}
    status, filled = await call(bo, "GET", f"/api/conversations/w-canned-dana/canned/{ids['track']}")
    promised = NOW - timedelta(days=3)
    assert status == 200, filled
    assert filled["text"] == (f"Your order A1001 (noise-cancelling headphones) is with SwiftShip, tracking number "
                              f"SS48213377. It was promised for {promised:%B} {promised.day}, {promised.year}.")
    assert filled["missing"] == []
    _, hello = await call(bo, "GET", f"/api/conversations/w-canned-dana/canned/{ids['hello']}")
    assert hello["text"].startswith("Hi Dana, this is Bo from the support team.")
    _, case = await call(bo, "GET", f"/api/conversations/w-canned-dana/canned/{ids['case']}")
    assert "CASE-501" in case["text"]

    # A guest: nothing to fill but the agent's name; the gaps stay visible and are listed.
    status, guest = await call(bo, "GET", f"/api/conversations/w-canned-guest/canned/{ids['track']}")
    assert status == 200
    assert guest["text"].startswith("Your order [order id] ([item]) is with [carrier], tracking number [tracking]")
    assert guest["missing"] == ["order_id", "item", "carrier", "tracking", "promised_date"]
    _, hello = await call(bo, "GET", f"/api/conversations/w-canned-guest/canned/{ids['hello']}")
    assert hello["text"].startswith("Hi [first name], this is Bo") and hello["missing"] == ["first_name"]

    assert (await call(bo, "GET", f"/api/conversations/w-nope/canned/{ids['track']}"))[0] == 404
    assert (await call(bo, "GET", "/api/conversations/w-canned-dana/canned/424242"))[0] == 404


def test_default_replies_are_seeded_once_and_deletions_stay_deleted(db_url):
    with session_scope(db_url) as session:
        assert canned.seed_defaults(session) == len(canned.DEFAULT_REPLIES)
        assert canned.seed_defaults(session) == 0
        session.query(CannedReply).filter(CannedReply.shortcut == "bye").delete()
    with session_scope(db_url) as session:
        assert canned.seed_defaults(session) == 0
        assert "bye" not in {s for (s,) in session.query(CannedReply.shortcut)}
    for _, _, text in canned.DEFAULT_REPLIES:  # the seeds pass the same validation as an admin's replies
        assert canned.unknown_placeholders(text) == []
