"""Abuse from the outside through the real widget socket and API, against the live bot:
floods of new conversations, identity guessing across conversations, flood folding in the
agents' queue, and a verified guest keeping (only their own) conversation across reloads.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp

from bot.casedb.engine import session_scope
from bot.casedb.models import ChatConversation, ThrottleEvent
from bot.gateway.client import Staff, Widget
from bot.gateway.identity import sign_customer_token
from bot.gateway.throttle import TOO_MANY_CONVERSATIONS, VERIFY_LOCKED
from tests.test_gateway import PASSWORD, TOKEN_SECRET, another_gateway, gateway, is_message  # noqa: F401

COMPLAINT = "my headphones never arrived and nobody tells me anything"


def _bot_text(widget: Widget) -> str:
    return " ".join(m["text"] for m in widget.messages("bot"))


async def _say(widget: Widget, text: str) -> str:
    """Send, wait for the bot's answer (until it goes quiet), return what the bot said to this message."""
    before = len(widget.messages("bot"))
    await widget.send(text, client_id=uuid.uuid4().hex)  # unique, as widget.js makes them (a reload restarts c1, c2...)
    await widget.until(is_message("bot"), timeout=60)
    await widget.settle(0.8)
    return " ".join(m["text"] for m in widget.messages("bot")[before:])


async def _guess(gateway, http: aiohttp.ClientSession, attempts: list, base: str | None = None) -> list:
    """A fresh guest conversation per two guesses (one conversation allows three), like a scripted attacker."""
    answers = []
    for start in range(0, len(attempts), 2):
        widget = Widget(base or gateway.url, http)
        assert (await widget.connect())["type"] == "welcome"
        for email, order in attempts[start:start + 2]:
            answers.append(await _say(widget, f"my email is {email}, order {order}"))
        await widget.close()
    return answers


# -- 7a: new conversations per address ---------------------------------------------------------------
async def test_new_conversations_from_one_address_are_limited_with_a_clear_error(gateway):
    per_hour = 4
    async with another_gateway(gateway, new_conversations_per_hour=per_hour, trusted_proxies=["127.0.0.1"]) as (url, _):
        async with aiohttp.ClientSession(headers={"X-Forwarded-For": "203.0.113.5"}) as flooder:
            opened = []
            for _ in range(per_hour):
                widget = Widget(url, flooder)
                assert (await widget.connect())["type"] == "welcome"
                opened.append(widget)
            refused = Widget(url, flooder)
            first = await refused.connect()
            assert first["type"] == "error" and first["code"] == "too_many_conversations"
            assert first["message"] == TOO_MANY_CONVERSATIONS and "continue your existing chat" in first["message"]
            closing = await refused.socket.receive(timeout=10)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            # Continuing an existing chat is not a new one: still allowed.
            again = Widget(url, flooder)
            welcome = await again.connect(resume=opened[0].resume)
            assert welcome["type"] == "welcome" and welcome["conversation_id"] == opened[0].conversation_id
            for widget in opened + [again]:
                await widget.close()
        # Someone else (another address) still gets a chat.
        async with aiohttp.ClientSession(headers={"X-Forwarded-For": "198.51.100.20"}) as neighbour:
            other = Widget(url, neighbour)
            assert (await other.connect())["type"] == "welcome"
            await other.close()
    with session_scope(gateway.db_url) as session:  # what is stored is a keyed hash, never the address
        keys = {c.client_key for c in session.query(ChatConversation).filter(ChatConversation.client_key.isnot(None))}
        assert keys and all(len(k) == 32 and "203.0.113" not in k for k in keys)


# -- 7b: identity guessing across conversations --------------------------------------------------------
async def test_guessing_order_numbers_for_one_email_across_new_conversations_is_stopped(gateway):
    wrong = [("dana@example.com", f"A10{n:02d}") for n in range(2, 8)]  # six wrong guesses, three conversations
    answers = await _guess(gateway, gateway.http, wrong)
    assert all("couldn't match" in a or "can't match" in a for a in answers[:5]), answers
    # Now the right order number, in a brand-new conversation: refused like a wrong one, a person offered.
    started = time.monotonic()
    widget = gateway.widget()
    await widget.connect()
    right = await _say(widget, "my email is dana@example.com, order A1001")
    right_seconds = time.monotonic() - started
    assert VERIFY_LOCKED in right and "connect you with a person" in right
    for secret in ("Dana", "CASE-501", "headphones", "SwiftShip"):
        assert secret not in right
    started = time.monotonic()
    wrong_again = await _say(widget, "my email is dana@example.com, order A1099")
    wrong_seconds = time.monotonic() - started
    assert VERIFY_LOCKED in wrong_again  # the same answer whichever half was wrong (or neither)
    assert abs(right_seconds - wrong_seconds) < 3.0
    with session_scope(gateway.db_url) as session:
        assert session.get(ChatConversation, widget.conversation_id).customer_id is None
        stored = [e.key for e in session.query(ThrottleEvent).filter(ThrottleEvent.kind == "verify_email")]
        assert stored and not any("dana" in key or "@" in key for key in stored)
    await widget.close()


async def test_guessing_many_emails_from_one_address_is_stopped(gateway):
    limit = 10  # gateway.abuse.verification.per_address in the shipped settings
    wrong = [(f"someone{n}@example.com", "B2002") for n in range(limit)]
    answers = await _guess(gateway, gateway.http, wrong)
    assert not any(VERIFY_LOCKED in a for a in answers), answers
    widget = gateway.widget()
    await widget.connect()
    right = await _say(widget, "my email is sam@example.com, order B2002")  # Sam's real pair, never tried before
    assert VERIFY_LOCKED in right and "Sam" not in right
    await widget.close()


# -- 7c: the agents' live list folds floods -------------------------------------------------------------
async def test_a_flood_from_one_address_is_folded_in_the_agents_live_list(gateway):
    async with another_gateway(gateway, trusted_proxies=["127.0.0.1"]) as (url, config):
        flood_http = aiohttp.ClientSession(headers={"X-Forwarded-For": "203.0.113.66"})
        real_http = aiohttp.ClientSession(headers={"X-Forwarded-For": "198.51.100.31"})
        widgets = []
        try:
            flood = [Widget(url, flood_http) for _ in range(9)]
            real_guest = Widget(url, real_http)
            dana = Widget(url, flood_http)  # a signed-in customer behind the same address is never folded
            for widget in flood + [real_guest]:
                await widget.connect()
            await dana.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
            widgets = flood + [real_guest, dana]
            for n, widget in enumerate(flood):
                await widget.send(f"spam {n}")
            await real_guest.send("hi, I have a question about my order")
            await dana.send("hello")
            for widget in widgets:
                await widget.until(lambda e: e["type"] == "ack")
            agent = Staff(url)
            try:
                assert await agent.login("maria", PASSWORD) == 302
                status, queue = await agent.get("/api/queue")
            finally:
                await agent.close()
        finally:
            for widget in widgets:
                await widget.close()
            await flood_http.close()
            await real_http.close()
    assert status == 200
    live = {s["conversation_id"] for s in queue["live"]}
    assert real_guest.conversation_id in live and dana.conversation_id in live
    assert len(queue.get("live_folded") or []) == 1, "the flood is not folded"
    flood_ids = {w.conversation_id for w in flood}
    assert len(live & flood_ids) == config.live_fold_after
    group = queue["live_folded"][0]
    assert group["count"] == len(flood) - config.live_fold_after
    folded = {s["conversation_id"] for s in group["conversations"]}
    assert folded == flood_ids - live  # every flood conversation is either listed or folded, once


# -- 6: a guest verified in the chat keeps the conversation across reloads -----------------------------------
def _resume_pushed(widget: Widget) -> str:
    tokens = [e["resume"] for e in widget.received if e.get("type") == "resume"]
    assert tokens, "the gateway sent no refreshed resume token after verification"
    return tokens[-1]


async def test_a_verified_guest_keeps_the_conversation_after_reload_and_nobody_else_sees_it(gateway):
    lifetime_seconds = 20
    async with another_gateway(gateway, verified_guest_hours=lifetime_seconds / 3600) as (url, _):
        guest = Widget(url, gateway.http)
        await guest.connect()
        first_resume = guest.resume
        await _say(guest, COMPLAINT)
        verified = await _say(guest, "my email is dana@example.com, order A1001")
        verified_at = time.monotonic()
        assert "A1001" in verified or "Dana" in verified, verified
        await guest.settle(1.0)
        resume = _resume_pushed(guest)
        await guest.close()
        with session_scope(gateway.db_url) as session:
            assert session.get(ChatConversation, guest.conversation_id).customer_id == "cust-1001"

        reloaded = Widget(url, gateway.http)
        welcome = await reloaded.connect(resume=resume)
        assert welcome["conversation_id"] == guest.conversation_id
        assert [m["text"] for m in welcome["history"]][:1] == [COMPLAINT]
        assert reloaded.resume == resume  # the lifetime counts from the verification, a reload does not extend it
        await _say(reloaded, "so when will they arrive?")  # still Dana's conversation with the bot
        await reloaded.close()

        # The token from before the verification, another customer's sign-in, a forged token: not this chat.
        for token, old in ((None, first_resume), (sign_customer_token("cust-1002", TOKEN_SECRET), resume),
                           (None, resume[:-4] + "AAAA")):
            other = Widget(url, gateway.http)
            welcome = await other.connect(token=token, resume=old)
            assert welcome["conversation_id"] != guest.conversation_id and welcome["history"] == []
            await other.close()

        # After the lifetime, the next guest on this browser starts afresh.
        await asyncio.sleep(max(0.0, lifetime_seconds + 1 - (time.monotonic() - verified_at)))
        later = Widget(url, gateway.http)
        welcome = await later.connect(resume=resume)
        assert welcome["conversation_id"] != guest.conversation_id and welcome["history"] == []
        await later.close()
