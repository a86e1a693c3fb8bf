"""The scaled layout (``python -m bot run --replicas N``) on the real PostgreSQL, Redis and RabbitMQ.

The tests that need the engines run when all three answer (MEND_DATABASE_URL, MEND_REDIS_URL,
MEND_AMQP_URL, defaults on 127.0.0.1) and are skipped, saying which one does not, otherwise. They
use databases, a queue and an exchange of their own (mend_test_*), never the layout's.
The layout with the real Rasa servers and trained model is started once for the module (loading two
models costs minutes on a 2-core machine): 2 replicas, each with its gateway.
Ports: MEND_TEST_PORT_BASE+100.. (Rasa), +110.. (actions), +120.. (gateways), +130.. (closed ports).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.scaled import (ScaledError, ScaledLayout, ScaledSettings, check_postgres, check_rabbitmq, check_redis,
                        endpoints_yaml, ensure_postgres_database, prepare_tracker_store, secret_env)
from bot.settings import PROJECT_ROOT
from tests.tcp_proxy import TcpProxy

BASE = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))
RUN_ID = uuid.uuid4().hex[:8]
TEST_QUEUE, TEST_EXCHANGE = f"mend_test_events_{RUN_ID}", f"mend-test-exchange-{RUN_ID}"


def _settings() -> ScaledSettings:
    from sqlalchemy.engine import make_url

    from bot.scaled import DEFAULT_DATABASE_URL

    database = os.environ.get("MEND_DATABASE_URL") or DEFAULT_DATABASE_URL
    if not database.startswith("postgresql"):
        database = DEFAULT_DATABASE_URL
    url = make_url(database)
    return ScaledSettings(
        database_url=url.set(database="mend_test_case").render_as_string(hide_password=False),
        tracker_database_url=url.set(database="mend_test_tracker").render_as_string(hide_password=False),
        redis_url=os.environ.get("MEND_REDIS_URL") or "redis://127.0.0.1:6379/0",
        amqp_url=os.environ.get("MEND_AMQP_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F",
        events_queue=TEST_QUEUE, events_exchange=TEST_EXCHANGE)


def _engines_down() -> Optional[str]:
    """Why the engine tests cannot run (the one-line message of the first engine that does not answer)."""
    settings = _settings()
    try:
        check_postgres(settings.database_url)
        check_redis(settings.redis_url)
        check_rabbitmq(settings.amqp_url)
    except ScaledError as down:
        return f"needs PostgreSQL, Redis and RabbitMQ: {down.message}"
    return None


ENGINES_DOWN = _engines_down()
needs_engines = pytest.mark.skipif(ENGINES_DOWN is not None, reason=ENGINES_DOWN or "")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- without the engines -----------------------------------------------------------------------------------------

def test_several_rasa_servers_get_the_tracker_cache_off_and_their_own_action_server(tmp_path: Path) -> None:
    layout = ScaledLayout(_settings(), replicas=2, rasa_port=BASE + 100, actions_port=BASE + 110,
                          gateway_port=None, log_dir=tmp_path, endpoints_dir=tmp_path)
    layout.write_endpoints()
    import yaml

    files = [yaml.safe_load(s.endpoints.read_text()) for s in layout.services]  # type: ignore[union-attr]
    assert [f["action_endpoint"]["url"] for f in files] == [f"http://127.0.0.1:{BASE + 110}/webhook",
                                                             f"http://127.0.0.1:{BASE + 111}/webhook"]
    for endpoints in files:
        assert endpoints["tracker_store"]["cached_conversations"] == 0
        assert endpoints["tracker_store"]["dialect"] == "postgresql"
        assert endpoints["lock_store"]["type"] == "redis" and endpoints["event_broker"]["type"] == "pika"
        assert endpoints["event_broker"]["queues"] == [TEST_QUEUE]
    # Every gateway knows every Rasa server; every file is the owner's only.
    assert {s.env["MEND_RASA_URLS"] for s in layout.services} == {
        f"http://127.0.0.1:{BASE + 100},http://127.0.0.1:{BASE + 101}"}
    assert all(s.endpoints.stat().st_mode & 0o077 == 0 for s in layout.services)  # type: ignore[union-attr]


def test_passwords_stay_out_of_the_endpoints_file() -> None:
    settings = ScaledSettings(database_url="postgresql+psycopg2://mend:db-secret@db.internal:5433/mend",
                              redis_url="redis://:redis-secret@cache.internal:6380/2",
                              amqp_url="amqp://rabbit:mq-secret@mq.internal:5673/mend")
    text = endpoints_yaml(settings, 5055)
    assert "secret" not in text
    assert "${MEND_TRACKER_DB_PASSWORD}" in text and "${MEND_REDIS_PASSWORD}" in text
    assert '"amqp://mq.internal:5673/mend?heartbeat=600"' in text and '"mend_tracker"' in text and "db: 2" in text
    assert secret_env(settings) == {"MEND_TRACKER_DB_PASSWORD": "db-secret", "MEND_REDIS_PASSWORD": "redis-secret",
                                    "MEND_AMQP_PASSWORD": "mq-secret"}


def test_an_engine_that_does_not_answer_is_named_in_one_line() -> None:
    port = _closed_port()
    with pytest.raises(ScaledError) as redis_down:
        check_redis(f"redis://127.0.0.1:{port}/0")
    assert redis_down.value.message == (f"mend: Redis at redis://127.0.0.1:{port}/0 does not answer (connection "
                                        f"refused); start it or set MEND_REDIS_URL")
    with pytest.raises(ScaledError) as mq_down:
        check_rabbitmq(f"amqp://guest:guest@127.0.0.1:{port}/%2F")
    assert mq_down.value.message == (f"mend: RabbitMQ at amqp://guest:***@127.0.0.1:{port}/%2F does not answer "
                                     f"(connection refused); start it or set MEND_AMQP_URL")
    with pytest.raises(ScaledError) as pg_down:
        check_postgres(f"postgresql+psycopg2://postgres:pw@127.0.0.1:{port}/mend")
    assert pg_down.value.message == (f"mend: PostgreSQL at postgresql+psycopg2://postgres:***@127.0.0.1:{port}/mend "
                                     f"does not answer (connection refused); start it or set MEND_DATABASE_URL")


def test_run_replicas_with_a_dead_engine_says_which_and_starts_nothing() -> None:
    port = _closed_port()
    env = dict(os.environ, MEND_DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mend",
               MEND_REDIS_URL=f"redis://127.0.0.1:{port}/0", PYTHONPATH=str(PROJECT_ROOT))
    done = subprocess.run([sys.executable, "-m", "bot", "run", "--replicas", "2"], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("mend:")]
    assert lines == [f"mend: PostgreSQL at postgresql+psycopg2://postgres@127.0.0.1:{port}/mend does not answer "
                     f"(connection refused); start it or set MEND_DATABASE_URL"], done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "starting" not in done.stdout


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        # SO_REUSEADDR: a run just before left connections of its gateway 2 in TIME_WAIT on this port.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", BASE + 121))  # where gateway 2 wants to listen
        holder.listen()
        layout = ScaledLayout(_settings(), replicas=2, rasa_port=BASE + 100, actions_port=BASE + 110,
                              gateway_port=BASE + 120, log_dir=tmp_path, endpoints_dir=tmp_path)
        with pytest.raises(ScaledError) as taken:
            layout.check_ports()
    assert taken.value.message.startswith(f"mend: port {BASE + 121} (gateway 2) is already in use on 127.0.0.1")
    clash = ScaledLayout(_settings(), replicas=2, rasa_port=BASE + 100, actions_port=BASE + 101, gateway_port=None)
    with pytest.raises(ScaledError, match=f"port {BASE + 101} is wanted by both"):
        clash.check_ports()


# -- with the engines: Rasa 3.6's own factories accept what we generate ------------------------------------------

@pytest.fixture
def endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[List[Path]]:
    settings = _settings()
    for url in (settings.database_url, settings.tracker_database_url):
        ensure_postgres_database(url)
    prepare_tracker_store(settings.tracker_database_url)
    for name, value in secret_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MEND_ACTION_TOKEN", "test-action-token")
    layout = ScaledLayout(settings, replicas=2, rasa_port=BASE + 100, actions_port=BASE + 110, gateway_port=None,
                          log_dir=tmp_path, endpoints_dir=tmp_path)
    layout.write_endpoints()
    yield [s.endpoints for s in layout.services]  # type: ignore[misc]
    asyncio.run(_drop_queue())


async def _drop_queue() -> None:
    import aio_pika

    connection = await aio_pika.connect(_settings().amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        for queue in (TEST_QUEUE, CHECK_QUEUE):
            await channel.queue_delete(queue)
        await channel.exchange_delete(TEST_EXCHANGE)


@needs_engines
async def test_rasa_accepts_the_generated_lock_store_broker_and_tracker_store(endpoints: List[Path]) -> None:
    from rasa.core.brokers.broker import EventBroker
    from rasa.core.brokers.pika import PikaEventBroker
    from rasa.core.lock_store import LockStore, RedisLockStore
    from rasa.core.tracker_store import TrackerStore
    from rasa.core.utils import AvailableEndpoints
    from rasa.shared.core.domain import Domain

    from bot.tracker_store import CachedSQLTrackerStore

    read = [AvailableEndpoints.read_endpoints(str(path)) for path in endpoints]
    assert [e.action.url for e in read] == [f"http://127.0.0.1:{BASE + 110}/webhook",
                                            f"http://127.0.0.1:{BASE + 111}/webhook"]
    assert read[0].action.token == "test-action-token"

    lock_store = LockStore.create(read[0].lock_store)
    assert isinstance(lock_store, RedisLockStore)
    conversation = f"lock-{RUN_ID}"
    # A gateway holds its own lock of the conversation while it asks Rasa about it (bot.gateway.fanout):
    # Rasa's lock of the same conversation is another key (it once was the same key, and Rasa failed
    # every customer message with a LockError).
    import redis

    from bot.gateway.fanout import FanoutSettings

    client = redis.Redis.from_url(_settings().redis_url)
    gateway_lock = client.lock(f"{FanoutSettings.from_env().prefix}:lock:{conversation}", timeout=30)
    assert gateway_lock.acquire(blocking=False)
    try:
        ticket = lock_store.issue_ticket(conversation)
        other = LockStore.create(read[1].lock_store)  # another Rasa server sees the same lock
        assert other.get_lock(conversation).is_someone_waiting() and other.get_lock(conversation).now_serving == ticket
        lock_store.delete_lock(conversation)
    finally:
        gateway_lock.release()
        client.close()

    broker = await EventBroker.create(read[0].event_broker)
    assert isinstance(broker, PikaEventBroker) and broker.is_ready()
    assert broker.queues == [TEST_QUEUE] and broker.exchange_name == TEST_EXCHANGE

    domain = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    store = TrackerStore.create(read[0].tracker_store, domain=domain, event_broker=broker)
    assert isinstance(store, CachedSQLTrackerStore) and store.cache_size == 0
    assert store.engine.dialect.name == "postgresql"
    await broker.close()


@needs_engines
async def test_two_rasa_tracker_stores_see_each_others_events(endpoints: List[Path]) -> None:
    """Two stores as two Rasa servers have them (each its own cache): with the cache off, each turn
    either one saves is what the other loads next. (A cached store would serve its stale copy.)"""
    from rasa.core.tracker_store import TrackerStore
    from rasa.core.utils import AvailableEndpoints
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import BotUttered, UserUttered

    domain = Domain.load(str(PROJECT_ROOT / "domain.yml"))
    first, second = (TrackerStore.create(AvailableEndpoints.read_endpoints(str(p)).tracker_store, domain=domain)
                     for p in endpoints)
    sender = f"two-stores-{RUN_ID}"
    tracker = await first.get_or_create_tracker(sender)
    tracker.update(UserUttered("my parcel is late", {"name": "order_status"}))
    await first.save(tracker)

    seen = await second.retrieve(sender)
    assert seen is not None and seen.latest_message.text == "my parcel is late"
    seen.update(BotUttered("Sorry about that, let me check."))
    await second.save(seen)

    back = await first.retrieve(sender)  # the first server's next turn sees the second's reply
    assert back is not None and [e.text for e in back.events if isinstance(e, BotUttered)] == [
        "Sorry about that, let me check."]


# -- with the engines: the layout itself --------------------------------------------------------------------------

def _post(url: str, body: Dict) -> object:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


CHECK_QUEUE = f"{TEST_QUEUE}_check"


async def _bind_check_queue(settings: ScaledSettings) -> None:
    """A queue of the test's own on Rasa's exchange: it gets a copy of every event (the gateways consume
    the layout's queue for the consoles' activity lists)."""
    import aio_pika

    connection = await aio_pika.connect(settings.amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(settings.events_exchange, type=aio_pika.ExchangeType.FANOUT)
        queue = await channel.declare_queue(CHECK_QUEUE, durable=True)
        await queue.bind(exchange, "")


async def _events_in_queue(settings: ScaledSettings, expected: Dict[str, int], quiet_seconds: float = 3.0,
                           limit_seconds: float = 90.0) -> List[Dict]:
    """Every event in the check queue for these senders (consumed): until each sender has its expected
    number (a broker reconnecting publishes late) and then no more arrive for a while (duplicates)."""
    senders = set(expected)
    import aio_pika

    found: List[Dict] = []
    connection = await aio_pika.connect(settings.amqp_url, timeout=5)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(CHECK_QUEUE, ensure=True)
        deadline, last = time.monotonic() + limit_seconds, time.monotonic()
        def complete() -> bool:
            counts = Counter(e["sender_id"] for e in found)
            return all(counts[sender] >= n for sender, n in expected.items())

        while time.monotonic() < deadline and (not complete() or time.monotonic() - last < quiet_seconds):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                await asyncio.sleep(0.2)
                continue
            last = time.monotonic()
            event = json.loads(message.body)
            if event.get("sender_id") in senders:
                found.append(event)
            await message.ack()
        await channel.queue_delete(CHECK_QUEUE)
    return found


def _broker_log(log_dir: Path) -> str:
    lines = [line for path in sorted(log_dir.glob("rasa-*.log")) for line in path.read_text(errors="replace").splitlines()
             if any(word in line.lower() for word in ("pika", "rabbitmq", "broker", "error"))]
    return "\n".join(lines[-20:])


def _host_port(url: str, default_port: int) -> Tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _via(url: str, port: int) -> str:
    """The same URL, through 127.0.0.1:<port>."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=(credentials + "@" if credentials else "") + f"127.0.0.1:{port}"))


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaledLayout]:
    """The scaled layout, started once for the module: 2 action servers, 2 Rasa servers with the trained
    model, 2 gateways, on the test databases, queue and exchange. Widget conversations from 127.0.0.1 are
    not limited (every test customer comes from there) and the bot may take a minute per turn on a busy
    2-core machine before the gateway gives the conversation to a person."""
    import yaml

    from bot.settings import DEFAULT_FILE
    from bot.setup import MODEL, ensure_database

    if not MODEL.exists():
        pytest.fail("no trained model at models/mend.tar.gz: run `make setup` (or python -m bot train)")
    directory = tmp_path_factory.mktemp("scaled")
    direct = _settings()
    # Redis and RabbitMQ through TCP proxies a test cuts and restores (they die and come back mid-run).
    proxies = {name: TcpProxy(*_host_port(url, port)) for name, url, port in
               (("redis", direct.redis_url, 6379), ("rabbitmq", direct.amqp_url, 5672))}
    settings = dataclasses.replace(direct, redis_url=_via(direct.redis_url, proxies["redis"].port),
                                   amqp_url=_via(direct.amqp_url, proxies["rabbitmq"].port))
    for url in (settings.database_url, settings.tracker_database_url):
        ensure_postgres_database(url)
    prepare_tracker_store(settings.tracker_database_url)
    ensure_database(settings.database_url)
    data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    gateway = data["gateway"]
    gateway["rasa_timeout_seconds"] = 120
    gateway.setdefault("faults", {}).update(bot_slow_seconds=30, bot_timeout_seconds=120)
    abuse = gateway.setdefault("abuse", {})
    abuse["new_conversations_per_hour"] = 100000
    abuse.setdefault("login", {}).update(per_address=1000, global_per_minute=1000)
    settings_file = directory / "settings.yml"
    settings_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    running = ScaledLayout(settings, replicas=2, rasa_port=BASE + 100, actions_port=BASE + 110,
                           gateway_port=BASE + 120, log_dir=directory, endpoints_dir=directory,
                           extra_env={"MEND_SETTINGS_FILE": str(settings_file),
                                      "MEND_CUSTOMER_TOKEN_SECRET": "scaled-customer-secret-0123456789-0123456789",
                                      "MEND_SESSION_SECRET": "scaled-session-secret-0123456789-0123456789"})
    running.check_ports()
    running.proxies = proxies  # type: ignore[attr-defined]
    try:
        running.start(timeout=600)
        yield running
    finally:
        running.stop()
        for proxy in proxies.values():
            proxy.close()
        try:
            asyncio.run(_drop_queue())
        except Exception:
            pass


@needs_engines
def test_two_replicas_share_conversations_and_publish_each_event_once(layout: ScaledLayout) -> None:
    settings = layout.settings
    token = layout.services[0].rasa_token
    senders = [f"scaled-{RUN_ID}-{i}" for i in range(2)]
    asyncio.run(_bind_check_queue(settings))
    for sender, rasa in zip(senders, layout.rasa_urls):  # one message through each Rasa server
        replies = _post(f"{rasa}/webhooks/rest/webhook?token={token}",
                        {"sender": sender, "message": "hello", "metadata": {"customer_id": "cust-1001"}})
        assert isinstance(replies, list) and replies, f"{rasa} answered nothing"
    # Each conversation, read through the *other* server: one record in the shared tracker store.
    stored = {}
    for sender, rasa in zip(senders, reversed(layout.rasa_urls)):
        tracker = _get(f"{rasa}/conversations/{sender}/tracker?include_events=ALL&token={token}")
        stored[sender] = tracker["events"]  # type: ignore[index]
        assert any(e["event"] == "user" and e.get("text") == "hello" for e in stored[sender])
    assert all(_get(f"{url}/healthz") is not None for url in layout.gateway_urls)

    published = asyncio.run(_events_in_queue(settings, {sender: len(stored[sender]) for sender in senders}))
    for sender in senders:
        mine = [(e["event"], e["timestamp"]) for e in published if e["sender_id"] == sender]
        assert mine, f"no events of {sender} in the queue; Rasa's broker log: {_broker_log(layout.log_dir)}"
        assert [k for k, n in Counter(mine).items() if n > 1] == [], "an event was published twice"
        assert sorted(mine, key=lambda k: k[1]) == sorted(((e["event"], e["timestamp"]) for e in stored[sender]),
                                                          key=lambda k: k[1])


# -- a customer on gateway 1, an agent on gateway 2, the real bot between them -------------------------------------

ANGRY = "WHERE IS MY PARCEL?? This is the THIRD time I ask and nobody answers!! Absolutely useless."
AGENT_REPLY = "I'm so sorry, this is Rae. I'm checking your parcel with the carrier right now."
PASSWORD = "scaled layout agent password"
TURN_SECONDS = 180.0  # a turn of the real bot on a busy 2-core machine, with margin


async def _console_until(agent: Any, what: str, predicate: Callable[[Dict[str, Any]], bool],
                         timeout: float = TURN_SECONDS) -> Dict[str, Any]:
    """The first console event that matches; on timeout, a failure saying what the console did get."""
    seen = len(agent.events)
    try:
        return await agent.until(predicate, timeout)
    except asyncio.TimeoutError:
        got = [{k: e.get(k) for k in ("type", "conversation_id")} | _brief(e) for e in agent.events[seen:]]
        pytest.fail(f"the console never got {what} within {timeout:.0f} s; it got: {got}")


def _brief(event: Dict[str, Any]) -> Dict[str, Any]:
    if event.get("type") == "message":
        message = event.get("message") or {}
        return {"sender": message.get("sender"), "text": (message.get("text") or "")[:60],
                "frustration": (message.get("frustration") or {}).get("level")}
    if event.get("type") == "state":
        return {"level": ((event.get("summary") or {}).get("frustration") or {}).get("level"),
                "status": (event.get("summary") or {}).get("status")}
    if event.get("type") == "suggestions":
        return {"texts": [s.get("text", "")[:40] for s in event.get("suggestions") or []]}
    return {}


@needs_engines
async def test_customer_on_gateway_1_and_agent_on_gateway_2_with_the_real_bot(layout: ScaledLayout) -> None:
    """Issue 12: the agent on gateway 2 sees the customer of gateway 1 write, how upset they are (Rasa's
    tracker slots) and the suggested replies, live; takes over and replies; the customer gets the reply."""
    import aiohttp

    from bot.casedb.engine import session_scope
    from bot.gateway.accounts import create_account
    from bot.gateway.client import Staff, Widget

    customer_gateway, agent_gateway = layout.gateway_urls
    username = f"rae-{RUN_ID}"
    with session_scope(layout.settings.database_url) as session:
        create_account(session, username, PASSWORD, "agent", "Rae")
    http = aiohttp.ClientSession()
    widget, agent = Widget(customer_gateway, http), Staff(agent_gateway)
    try:
        assert await agent.login(username, PASSWORD) == 302
        await agent.open_console()
        welcome = await widget.connect()  # a guest visitor of the shop
        assert welcome["type"] == "welcome" and welcome["status"] == "bot", welcome
        conversation_id = widget.conversation_id
        await agent.watch(conversation_id)
        await asyncio.sleep(1.0)  # gateway 1 learns through Redis that a console on gateway 2 follows it

        def this(kind: str) -> Callable[[Dict[str, Any]], bool]:
            return lambda e: e.get("type") == kind and e.get("conversation_id") == conversation_id

        # The customer writes on gateway 1 (stored and acknowledged there) ...
        await widget.send(ANGRY)
        ack = await widget.until(lambda e: e.get("type") == "ack", 60)
        # ... the agent on gateway 2 reads it, then its rating once Rasa has read it.
        rated = await _console_until(agent, "the customer's message with its rating", lambda e: this("message")(e)
                                     and e["message"]["id"] == ack["id"] and e["message"].get("frustration"))
        assert rated["message"]["sender"] == "customer" and rated["message"]["text"] == ANGRY
        assert rated["message"]["frustration"]["level"] == "angry", rated["message"]["frustration"]
        assert rated["message"]["frustration"]["cues"], rated["message"]["frustration"]  # and why, in words
        # The conversation's level as the console shows it (queue card, chart): Rasa's tracker slots.
        state = await _console_until(agent, "the conversation's frustration", lambda e: this("state")(e)
                                     and e["summary"]["frustration"]["level"] != "calm")
        assert state["summary"]["frustration"]["level"] == "angry", state["summary"]
        suggested = await _console_until(agent, "suggested replies", lambda e: this("suggestions")(e)
                                         and bool(e["suggestions"]))
        assert any((s.get("text") or "").strip() for s in suggested["suggestions"]), suggested
        # The bot answered the customer on gateway 1 meanwhile.
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", TURN_SECONDS)
        # What the bot did, live from Rasa's events in RabbitMQ (whichever gateway consumed them): how the
        # message was read, and the actions the policies chose.
        def lines() -> List[Dict[str, Any]]:
            return [i for e in agent.events if this("activity")(e) for i in e["items"]]

        for what, wanted in (("how the message was read", lambda i: i["kind"] == "reading"
                              and "frustration angry" in i["text"]),
                             ("an action and the policy that chose it", lambda i: i["kind"] == "action" and i["why"])):
            if not any(wanted(i) for i in lines()):
                await _console_until(agent, f"the bot's activity from the event broker: {what}",
                                     lambda e, wanted=wanted: this("activity")(e) and any(wanted(i) for i in e["items"]))
        status, detail = await agent.get(f"/api/conversations/{conversation_id}")
        assert status == 200 and detail["activity_live"] is True
        assert {i["key"] for i in lines()} <= {i["key"] for i in detail["activity"]}  # the same lines as the tracker's

        # Rae takes over on gateway 2: the customer on gateway 1 sees a person join.
        status, taken = await agent.post(f"/api/conversations/{conversation_id}/take")
        assert status == 200, taken
        joined = await widget.until(lambda e: e.get("type") == "status" and e.get("status") == "agent", 60)
        assert joined["agent"]["name"] == "Rae"

        # Rae replies on gateway 2; the customer on gateway 1 gets the reply, from her.
        status, sent = await agent.post(f"/api/conversations/{conversation_id}/send", {"text": AGENT_REPLY})
        assert status == 200, sent
        reply = await widget.until(lambda e: e.get("type") == "message" and e["message"]["id"] == sent["message"]["id"],
                                   60)
        assert reply["message"]["sender"] == "agent" and reply["message"]["text"] == AGENT_REPLY
        assert reply["message"]["agent_name"] == "Rae"
        assert "frustration" not in reply["message"]  # the NLU's reading never reaches the customer
        await widget.settle(1.0)
        assert len([m for m in widget.messages() if m["id"] == reply["message"]["id"]]) == 1  # once, not per gateway
        assert all("frustration" not in m for m in widget.messages())
    finally:
        await widget.close()
        await agent.close()
        await http.close()


@needs_engines
async def test_redis_or_rabbitmq_dying_mid_run_loses_no_customer_message(layout: ScaledLayout) -> None:
    """RabbitMQ dies: Rasa cannot publish its events, yet the customer is answered as usual. Redis dies:
    Rasa cannot take its conversation lock, so the customer is told a person will reply and the
    conversation waits for one. Either way the message is stored once and nothing is lost."""
    import aiohttp

    from bot.casedb.engine import session_scope
    from bot.casedb.models import ChatMessage
    from bot.gateway.client import Widget

    proxies = layout.proxies  # type: ignore[attr-defined]
    http = aiohttp.ClientSession()
    widget = Widget(layout.gateway_urls[0], http)
    texts = ["my parcel never arrived and nobody tells me anything", "it is order A1001"]

    async def answer_to(text: str) -> Dict[str, Any]:
        await widget.send(text)
        ack = await widget.until(lambda e: e.get("type") == "ack" and e.get("id"), 60)
        return await widget.until(lambda e: e.get("type") == "message" and e["message"]["id"] > ack["id"]
                                  and e["message"]["sender"] in ("bot", "system"), TURN_SECONDS)

    try:
        await widget.connect()
        proxies["rabbitmq"].cut()
        try:
            answered = await answer_to(texts[0])
        finally:
            proxies["rabbitmq"].restore()
        assert answered["message"]["sender"] == "bot" and answered["message"]["text"].strip()
        # The rest of that turn's replies (the bot may send two): the next answer must be to the next message.
        await widget.settle(2.0)

        proxies["redis"].cut()
        try:
            answered = await answer_to(texts[1])
        finally:
            proxies["redis"].restore()
        assert answered["message"]["sender"] == "system" and "person" in answered["message"]["text"].lower(), \
            [(e.get("type"), (e.get("message") or {}).get("id"), (e.get("message") or {}).get("sender"),
              (e.get("message") or {}).get("text", "")[:50], e.get("id")) for e in widget.received]
        await widget.settle(1.0)
        assert any(e.get("type") == "status" and e.get("status") == "waiting" for e in widget.received)

        with session_scope(layout.settings.database_url) as session:
            stored = [m.text for m in session.query(ChatMessage).filter(
                ChatMessage.conversation_id == widget.conversation_id, ChatMessage.sender == "customer")]
        assert sorted(stored) == sorted(texts)  # each once: nothing lost, nothing doubled
    finally:
        await widget.close()
        await http.close()
