"""The consoles' live "what the bot did" list, fed by Rasa's event broker (RabbitMQ) in the scaled layout.

Every Rasa server publishes each event it stores once, to a fanout exchange bound to one durable queue
(``mend_events``; bot.scaled writes it into each Rasa server's endpoints). The gateways are that queue's
consumers, competing: each event reaches one gateway, which turns it into a console line
(bot.gateway.activity) and pushes it to the consoles following the conversation on every gateway
(``Hub.to_consoles``, over Redis). The queue is drained while any gateway runs, and what Rasa publishes
while none does waits in it; on the way back, events older than ``event_max_age_seconds`` are dropped, not
pushed (a console reads a conversation's whole list from the tracker when it opens it anyway).

This feed is the live view, not the record: an event is acknowledged once it is handed to the consoles, so
a gateway dying in between loses that push (never the event: the tracker store has it). Two gateways may
push a conversation's lines in a different order than Rasa stored them; each line carries Rasa's timestamp
and a key, and the console orders by the one and shows each key once.

Without ``MEND_AMQP_URL`` (``make run``, one process) there is no broker; the console then re-reads the
list from the tracker when the conversation's state changes (``live`` is false in what it is sent).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from typing import Any, Awaitable, Callable, DefaultDict, Dict, List, Optional

from aiohttp import web

from bot.gateway.activity import describe
from bot.scaled import safe_url

logger = logging.getLogger(__name__)

Push = Callable[[str, List[Dict[str, Any]]], Awaitable[None]]
BATCH_SECONDS = 0.1  # lines of one conversation arriving this close together go out in one push
MAX_BODY = 1_000_000  # a Rasa event is a few kilobytes; anything far larger is not one
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


class BrokerFeed:
    """Consumes Rasa's events from RabbitMQ and pushes their console lines, reconnecting while it runs."""

    def __init__(self, url: str, queue: str, exchange: str, push: Push, max_age_seconds: float = 600.0,
                 prefetch: int = 200) -> None:
        self.url = url
        self.queue = queue
        self.exchange = exchange
        self.push = push
        self.max_age_seconds = max_age_seconds
        self.prefetch = prefetch
        self.connected = asyncio.Event()
        self.counts: Dict[str, int] = defaultdict(int)  # received / pushed / stale / malformed (tests, logs)
        self._task: Optional[asyncio.Task] = None
        self._pending: DefaultDict[str, List[Dict[str, Any]]] = defaultdict(list)
        self._flusher: Optional[asyncio.Task] = None
        self._connection: Any = None
        self._stopping = False

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        self._stopping = True
        if self._connection is not None:
            try:
                await asyncio.wait_for(self._connection.close(), 5)
            except Exception as error:  # noqa: BLE001 - closing a connection that is already gone
                logger.debug("event feed: closing the connection: %r", error)
        for task in (self._task, self._flusher):
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                    pass

    async def _run(self) -> None:
        import aio_pika

        attempt = 0
        while not self._stopping:
            closed = asyncio.Event()
            try:
                connection = await aio_pika.connect(self.url, timeout=5)
            except Exception as error:  # noqa: BLE001 - any failure to connect: wait and try again
                delay = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                log = logger.warning if attempt in (0, 5) else logger.debug
                log("event feed: RabbitMQ at %s does not answer (%s); the consoles' activity lists are not live "
                    "meanwhile; retrying in %.0f s", safe_url(self.url), error or type(error).__name__, delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            self._connection = connection
            connection.close_callbacks.add(lambda *_: closed.set())
            try:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=self.prefetch)
                # Declared exactly as Rasa declares them (pika broker): whoever starts first creates them.
                exchange = await channel.declare_exchange(self.exchange, type=aio_pika.ExchangeType.FANOUT)
                queue = await channel.declare_queue(self.queue, durable=True)
                await queue.bind(exchange, "")
                await queue.consume(self._received)
                if attempt:
                    logger.warning("event feed: connected to RabbitMQ again; the activity lists are live")
                attempt = 0
                self.connected.set()
                await closed.wait()
            except Exception as error:  # noqa: BLE001 - a channel error: start over on a new connection
                logger.warning("event feed: RabbitMQ channel failed: %r", error)
            finally:
                self.connected.clear()
                self._connection = None
                if not connection.is_closed:
                    try:
                        await connection.close()
                    except Exception:  # noqa: BLE001
                        pass
            if not self._stopping:
                logger.warning("event feed: lost RabbitMQ; reconnecting")
                await asyncio.sleep(RETRY_SECONDS[0])
                attempt = 1

    async def _received(self, message: Any) -> None:
        try:
            self.accept(message.body)
        finally:
            await message.ack()  # a line the consoles cannot use must not come back forever

    def accept(self, body: bytes) -> bool:
        """One event from the queue: queued for a push when it makes a console line; False if refused."""
        self.counts["received"] += 1
        try:
            if len(body) > MAX_BODY:
                raise ValueError(f"{len(body)} bytes")
            event = json.loads(body)
            conversation_id = event.get("sender_id") if isinstance(event, dict) else None
            if not isinstance(conversation_id, str) or not conversation_id or len(conversation_id) > 200:
                raise ValueError("no sender_id")
        except (ValueError, UnicodeDecodeError) as error:
            self.counts["malformed"] += 1
            if self.counts["malformed"] in (1, 10, 100) or self.counts["malformed"] % 1000 == 0:
                logger.warning("event feed: dropped %d malformed message(s) from %s (latest: %s)",
                               self.counts["malformed"], self.queue, str(error)[:200])
            return False
        item = describe(event)
        if item is None:
            return True
        if time.time() - item["at"] > self.max_age_seconds:
            self.counts["stale"] += 1
            return True
        self._pending[conversation_id].append(item)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush_soon())
        return True

    async def _flush_soon(self) -> None:
        await asyncio.sleep(BATCH_SECONDS)
        pending, self._pending = self._pending, defaultdict(list)
        for conversation_id, items in pending.items():
            items.sort(key=lambda item: item["at"])
            try:
                await self.push(conversation_id, items)
                self.counts["pushed"] += len(items)
            except Exception:  # noqa: BLE001 - one conversation's push failing must not stop the feed
                logger.exception("event feed: could not push the activity of %s", conversation_id)


FEED = web.AppKey("event_feed", BrokerFeed)


def install(app: web.Application, config: Any, hub: Any) -> None:
    """Start the feed with the gateway when RabbitMQ is configured (MEND_AMQP_URL)."""
    if not config.amqp_url:
        return

    async def push(conversation_id: str, items: List[Dict[str, Any]]) -> None:
        await hub.to_consoles({"type": "activity", "conversation_id": conversation_id, "items": items, "live": True},
                              conversation_id=conversation_id, only_if_followed=True)

    feed = BrokerFeed(config.amqp_url, config.events_queue, config.events_exchange, push,
                      config.event_max_age_seconds, config.event_prefetch)
    app[FEED] = feed

    async def on_startup(app: web.Application) -> None:
        await feed.start()

    async def on_cleanup(app: web.Application) -> None:
        await feed.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.insert(0, on_cleanup)  # before the hub it pushes through stops


def live(app: web.Application) -> bool:
    """Whether consoles get activity lines pushed now (else they re-read them when the state changes)."""
    return FEED in app and app[FEED].connected.is_set()
