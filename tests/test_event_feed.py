"""The console's "what the bot did" list: Rasa's events described for a person (bot.gateway.activity), and
fed live from RabbitMQ, where every Rasa server publishes each event it stores (bot.gateway.event_feed).

The broker tests run against the real RabbitMQ (MEND_TEST_AMQP_URL, default the one on 127.0.0.1) and are
SKIPPED, saying why, when it does not answer; each test uses its own exchange and queue and deletes them.
Rasa is tests/fake_rasa.py where a gateway is needed; events are published to the exchange exactly as
Rasa's pika broker publishes them (persistent JSON messages on a fanout exchange).
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, List, Tuple
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.casedb.engine import session_scope
from bot.gateway.accounts import create_account
from bot.gateway.activity import MAX_TEXT, describe, describe_all
from bot.gateway.client import Staff, Widget
from bot.gateway.event_feed import FEED, BrokerFeed
from tests.one_gateway import base_url, gateway_with_fake_rasa
from tests.tcp_proxy import TcpProxy

AMQP_URL = os.environ.get("MEND_TEST_AMQP_URL") or os.environ.get("MEND_AMQP_URL") or \
    "amqp://guest:guest@127.0.0.1:5672/%2F"
PASSWORD = "event feed password"


def _turn(sender: str, at: float) -> List[Dict[str, Any]]:
    """One turn of an angry customer as Rasa 3.6 serialises its events (the tracker and the broker alike)."""
    return [
        {"sender_id": sender, "event": "action", "timestamp": at, "name": "action_listen", "policy": None,
         "confidence": None},
        {"sender_id": sender, "event": "user", "timestamp": at + 0.01, "text": "WHERE IS MY PARCEL?? third time!!",
         "parse_data": {"intent": {"name": "complain_delivery", "confidence": 0.93},
                        "issue_type": {"name": "delivery", "confidence": 0.87},
                        "frustration": {"level": "angry", "score": 0.91, "cues": ["caps", "third time"]}}},
        {"sender_id": sender, "event": "slot", "timestamp": at + 0.02, "name": "frustration_level", "value": "angry"},
        {"sender_id": sender, "event": "slot", "timestamp": at + 0.02, "name": "frustration_score", "value": 0.91},
        {"sender_id": sender, "event": "slot", "timestamp": at + 0.02, "name": "claimed_email",
         "value": "someone@example.com"},
        {"sender_id": sender, "event": "action", "timestamp": at + 0.03, "name": "action_handle_complaint",
         "policy": "policy_2_RulePolicy", "confidence": 1.0},
        {"sender_id": sender, "event": "slot", "timestamp": at + 0.04, "name": "case_id", "value": "CASE-1042"},
        {"sender_id": sender, "event": "bot", "timestamp": at + 0.05, "text": "I'm so sorry.", "data": {}},
        {"sender_id": sender, "event": "action", "timestamp": at + 0.06, "name": "utter_apologize",
         "policy": "policy_1_TEDPolicy", "confidence": 0.8712},
    ]


# -- describing events (no engines) ------------------------------------------------------------------------------

def test_a_turn_reads_as_what_the_bot_did_and_why() -> None:
    lines = describe_all(_turn("c1", 1_700_000_000.0))
    assert [line["text"] for line in lines] == [
        "Read the customer's message: Delivery issue (87%), frustration angry",
        "Frustration: angry",
        "Looked up the customer's case and order",
        "Case: CASE-1042",
        "Replied: Apologize",
    ]
    assert [line["why"] for line in lines if line["kind"] == "action"] == ["RulePolicy (100%)", "TEDPolicy (87%)"]
    # Rasa's bookkeeping, the bot's words (the transcript has them), scores and personal data are left out.
    assert not any("listen" in line["text"].lower() or "example.com" in line["text"] for line in lines)
    assert len({line["key"] for line in lines}) == len(lines)


@pytest.mark.parametrize("event", [
    None, "user", 42, [], {}, {"event": "action"}, {"event": "action", "timestamp": "yesterday", "name": "x"},
    {"event": "action", "timestamp": math.nan, "name": "utter_greet"},
    {"event": "action", "timestamp": math.inf, "name": "utter_greet"},
    {"event": "action", "timestamp": True, "name": "utter_greet"},
    {"event": ["user"], "timestamp": 1.0}, {"event": "slot", "timestamp": 1.0, "name": {"x": 1}, "value": 1},
    {"event": "user", "timestamp": 1.0, "parse_data": "not a dict"},
    {"event": "user", "timestamp": 1.0, "parse_data": {"issue_type": ["delivery"], "frustration": 3}},
])
def test_malformed_events_are_left_out_without_an_error(event: Any) -> None:
    assert describe(event) is None


def test_hostile_values_are_cut_and_kept_as_text() -> None:
    huge = "<script>alert(1)</script>" + "x" * 100_000
    line = describe({"event": "slot", "timestamp": 5.0, "name": "order_id", "value": huge})
    assert line is not None and len(line["text"]) <= MAX_TEXT + len("Order: ")
    assert line["text"].startswith("Order: <script>")  # the console renders text nodes, never markup
    listed = describe({"event": "slot", "timestamp": 5.0, "name": "offered_options",
                       "value": ["refund", None, 3, {"a": 1}] * 100})
    assert listed is not None and len(listed["text"]) <= MAX_TEXT + len("Options offered: ")
    odd = describe({"event": "action", "timestamp": 5.0, "name": "utter_" + "y" * 5000, "policy": 7,
                    "confidence": "high"})
    assert odd is not None and odd["why"] == "" and len(odd["text"]) < 200


def test_a_long_conversation_sends_its_newest_lines() -> None:
    events = [e for turn in range(200) for e in _turn("long", 1_700_000_000.0 + turn)]
    lines = describe_all(events, limit=50)
    assert len(lines) == 50 and lines[-1]["at"] == max(line["at"] for line in describe_all(events, limit=10_000))


# -- the feed, against the real RabbitMQ ---------------------------------------------------------------------------

async def _rabbitmq_problem(url: str = AMQP_URL) -> str:
    import aio_pika

    try:
        connection = await aio_pika.connect(url, timeout=3)
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        return f"{type(error).__name__}: {error}"
    await connection.close()
    return ""


@pytest.fixture
async def broker() -> AsyncIterator[Tuple[str, str]]:
    """An exchange and queue of this test alone: (queue, exchange), deleted afterwards."""
    problem = await _rabbitmq_problem()
    if problem:
        pytest.skip(f"RabbitMQ at {AMQP_URL} does not answer ({problem}): the event-feed tests need a real "
                    f"RabbitMQ (set MEND_TEST_AMQP_URL; .ci/run provides one)")
    name = secrets.token_hex(5)
    queue, exchange = f"mend_test_feed_{name}", f"mend-test-feed-{name}"
    yield queue, exchange
    import aio_pika

    connection = await aio_pika.connect(AMQP_URL, timeout=5)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)


async def _publish(exchange_name: str, bodies: List[bytes], url: str = AMQP_URL) -> None:
    """As Rasa's pika broker does: a fanout exchange, persistent messages (and the queue bound to it)."""
    import aio_pika

    connection = await aio_pika.connect(url, timeout=5)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(exchange_name, type=aio_pika.ExchangeType.FANOUT)
        for body in bodies:
            await exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "")


def _bodies(events: List[Dict[str, Any]]) -> List[bytes]:
    return [json.dumps(e).encode() for e in events]


class Pushes:
    def __init__(self) -> None:
        self.seen: List[Tuple[str, List[Dict[str, Any]]]] = []

    async def __call__(self, conversation_id: str, items: List[Dict[str, Any]]) -> None:
        self.seen.append((conversation_id, items))

    def lines(self, conversation_id: str) -> List[str]:
        return [item["text"] for cid, items in self.seen if cid == conversation_id for item in items]


async def _eventually(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


async def test_events_rasa_publishes_reach_the_consoles_as_lines_and_bad_messages_are_dropped(broker) -> None:
    queue, exchange = broker
    pushes = Pushes()
    feed = BrokerFeed(AMQP_URL, queue, exchange, pushes)
    await feed.start()
    try:
        await asyncio.wait_for(feed.connected.wait(), 15)
        now = time.time()
        hostile = [b"", b"not json", b"[1, 2]", b'{"event": "user"}', b"\xff\xfe", b"{" * 2_000_000,
                   json.dumps({"sender_id": "x" * 5000, "event": "user", "timestamp": now}).encode()]
        await _publish(exchange, hostile + _bodies(_turn("alice", now)) + _bodies(_turn("bob", now + 1)))
        await _eventually(lambda: len(pushes.lines("alice")) == 5 and len(pushes.lines("bob")) == 5)
        assert pushes.lines("alice")[0].startswith("Read the customer's message: Delivery issue")
        assert feed.counts["malformed"] == len(hostile)
        # A turn's lines go out together, in Rasa's order, each once.
        alice = [items for cid, items in pushes.seen if cid == "alice"]
        assert len(alice) == 1 and [i["at"] for i in alice[0]] == sorted(i["at"] for i in alice[0])
        # Still consuming after the garbage.
        await _publish(exchange, _bodies(_turn("carol", time.time())))
        await _eventually(lambda: len(pushes.lines("carol")) == 5)
    finally:
        await feed.stop()


async def test_what_was_published_while_no_gateway_ran_is_pushed_when_one_starts_unless_stale(broker) -> None:
    queue, exchange = broker
    first = BrokerFeed(AMQP_URL, queue, exchange, Pushes())
    await first.start()  # declares and binds the durable queue, as the first gateway (or Rasa) does
    await asyncio.wait_for(first.connected.wait(), 15)
    await first.stop()
    now = time.time()
    await _publish(exchange, _bodies(_turn("waited", now) + _turn("old", now - 3600)))
    pushes = Pushes()
    feed = BrokerFeed(AMQP_URL, queue, exchange, pushes, max_age_seconds=600)
    await feed.start()
    try:
        await _eventually(lambda: len(pushes.lines("waited")) == 5 and feed.counts["stale"] == 5)
        assert pushes.lines("old") == []
    finally:
        await feed.stop()


async def test_two_gateways_share_the_queue_and_each_event_is_pushed_once(broker) -> None:
    queue, exchange = broker
    a, b = Pushes(), Pushes()
    feeds = [BrokerFeed(AMQP_URL, queue, exchange, a, prefetch=1), BrokerFeed(AMQP_URL, queue, exchange, b, prefetch=1)]
    for feed in feeds:
        await feed.start()
    try:
        for feed in feeds:
            await asyncio.wait_for(feed.connected.wait(), 15)
        now = time.time()
        senders = [f"shared-{i}" for i in range(20)]
        await _publish(exchange, [body for i, s in enumerate(senders) for body in _bodies(_turn(s, now + i))])
        await _eventually(lambda: sum(len(x.lines(s)) for x in (a, b) for s in senders) == 5 * len(senders))
        await asyncio.sleep(0.5)
        keys = [item["key"] + cid for x in (a, b) for cid, items in x.seen for item in items]
        assert len(keys) == len(set(keys)) == 5 * len(senders)
        assert a.seen and b.seen, "one gateway took every event"
    finally:
        for feed in feeds:
            await feed.stop()


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=(credentials + "@" if credentials else "") + f"127.0.0.1:{port}"))


async def test_rabbitmq_down_at_start_or_dying_later_and_coming_back(broker) -> None:
    queue, exchange = broker
    parts = urlsplit(AMQP_URL)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    proxy.cut()  # down when the gateway starts
    pushes = Pushes()
    feed = BrokerFeed(_via(AMQP_URL, proxy.port), queue, exchange, pushes)
    await feed.start()
    try:
        await asyncio.sleep(1.5)
        assert not feed.connected.is_set()
        proxy.restore()
        await asyncio.wait_for(feed.connected.wait(), 20)
        await _publish(exchange, _bodies(_turn("before", time.time())))
        await _eventually(lambda: len(pushes.lines("before")) == 5)
        proxy.cut()  # RabbitMQ dies mid-run
        await _eventually(lambda: not feed.connected.is_set())
        await _publish(exchange, _bodies(_turn("during", time.time())))  # waits in the durable queue
        proxy.restore()
        await asyncio.wait_for(feed.connected.wait(), 30)
        await _eventually(lambda: len(pushes.lines("during")) == 5, timeout=20)
    finally:
        await feed.stop()
        proxy.close()


# -- through the gateway: the console's activity list ---------------------------------------------------------------

@asynccontextmanager
async def _clients(gateway: TestServer) -> AsyncIterator[Tuple[Staff, Widget]]:
    """An agent and a customer's widget on the gateway, closed afterwards."""
    async with aiohttp.ClientSession() as http:
        agent, widget = Staff(base_url(gateway)), Widget(base_url(gateway), http)
        try:
            yield agent, widget
        finally:
            await agent.close()
            await widget.close()


async def test_a_console_following_a_conversation_gets_its_activity_live_from_the_broker(db_url, tmp_path,
                                                                                          broker) -> None:
    queue, exchange = broker
    with session_scope(db_url) as session:
        create_account(session, "bo", PASSWORD, "agent", "Bo")
    async with gateway_with_fake_rasa(db_url, tmp_path, amqp_url=AMQP_URL, events_queue=queue,
                                      events_exchange=exchange) as gateway, _clients(gateway) as (agent, widget):
        await asyncio.wait_for(gateway.app[FEED].connected.wait(), 15)
        await widget.connect()
        await widget.send("my parcel is late")
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot")
        conversation = widget.conversation_id
        assert await agent.login("bo", PASSWORD) == 302
        await agent.open_console()
        status, detail = await agent.get(f"/api/conversations/{conversation}")
        assert status == 200 and detail["activity_live"] is True
        # From the tracker (the record): the fake Rasa's turn, read as a delivery issue.
        assert [line["kind"] for line in detail["activity"]] == ["reading"]
        await agent.watch(conversation)
        await asyncio.sleep(0.5)
        await _publish(exchange, _bodies(_turn(conversation, time.time())))
        pushed = await agent.until(lambda e: e.get("type") == "activity" and e.get("conversation_id") == conversation)
        assert "Looked up the customer's case and order" in [item["text"] for item in pushed["items"]]
        # A conversation nobody follows is not pushed to this console; the one it follows still is.
        await _publish(exchange, _bodies(_turn("someone-else", time.time()) + _turn(conversation, time.time() + 1)))
        later = await agent.until(lambda e: e.get("type") == "activity" and e.get("conversation_id") == conversation)
        assert later["items"][0]["at"] > pushed["items"][-1]["at"]
        assert [e for e in agent.events if e.get("type") == "activity"
                and e.get("conversation_id") not in (conversation,)] == []


async def test_without_a_broker_the_console_reads_the_activity_from_the_tracker(db_url, tmp_path) -> None:
    with session_scope(db_url) as session:
        create_account(session, "bo", PASSWORD, "agent", "Bo")
    async with gateway_with_fake_rasa(db_url, tmp_path, amqp_url=None) as gateway, _clients(gateway) as (agent, widget):
        await widget.connect()
        await widget.send("WHERE IS MY PARCEL?? third time!!")
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot")
        conversation = widget.conversation_id
        status, _ = await agent.get(f"/api/conversations/{conversation}/activity")
        assert status == 401  # staff only
        assert await agent.login("bo", PASSWORD) == 302
        status, found = await agent.get(f"/api/conversations/{conversation}/activity")
        assert status == 200 and found["activity_live"] is False
        assert found["activity"][0]["text"].startswith("Read the customer's message: Delivery issue")
        assert "frustration angry" in found["activity"][0]["text"]
        status, _ = await agent.get("/api/conversations/no-such-conversation/activity")
        assert status == 404
        status, _ = await agent.get("/api/conversations/" + "x" * 3000 + "/activity")
        assert status == 404
