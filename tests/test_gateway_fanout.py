"""Two gateways, one conversation: a customer on gateway A and an agent on gateway B see each other live
through Redis pub/sub, each push reaching each socket exactly once; the conversation lock and the
rate limits hold across both gateways; with Redis gone, a gateway still serves its own sockets.

Runs against the real Redis (MEND_TEST_REDIS_URL, default redis://127.0.0.1:6379/15) and is SKIPPED,
saying why, when it does not answer. Every run uses its own key prefix and channel and removes its keys.
Rasa is tests/fake_rasa.py (no trained model needed): the gateways' paths are what is tested.
"""
from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any, Dict, List, Tuple

import aiohttp
from aiohttp.test_utils import TestServer

from bot.casedb.engine import session_scope
from bot.gateway.accounts import create_account
from bot.gateway.app import HUB, LIMITER
from bot.gateway.client import Staff, Widget
from bot.gateway.fanout import FanoutSettings, RedisFanout, RedisRateLimiter, conversation_lock, finish
from bot.gateway.hub import Hub
from bot.gateway.identity import sign_customer_token
from tests.fake_rasa import fake_rasa_app
from tests.one_gateway import started_gateway
from tests.redis_engine import REDIS_URL

TOKEN_SECRET = "fanout-customer-secret-long-enough-1234567"
SESSION_SECRET = "fanout-session-secret-long-enough-123456789"
PASSWORD = "fan out password"
# Nothing listens here (this suite's own port range): "Redis is down".
DEAD_REDIS = f"redis://127.0.0.1:{int(os.environ.get('MEND_TEST_PORT_BASE', '6600')) + 199}/0"


async def _two_gateways(db_url: str, tmp_path: Any, **overrides: Any) -> Tuple[TestServer, TestServer, TestServer]:
    rasa = TestServer(fake_rasa_app(), host="127.0.0.1")
    await rasa.start_server()
    gateways = [await started_gateway(rasa, db_url, tmp_path, name, customer_token_secret=TOKEN_SECRET,
                                      session_secret=SESSION_SECRET, redis_url=REDIS_URL, **overrides)
                for name in ("a", "b")]
    return rasa, gateways[0], gateways[1]


def _base(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _eventually(check: Any, timeout: float = 10.0) -> None:
    """Until ``check()`` (a value, or an awaitable of one) is true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    async def holds() -> bool:
        result = check()
        return bool(await result if inspect.isawaitable(result) else result)

    while not await holds():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _drain_console(agent: Staff, quiet: float = 1.0) -> None:
    while True:
        try:
            agent.events.append(await agent.socket.receive_json(timeout=quiet))
        except asyncio.TimeoutError:
            return


def _messages(events: List[Dict[str, Any]], message_id: int) -> List[Dict[str, Any]]:
    return [e for e in events if e.get("type") == "message" and (e.get("message") or {}).get("id") == message_id]


async def assert_each_holder_got_only_its_message(cy: Staff, di: Staff, first: int, second: int) -> None:
    """Cy held the conversation for message ``first``, Di for ``second``: each got its own message (unrated,
    then rated) and not the other's."""
    await asyncio.gather(_drain_console(cy, 1.0), _drain_console(di, 1.0))
    assert [m["message"]["frustration"] is None for m in _messages(cy.events, first)] == [True, False]
    assert [m["message"]["frustration"] is None for m in _messages(di.events, second)] == [True, False]
    assert not _messages(di.events, first)  # Di did not hold it then
    assert not _messages(cy.events, second)  # ... and Cy no longer does


async def test_customer_on_a_and_agent_on_b_see_each_other_live_exactly_once(db_url, tmp_path, redis_prefix):
    with session_scope(db_url) as session:
        create_account(session, "bo", PASSWORD, "agent", "Bo")
    rasa, gateway_a, gateway_b = await _two_gateways(db_url, tmp_path)
    http = aiohttp.ClientSession()
    agent = Staff(_base(gateway_b))
    widget = Widget(_base(gateway_a), http)
    try:
        assert await agent.login("bo", PASSWORD) == 302
        await agent.open_console()
        # Gateway A learns through Redis that Bo is online on B (it routes and publishes the queue for him).
        await _eventually(lambda: "bo" in gateway_a.app[HUB].online_agents())
        assert not gateway_a.app[HUB].consoles  # ... though no console is connected to A itself

        await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
        conversation_id = widget.conversation_id
        await agent.watch(conversation_id)
        await _eventually(lambda: gateway_a.app[HUB].watched(conversation_id))

        # The customer writes on A; the agent following the conversation on B sees it live, and the bot's answer.
        await widget.send("hello, my parcel is late")
        first = await widget.until(lambda e: e.get("type") == "ack")
        seen = await agent.until(lambda e: e.get("type") == "message" and e["message"]["id"] == first["id"], 30)
        assert seen["conversation_id"] == conversation_id and seen["message"]["text"] == "hello, my parcel is late"
        await agent.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", 30)

        # Asking for a person: the conversation appears in the agent's queue on B.
        await widget.send("I want to talk to a person please")
        await widget.until(lambda e: e.get("type") == "status" and e.get("status") == "waiting")
        await agent.until(lambda e: e.get("type") == "queue" and any(
            s["conversation_id"] == conversation_id for s in e["queue"]["waiting"]), 30)

        # Bo takes over on B: the customer on A hears it.
        assert (await agent.post(f"/api/conversations/{conversation_id}/take"))[0] == 200
        joined = await widget.until(lambda e: e.get("type") == "status" and e.get("status") == "agent", 30)
        assert joined["agent"]["name"] == "Bo"

        # Bo replies on B; the customer on A receives the reply.
        status, sent = await agent.post(f"/api/conversations/{conversation_id}/send",
                                        {"text": "Hi, I'm Bo. Let me check your parcel."})
        assert status == 200, sent
        reply_id = sent["message"]["id"]
        reply = await widget.until(lambda e: e.get("type") == "message" and e["message"]["id"] == reply_id, 30)
        assert reply["message"]["text"] == "Hi, I'm Bo. Let me check your parcel." and reply["message"]["sender"] == "agent"

        # Bo now follows another conversation: the customer's next message still reaches him on B,
        # because he holds it (the assignment, not the watch), and A still thinks it followed.
        await agent.watch("some-other-conversation")
        await _eventually(lambda: not gateway_a.app[HUB].fanout.remote_watching & {conversation_id})
        assert await gateway_a.app[HUB].watched(conversation_id)
        await widget.send("thanks, it was order 1001")
        last = await widget.until(lambda e: e.get("type") == "ack" and e["id"] != first["id"])
        await agent.until(lambda e: e.get("type") == "message" and e["message"]["id"] == last["id"], 30)

        # Exactly once per socket, for the agent's own gateway and for the other one.
        await asyncio.gather(widget.settle(1.0), _drain_console(agent, 1.0))
        assert len(_messages(widget.received, reply_id)) == 1
        assert len(_messages(agent.events, reply_id)) == 1  # published by B, delivered by B once
        joined_notes = [e for e in widget.received if e.get("type") == "agent_joined"]
        assert len(joined_notes) == 1
        customer_first = _messages(agent.events, first["id"])
        assert [m["message"]["frustration"] is None for m in customer_first] == [True, False]  # unrated, then rated
        for event in widget.received:
            if event.get("type") == "message" and event["message"].get("id") is not None:
                assert len(_messages(widget.received, event["message"]["id"])) == 1, event
    finally:
        await widget.close()
        await agent.close()
        await http.close()
        await gateway_a.close()
        await gateway_b.close()
        await rasa.close()


def _hold(db_url: str, conversation_id: str, agent: str) -> None:
    """Who holds the conversation, changed in the database alone: no gateway is told."""
    from bot.gateway import transcript

    with session_scope(db_url) as session:
        transcript.update(session, conversation_id, status="agent", assigned_agent=agent, last_agent=agent)


async def test_the_holder_recorded_in_the_database_gets_the_conversation_on_any_gateway(db_url, tmp_path,
                                                                                       redis_prefix):
    """No gateway keeps who holds a conversation: the database says it. Cy (console on B, not watching)
    is made the holder in the database only, and the customer's next message, sent through A, reaches
    her on B, once unrated and once rated. Cy passes the conversation to Di (console on A); from then
    on the customer's messages reach Di, and Cy's console no longer gets the conversation."""
    with session_scope(db_url) as session:
        create_account(session, "cy", PASSWORD, "agent", "Cy")
        create_account(session, "di", PASSWORD, "agent", "Di")
    rasa, gateway_a, gateway_b = await _two_gateways(db_url, tmp_path)
    http = aiohttp.ClientSession()
    cy, di = Staff(_base(gateway_b)), Staff(_base(gateway_a))
    widget = Widget(_base(gateway_a), http)
    try:
        for agent, username in ((cy, "cy"), (di, "di")):
            assert await agent.login(username, PASSWORD) == 302
            await agent.open_console()  # following no conversation: only holding one brings its messages
        await _eventually(lambda: {"cy", "di"} <= gateway_a.app[HUB].online_agents())
        await widget.connect(token=sign_customer_token("cust-1001", TOKEN_SECRET))
        conversation_id = widget.conversation_id
        await widget.send("hello, my parcel is late")
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", 30)

        _hold(db_url, conversation_id, "cy")
        sent = await widget.send("is anyone there?")
        first = await widget.until(lambda e: e.get("type") == "ack" and e["client_id"] == sent)
        await cy.until(lambda e: e.get("type") == "message" and e["message"]["id"] == first["id"]
                       and e["message"]["frustration"] is not None, 30)
        assert await gateway_a.app[HUB].watched(conversation_id)  # suggestions are computed for her

        status, moved = await cy.post(f"/api/conversations/{conversation_id}/reassign", {"to": "di"})
        assert status == 200, moved
        await di.until(lambda e: e.get("type") == "assigned" and e.get("conversation_id") == conversation_id, 30)
        sent = await widget.send("hello again, anyone?")
        second = await widget.until(lambda e: e.get("type") == "ack" and e["client_id"] == sent)
        await di.until(lambda e: e.get("type") == "message" and e["message"]["id"] == second["id"]
                       and e["message"]["frustration"] is not None, 30)

        await assert_each_holder_got_only_its_message(cy, di, first["id"], second["id"])
    finally:
        await widget.close()
        await cy.close()
        await di.close()
        await http.close()
        await gateway_a.close()
        await gateway_b.close()
        await rasa.close()


async def test_a_message_resent_to_the_other_gateway_reaches_the_bot_once(db_url, tmp_path, redis_prefix):
    """Gateway A got the bot's answer, then stopped before noting the message handled; the widget, cut off
    before its ack, reconnects to gateway B and resends: B finds the turn in Rasa's tracker, gives the
    customer the answer they missed, and does not run the message through the bot again."""
    from bot.gateway.transcript import ChatMessage

    rasa, gateway_a, gateway_b = await _two_gateways(db_url, tmp_path)
    http = aiohttp.ClientSession()
    widget = Widget(_base(gateway_a), http)
    again = Widget(_base(gateway_b), http)
    text = "my parcel E5005 never arrived"
    try:
        token = sign_customer_token("cust-1005", TOKEN_SECRET)
        await widget.connect(token=token)
        client_id = await widget.send(text)
        acked = await widget.until(lambda e: e.get("type") == "ack")
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", 30)
        assert rasa.app["seen"].count(text) == 1
        with session_scope(db_url) as session:  # A stopped after Rasa answered, before noting it
            session.get(ChatMessage, acked["id"]).delivered_to_bot = False

        await again.connect(token=token, resume=widget.resume)
        assert again.conversation_id == widget.conversation_id
        await again.send(text, client_id=client_id)  # the widget's resend of what it thinks unacknowledged
        second = await again.until(lambda e: e.get("type") == "ack")
        assert second["id"] == acked["id"]  # stored once
        await _eventually(lambda: _delivered(db_url, acked["id"]))
        await asyncio.sleep(1.0)  # a second run through the bot, if any, would have reached the fake by now
        assert rasa.app["seen"].count(text) == 1, rasa.app["seen"]
        with session_scope(db_url) as session:
            bot_said = session.query(ChatMessage).filter(ChatMessage.conversation_id == widget.conversation_id,
                                                         ChatMessage.sender == "bot").count()
        assert bot_said == 1  # the answer was stored once too
    finally:
        await widget.close()
        await again.close()
        await http.close()
        await gateway_a.close()
        await gateway_b.close()
        await rasa.close()


async def test_a_restarted_gateway_leaves_a_message_another_gateway_is_handling(db_url, tmp_path, redis_prefix):
    """Gateway A restarts (it resumes the customer messages not yet handled) while gateway B is in the middle
    of a slow bot turn for one of them: A waits for the conversation's lock, finds the message handled,
    and does not run it through the bot a second time."""
    from bot.gateway.app import ROUTER

    rasa, gateway_a, gateway_b = await _two_gateways(db_url, tmp_path)
    http = aiohttp.ClientSession()
    widget = Widget(_base(gateway_b), http)
    text = "the charger I got is broken"
    rasa.app["slow"][text] = 2.0
    try:
        await widget.connect(token=sign_customer_token("cust-1002", TOKEN_SECRET))
        await widget.send(text)
        acked = await widget.until(lambda e: e.get("type") == "ack")
        await asyncio.sleep(0.5)  # B holds the conversation's lock, Rasa has not stored the turn yet
        assert await gateway_a.app[ROUTER].resume_undelivered() == 1  # what A's start-up does
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", 30)
        await _eventually(lambda: _delivered(db_url, acked["id"]))
        await gateway_a.app[ROUTER].drain()
        assert rasa.app["seen"].count(text) == 1, rasa.app["seen"]
    finally:
        await widget.close()
        await http.close()
        await gateway_a.close()
        await gateway_b.close()
        await rasa.close()


def _delivered(db_url: str, message_id: int) -> bool:
    from bot.gateway.transcript import ChatMessage

    with session_scope(db_url) as session:
        return bool(session.get(ChatMessage, message_id).delivered_to_bot)


async def test_a_burst_split_across_both_gateways_is_limited_as_one(db_url, tmp_path, redis_prefix):
    """Burst 3: two tabs of one conversation, one on A, one on B, send 2 each; only 3 go through."""
    rasa, gateway_a, gateway_b = await _two_gateways(db_url, tmp_path, rate_burst=3, rate_per_minute=1.0)
    http = aiohttp.ClientSession()
    tab_a, tab_b = Widget(_base(gateway_a), http), Widget(_base(gateway_b), http)
    try:
        assert isinstance(gateway_a.app[LIMITER], RedisRateLimiter)
        await tab_a.connect(token=sign_customer_token("cust-1002", TOKEN_SECRET))
        await tab_b.connect(token=sign_customer_token("cust-1002", TOKEN_SECRET), resume=tab_a.resume)
        assert tab_b.conversation_id == tab_a.conversation_id
        outcomes = []
        for number, tab in enumerate([tab_a, tab_b, tab_a, tab_b]):
            client_id = await tab.send(f"message number {number}", client_id=f"burst-{number}")
            answer = await tab.until(lambda e, c=client_id: e.get("client_id") == c
                                     and e.get("type") in ("ack", "error"), 30)
            outcomes.append(answer["type"] if answer["type"] == "ack" else answer["code"])
        assert outcomes == ["ack", "ack", "ack", "rate_limited"]
        # Each gateway alone would have allowed all four (its own bucket holds 3).
        assert gateway_b.app[LIMITER].allow("widget:" + tab_a.conversation_id)
    finally:
        await tab_a.close()
        await tab_b.close()
        await http.close()
        await gateway_a.close()
        await gateway_b.close()
        await rasa.close()


async def test_the_conversation_lock_holds_across_gateways(redis_prefix):
    settings = FanoutSettings(prefix=redis_prefix, lock_timeout=3.0, lock_wait=10.0)
    hub_a = Hub(RedisFanout(REDIS_URL, settings, gateway_id="a"))
    hub_b = Hub(RedisFanout(REDIS_URL, settings, gateway_id="b"))
    order: List[str] = []

    async def critical(hub: Hub, name: str, hold: float) -> None:
        async with conversation_lock(asyncio.Lock(), hub, "conv-1"):  # separate local locks: two processes
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")

    try:
        first = asyncio.ensure_future(critical(hub_a, "a", 1.5))
        await asyncio.sleep(0.2)
        await critical(hub_b, "b", 0.1)
        await first
        assert order == ["a in", "a out", "b in", "b out"]
        # Held past its timeout (3 s): the holder's watchdog extends it, so B still waits.
        order.clear()
        first = asyncio.ensure_future(critical(hub_a, "a", 4.5))
        await asyncio.sleep(0.2)
        await critical(hub_b, "b", 0.1)
        await first
        assert order == ["a in", "a out", "b in", "b out"]
    finally:
        await hub_a.fanout.redis.close(close_connection_pool=True)
        await hub_b.fanout.redis.close(close_connection_pool=True)


class FakeSocket:
    closed = False

    def __init__(self) -> None:
        self.sent: List[str] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(text)


async def test_with_redis_down_a_gateway_still_serves_its_own_sockets(caplog):
    """Redis down at start: a clear log line; pushes reach this gateway's sockets once; the lock and the
    rate limit fall back to this process instead of failing the customer's message."""
    settings = FanoutSettings(prefix="mendtest-down", connect_timeout=0.3)
    hub = Hub(RedisFanout(DEAD_REDIS, settings, gateway_id="alone"))
    socket = FakeSocket()
    hub.add_widget("conv-9", socket)  # type: ignore[arg-type]
    try:
        with caplog.at_level("ERROR", logger="bot.gateway.fanout"):
            await hub.fanout.start(hub._deliver, hub._presence_state, wait=0.5)
        assert any("does not answer" in r.getMessage() for r in caplog.records)
        await hub.to_widgets("conv-9", {"type": "message", "message": {"id": 1, "text": "still here"}})
        await _eventually(lambda: len(socket.sent) == 1, timeout=5)
        await asyncio.sleep(0.5)
        assert len(socket.sent) == 1 and "still here" in socket.sent[0]
        ran = []
        async with conversation_lock(asyncio.Lock(), hub, "conv-9"):
            ran.append(True)
        assert ran == [True]
        limiter = RedisRateLimiter(hub.fanout.redis, settings.prefix, burst=2, per_minute=1)
        assert [await limiter.allowed("k") for _ in range(3)] == [True, True, False]
    finally:
        await hub.stop()


async def test_a_gateway_stops_even_when_redis_answers_a_publish_as_it_stops(redis_prefix):
    """Regression: on Python 3.10, ``asyncio.wait_for`` returns the awaited call's result instead of
    raising ``CancelledError`` when the call completes in the same loop step as the cancellation. The
    publisher (``wait_for(redis.publish(...))``) then swallowed the cancellation ``stop()`` sent it and
    waited for the next envelope for ever, so the gateway's shutdown (``Hub.stop``, the app's cleanup,
    ``TestServer.close``) never returned: the burst test above hung in its ``finally`` now and then.
    Here Redis's answer to the last publish is made to arrive exactly as the gateway stops."""
    fanout = RedisFanout(REDIS_URL, FanoutSettings(prefix=redis_prefix), gateway_id="stopping")
    publishing, answered = asyncio.Event(), asyncio.Event()

    async def publish(channel: str, message: str) -> int:
        publishing.set()
        await answered.wait()  # Redis's answer is on its way ...
        return 1

    async def deliver(envelope: Dict[str, Any]) -> None:
        return None

    try:
        await fanout.start(deliver, dict, wait=5.0)
        assert fanout.subscribed
        fanout.redis.publish = publish  # type: ignore[assignment]
        fanout.publish({"kind": "all"}, {"type": "queue"})
        await asyncio.wait_for(publishing.wait(), 5)
        answered.set()  # ... and arrives in the very step in which stop() cancels the publisher
        await asyncio.wait_for(fanout.stop(), 10)
        assert not fanout._tasks
    finally:
        for task in fanout._tasks:
            task.cancel()
        await fanout.redis.close(close_connection_pool=True)


async def test_a_conversation_lock_is_released_at_once_and_leaves_no_watchdog(redis_prefix):
    """The lock's key is gone as soon as the critical section ends (the next gateway does not wait for
    its expiry), and no watchdog task is left extending it."""
    settings = FanoutSettings(prefix=redis_prefix, lock_timeout=0.6, lock_wait=5.0)
    fanout = RedisFanout(REDIS_URL, settings, gateway_id="a")
    key = f"{redis_prefix}:lock:conv-2"
    try:
        before = set(asyncio.all_tasks())
        async with conversation_lock(asyncio.Lock(), Hub(fanout), "conv-2"):
            assert await fanout.redis.exists(key)
            await asyncio.sleep(0.9)  # past its timeout: the watchdog extended it
            assert await fanout.redis.exists(key)
        assert not await fanout.redis.exists(key)
        assert not {t for t in asyncio.all_tasks() - before if not t.done()}
    finally:
        await fanout.redis.close(close_connection_pool=True)


async def test_finish_ends_a_task_that_swallows_its_cancellation():
    """``stop()``'s last resort: a task that swallowed one cancellation is cancelled again, not waited for."""
    ran_on = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            ran_on.append(True)  # as wait_for does when the awaited call completes at that moment
        await asyncio.sleep(30)

    task = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(finish([task], timeout=5.0), 10)
    assert task.cancelled() and ran_on == [True]
