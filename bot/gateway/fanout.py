"""Several gateway processes, one set of live sockets: Redis pub/sub fan-out, shared presence, a
per-conversation lock held across gateways, and rate limits counted in Redis.

Only used when ``GatewayConfig.redis_url`` (MEND_REDIS_URL) is set; a single gateway without it keeps
everything in memory (hub.py, limits.py) exactly as before.

Fan-out. ``Hub.to_widgets`` / ``Hub.to_consoles`` publish one JSON envelope on one channel::

    {"v": 1, "origin": "<gateway id>", "target": {...}, "payload": {...}}

with ``target`` one of ``{"kind": "widgets", "conversation_id": X}`` (the customer's sockets),
``{"kind": "consoles", "conversation_id": X, "holder": U|null}`` (consoles watching X, or logged in as
U: the agent holding X, read from the database by the publishing gateway as it published),
``{"kind": "agent", "agent": U}``, ``{"kind": "all"}``; and two for the gateways themselves:
``{"kind": "presence"}`` (some gateway's consoles changed) and ``{"kind": "revoked", "session": D}`` (a staff
session ended: each gateway closes its console sockets of the session whose id has digest D,
bot/gateway/staff_sockets.py). No gateway keeps who holds a conversation:
the database is the record, and the envelope carries what it said.
Every gateway, the publishing one included, delivers an envelope to its own sockets when it arrives
through its subscription, so each socket gets it exactly once and in the order it was published.

Outages. Messages are stored in the database before anything is published, so Redis going away loses
no customer message. While this gateway's subscription is down it delivers what it publishes to its own
sockets directly (single-gateway behaviour) and still tries to publish for the others; pushes between
gateways are missed meanwhile and the consoles catch up on reload. The subscriber reconnects with
backoff; there is nothing to reload then (who holds a conversation is read from the database per push).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, Optional, Set, Tuple

from bot.gateway.limits import RateLimiter

logger = logging.getLogger(__name__)

Envelope = Dict[str, Any]


def _env_float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        logger.warning("%s is not a number; using %s", name, default)
        return default
    return value if value > 0 else default


@dataclass
class FanoutSettings:
    """How long presence and locks live; environment overrides (MEND_REDIS_*) with safe defaults."""

    prefix: str = "mend"  # every key and the channel start with it (several deployments on one Redis)
    presence_ttl: float = 30.0  # a gateway that stops refreshing its agents is forgotten after this
    lock_timeout: float = 60.0  # a conversation lock expires after this unless its holder extends it
    lock_wait: float = 120.0  # how long to wait for another gateway's lock before going ahead anyway
    stale_seconds: float = 10.0  # a live push older than this is dropped rather than shown late
    connect_timeout: float = 2.0

    def __post_init__(self) -> None:
        from bot.gateway.config import ConfigError
        from bot.scaled import LOCK_KEY_PREFIX

        if self.prefix == LOCK_KEY_PREFIX:  # the gateways' conversation locks would sit on Rasa's lock keys
            raise ConfigError(f"mend: MEND_REDIS_PREFIX {self.prefix!r} is the prefix of Rasa's lock store keys "
                              f"in the same Redis; choose another")

    @classmethod
    def from_env(cls) -> "FanoutSettings":
        return cls(prefix=(os.environ.get("MEND_REDIS_PREFIX") or "mend").strip() or "mend",
                   presence_ttl=_env_float("MEND_REDIS_PRESENCE_TTL", 30.0),
                   lock_timeout=_env_float("MEND_REDIS_LOCK_TIMEOUT", 60.0),
                   lock_wait=_env_float("MEND_REDIS_LOCK_WAIT", 120.0),
                   stale_seconds=_env_float("MEND_REDIS_STALE_SECONDS", 10.0),
                   connect_timeout=_env_float("MEND_REDIS_CONNECT_TIMEOUT", 2.0))


def _redis_errors() -> Tuple[type, ...]:
    from redis.exceptions import RedisError
    return (RedisError, OSError, asyncio.TimeoutError)


async def within(awaitable: Awaitable[Any], timeout: float) -> Any:
    """``asyncio.wait_for`` without its lost cancellations.

    On Python 3.10, ``wait_for`` returns the awaited call's result instead of raising ``CancelledError``
    when the call completes in the same loop step as the cancellation of the waiting task. A background
    loop built on it (the publisher, the presence refresh) then runs on after ``stop()`` cancelled it, and
    ``stop()`` waits for it for ever. ``asyncio.wait`` never swallows the cancellation of its caller.
    Raises ``asyncio.TimeoutError`` after ``timeout`` seconds, the call then being cancelled.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_consume)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_consume)
        await asyncio.wait({task}, timeout=1.0)  # let it clean up (a Redis command disconnects)
        raise asyncio.TimeoutError()
    return task.result()


def _consume(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" at garbage collection


async def finish(tasks: Iterable["asyncio.Future[Any]"], timeout: float = 5.0, what: str = "a background task") -> None:
    """Cancel ``tasks`` and wait until they are done; a task that swallowed its cancellation (an awaited call
    completing at the same moment) is cancelled again, so this does not wait for ever. Gives up after
    ``timeout`` seconds, saying so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            logger.error("%s did not stop within %.0fs of being cancelled; left behind", what, timeout)
            for task in pending:
                task.add_done_callback(_consume)
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.5, remaining))
    for task in tasks:
        _consume(task)


def redacted(url: str) -> str:
    """The Redis URL for log lines, without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return url


class RedisFanout:
    """The Redis side of one gateway: publisher, subscriber, presence, locks. The Hub drives it."""

    def __init__(self, url: str, settings: Optional[FanoutSettings] = None, gateway_id: Optional[str] = None) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.settings = settings or FanoutSettings.from_env()
        self.gateway_id = gateway_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        # A pooled connection Redis dropped (it restarted, a proxy cut it) fails its next command: that command
        # is tried once more on a fresh connection, so one stale connection is not taken for Redis being down.
        self.redis = aioredis.from_url(url, socket_connect_timeout=self.settings.connect_timeout,
                                       health_check_interval=15, retry=Retry(NoBackoff(), 1),
                                       retry_on_error=[RedisConnectionError])
        prefix = self.settings.prefix
        self.channel = f"{prefix}:fanout"
        self.gateways_key = f"{prefix}:gateways"  # sorted set: gateway id -> last refresh (unix time)
        self.subscribed = False  # our own subscription is live: deliveries come back through it
        self.remote_agents: Set[str] = set()  # agents with a console open on another gateway
        self.remote_watching: Set[str] = set()  # conversations a console on another gateway follows
        self._queue: "asyncio.Queue[Tuple[float, Envelope]]" = asyncio.Queue()
        self._tasks: list = []
        self._deliver: Optional[Callable[[Envelope], Awaitable[None]]] = None
        self._local_state: Optional[Callable[[], Dict[str, Any]]] = None
        self._presence_changed = asyncio.Event()
        self._local_dirty = False
        self._subscribed_once = asyncio.Event()
        self._stopping = False  # stop() began: no more reconnections
        self._closed = False  # the queue is drained: the background loops end
        self._publishing = False  # an envelope taken from the queue is being published

    def gateway_key(self, gateway_id: str) -> str:
        return f"{self.settings.prefix}:gateway:{gateway_id}"

    # -- life cycle -----------------------------------------------------------------------------
    async def start(self, deliver: Callable[[Envelope], Awaitable[None]], local_state: Callable[[], Dict[str, Any]],
                    wait: float = 5.0) -> None:
        """Subscribe (waiting up to ``wait`` seconds, so this gateway hears its own first pushes), then
        keep publishing, listening and refreshing presence in the background. Redis being down is
        logged clearly and retried; the gateway serves its own sockets meanwhile."""
        self._deliver, self._local_state = deliver, local_state
        self._tasks = [asyncio.ensure_future(self._subscriber()), asyncio.ensure_future(self._publisher()),
                       asyncio.ensure_future(self._presence())]
        try:
            await within(self._subscribed_once.wait(), wait)
        except asyncio.TimeoutError:
            logger.error("Redis at %s does not answer: this gateway serves its own sockets only (no live pushes "
                         "to or from other gateways) until it is back; retrying in the background",
                         redacted(self.url))

    async def stop(self) -> None:
        """Publish what is queued (for up to 2 s), then end the background tasks and leave. Bounded: a
        task that does not end is reported and left behind rather than waited for."""
        self._stopping = True
        await self._drain_queue(timeout=2.0)
        self._closed = True
        await finish(self._tasks, timeout=5.0, what="a Redis fan-out task")
        self._tasks = []
        try:
            await within(self._forget_self(), 2.0)
        except Exception as error:  # already gone: the entry expires by itself
            logger.debug("could not remove this gateway's presence: %r", error)
        try:
            await within(self.redis.close(close_connection_pool=True), 2.0)
        except Exception:
            pass

    async def _drain_queue(self, timeout: float) -> None:
        """Until the queue is empty and its last envelope published (or Redis is gone)."""
        deadline = time.monotonic() + timeout
        while (not self._queue.empty() or self._publishing) and time.monotonic() < deadline and self.subscribed:
            await asyncio.sleep(0.02)

    async def _forget_self(self) -> None:
        await self.redis.zrem(self.gateways_key, self.gateway_id)
        await self.redis.delete(self.gateway_key(self.gateway_id))

    # -- publishing -----------------------------------------------------------------------------
    def publish(self, target: Dict[str, Any], payload: Optional[Dict[str, Any]] = None) -> None:
        """Queue an envelope; one publisher task sends them in order (each socket gets a conversation's
        pushes in the order they were published)."""
        envelope = {"v": 1, "origin": self.gateway_id, "target": target, "payload": payload}
        self._queue.put_nowait((time.monotonic(), envelope))

    async def _publisher(self) -> None:
        errors = _redis_errors()
        while not self._closed:
            queued_at, envelope = await self._queue.get()
            self._publishing = True
            try:
                await self._publish_one(queued_at, envelope, errors)
            finally:
                self._publishing = False

    async def _publish_one(self, queued_at: float, envelope: Envelope, errors: Tuple[type, ...]) -> None:
        local = not self.subscribed  # nobody would bring it back to our own sockets
        if local and self._deliver is not None and envelope["target"].get("kind") != "presence":
            await self._safe_deliver(envelope)
        if time.monotonic() - queued_at > self.settings.stale_seconds:
            logger.warning("dropped a live push older than %.0fs (Redis was slow or down)",
                           self.settings.stale_seconds)
            return
        try:
            await within(self.redis.publish(self.channel, json.dumps(envelope)),
                         self.settings.connect_timeout + 1)
        except errors as error:
            if not local and self._deliver is not None:
                await self._safe_deliver(envelope)  # at least this gateway's sockets get it
            logger.warning("could not publish a live push to Redis (%r): other gateways miss it; "
                           "their consoles catch up on reload", error)

    async def _safe_deliver(self, envelope: Envelope) -> None:
        assert self._deliver is not None
        try:
            await self._deliver(envelope)
        except Exception:
            logger.exception("delivering a live push to this gateway's sockets failed")

    # -- subscribing ----------------------------------------------------------------------------
    async def _subscriber(self) -> None:
        backoff = 0.2
        errors = _redis_errors()
        was_down = False
        while not self._stopping:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await within(pubsub.subscribe(self.channel), self.settings.connect_timeout + 1)
                self.subscribed = True
                if was_down:
                    logger.warning("Redis at %s is back: live pushes between gateways resume",
                                   redacted(self.url))
                was_down = False
                backoff = 0.2
                self._local_dirty = True  # announce ourselves (again) to the others
                self._presence_changed.set()
                self._subscribed_once.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        envelope = json.loads(message["data"])
                    except (ValueError, TypeError):
                        logger.warning("ignored a malformed envelope on %s", self.channel)
                        continue
                    if not isinstance(envelope, dict) or not isinstance(envelope.get("target"), dict):
                        logger.warning("ignored a malformed envelope on %s", self.channel)
                        continue
                    await self._received(envelope)
                raise ConnectionError("the subscription ended")
            except asyncio.CancelledError:
                raise
            except errors + (ConnectionError,) as error:
                self.subscribed = False
                if not was_down:
                    logger.error("lost Redis at %s (%r): live pushes between gateways are missed until it is "
                                 "back (messages are stored; consoles catch up on reload); reconnecting",
                                 redacted(self.url), error)
                was_down = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.subscribed = False
                try:
                    await within(pubsub.close(), 2.0)
                except Exception:
                    pass

    async def _received(self, envelope: Envelope) -> None:
        kind = envelope["target"].get("kind")
        if kind == "presence":
            if envelope.get("origin") != self.gateway_id:
                self._presence_changed.set()  # re-read everyone's presence now, not at the next tick
            return
        await self._safe_deliver(envelope)

    # -- presence -------------------------------------------------------------------------------
    async def _presence(self) -> None:
        """Every gateway keeps one key with its online agents and followed conversations, expiring
        unless refreshed; everyone's snapshot is re-read on each tick and whenever some gateway
        announces a change."""
        errors = _redis_errors()
        interval = self.settings.presence_ttl / 3
        while not self._closed:
            try:
                await within(self._presence_changed.wait(), interval)
            except asyncio.TimeoutError:
                pass
            self._presence_changed.clear()
            announce, self._local_dirty = self._local_dirty, False
            try:
                await within(self._refresh_presence(), self.settings.connect_timeout + 1)
            except errors as error:
                self._local_dirty = self._local_dirty or announce
                logger.debug("could not refresh presence: %r", error)
                continue
            if announce:  # written first, then announced: the others read the new state
                self.publish({"kind": "presence"})

    async def _refresh_presence(self) -> None:
        ttl = self.settings.presence_ttl
        now = time.time()
        state = self._local_state() if self._local_state is not None else {}
        mine = json.dumps({"agents": sorted(state.get("agents", ())), "watching": sorted(state.get("watching", ()))})
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.gateway_key(self.gateway_id), mine, ex=max(1, int(ttl)))
            pipe.zadd(self.gateways_key, {self.gateway_id: now})
            pipe.zremrangebyscore(self.gateways_key, "-inf", now - ttl)
            pipe.zrangebyscore(self.gateways_key, now - ttl, "+inf")
            results = await pipe.execute()
        others = [g.decode() if isinstance(g, bytes) else g for g in results[-1]]
        others = [g for g in others if g != self.gateway_id]
        agents: Set[str] = set()
        watching: Set[str] = set()
        if others:
            for raw in await self.redis.mget([self.gateway_key(g) for g in others]):
                try:
                    entry = json.loads(raw) if raw else {}
                except ValueError:
                    continue
                agents.update(a for a in entry.get("agents", ()) if isinstance(a, str))
                watching.update(c for c in entry.get("watching", ()) if isinstance(c, str))
        self.remote_agents, self.remote_watching = agents, watching

    def presence_changed(self) -> None:
        """This gateway's consoles changed: store them now and tell the others to re-read."""
        self._local_dirty = True
        self._presence_changed.set()

    async def refresh_now(self) -> None:
        """Presence written and read at once (tests, and after start)."""
        await self._refresh_presence()

    # -- the per-conversation lock ------------------------------------------------------------
    @asynccontextmanager
    async def lock(self, conversation_id: str) -> AsyncIterator[None]:
        """One gateway at a time in a conversation's critical section.

        The lock expires after ``lock_timeout`` unless its holder is alive (a watchdog extends it), so a
        crashed gateway blocks a conversation for at most that long. When Redis cannot be reached, or
        another gateway holds the lock past ``lock_wait``, the work goes ahead under the local lock only
        (logged): a customer message is never left unprocessed for the sake of the lock.

        Leaving the section always ends the watchdog (it stops extending even if its cancellation were
        lost) and releases the lock within ``connect_timeout`` + 1 s; failing that, the lock expires.
        """
        from redis.exceptions import LockError

        errors = _redis_errors()
        settings = self.settings
        lock = self.redis.lock(f"{settings.prefix}:lock:{conversation_id}", timeout=settings.lock_timeout,
                               blocking_timeout=settings.lock_wait, thread_local=False)
        acquired = False
        try:
            acquired = bool(await within(lock.acquire(), settings.lock_wait + settings.connect_timeout + 1))
            if not acquired:
                logger.warning("another gateway held the lock of %s for over %.0fs: going ahead without it",
                               conversation_id, settings.lock_wait)
        except errors as error:
            logger.warning("no Redis lock for %s (%r): going ahead under this gateway's lock only",
                           conversation_id, error)
        released = asyncio.Event()
        watchdog = asyncio.ensure_future(self._keep(lock, released, conversation_id)) if acquired else None
        try:
            yield
        finally:
            released.set()
            if watchdog is not None:
                await finish([watchdog], timeout=2.0, what=f"the lock watchdog of {conversation_id}")
            if acquired:
                try:
                    await within(lock.release(), settings.connect_timeout + 1)
                except (LockError,) + errors as error:
                    logger.warning("the lock of %s was lost before its release (%r); it expires within %.0fs",
                                   conversation_id, error, settings.lock_timeout)

    async def _keep(self, lock: Any, released: asyncio.Event, conversation_id: str) -> None:
        """Extend the lock while its section runs; stop once it is left or the lock is lost."""
        from redis.exceptions import LockNotOwnedError

        errors = _redis_errors()
        while not released.is_set():
            await asyncio.sleep(self.settings.lock_timeout / 3)
            if released.is_set():
                return
            try:
                await within(lock.extend(self.settings.lock_timeout, replace_ttl=True),
                             self.settings.connect_timeout + 1)
            except LockNotOwnedError as error:  # expired and maybe taken by another gateway: nothing to keep
                logger.warning("lost the lock of %s while holding it: %r", conversation_id, error)
                return
            except errors as error:
                logger.warning("could not extend the lock of %s: %r", conversation_id, error)
            except Exception:  # noqa: BLE001 - keep trying: the section still runs
                logger.exception("could not extend the lock of %s", conversation_id)


@asynccontextmanager
async def conversation_lock(local: asyncio.Lock, hub: Any, conversation_id: str) -> AsyncIterator[None]:
    """The conversation's in-process lock, and with Redis configured the lock across gateways too."""
    async with local:
        fanout = getattr(hub, "fanout", None)
        if fanout is None:
            yield
        else:
            async with fanout.lock(conversation_id):
                yield


# -- rate limits ---------------------------------------------------------------------------------
TOKEN_BUCKET = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return allowed
"""


class RedisRateLimiter(RateLimiter):
    """The same token bucket as ``RateLimiter``, kept in Redis so all gateways count one burst.

    ``await allowed(key)`` asks Redis (one Lua script: atomic, Redis's clock); when Redis cannot answer
    it falls back to this process's own bucket (``allow``), so limits hold per gateway meanwhile.
    """

    def __init__(self, redis: Any, prefix: str, burst: int, per_minute: float, max_keys: int = 100_000) -> None:
        super().__init__(burst, per_minute, max_keys)
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(TOKEN_BUCKET)
        self._warned_at = 0.0

    async def allowed(self, key: str) -> bool:
        try:
            result = await within(self._script(keys=[f"{self.prefix}:rate:{key}"], args=[self.burst, self.rate]), 2.0)
            return bool(int(result))
        except _redis_errors() as error:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                logger.warning("rate limits counted per gateway: Redis does not answer (%r)", error)
            return self.allow(key)


# -- wiring --------------------------------------------------------------------------------------
def from_config(config: Any, settings: Optional[FanoutSettings] = None) -> Optional[RedisFanout]:
    """The fan-out when ``redis_url`` is configured, else None (one gateway, all in memory)."""
    url = getattr(config, "redis_url", None)
    return RedisFanout(url, settings) if url else None


def rate_limiter(config: Any, fanout: Optional[RedisFanout]) -> RateLimiter:
    if fanout is None:
        return RateLimiter(config.rate_burst, config.rate_per_minute)
    return RedisRateLimiter(fanout.redis, fanout.settings.prefix, config.rate_burst, config.rate_per_minute)

