"""Where failed staff sign-ins are counted: in Redis when the gateways share one (several gateway
processes, ``MEND_REDIS_URL``), else in the case database (one process, ``make run``).

Both stores count the same thing (``throttle.login_windows``): failed attempts per normalised username
(5 in 5 minutes), per client address (20 in 5 minutes) and overall (60 a minute), in sliding windows,
under keyed hashes only, and refuse with the same texts. The login handler only sees ``LoginThrottle``.

In Redis every (kind, key) is one sorted set ``<prefix>:login:<kind>:<keyed hash>`` (prefix
``MEND_REDIS_PREFIX``, default "mend"): one member per failed attempt scored with its time, trimmed
to the window and expiring one window after the last failure. Counting and recording are each one
MULTI/EXEC transaction. Attack traffic thus stays off the database, and every gateway sees the others'
failures at once.

When Redis does not answer (down, or no reply within ``connect_timeout`` + 1 s) a login is neither
blocked nor let through unthrottled: that attempt is checked and counted in the database, as a single
gateway does, and a warning is logged (at most once a minute). Redis is then left alone for
``retry_after`` seconds, so a hung Redis does not slow every login down. Limits keep holding across
gateways meanwhile (they share the database). Failures Redis held before the outage are out of reach
during it (an attacker may get at most one more limit's worth per outage); once Redis is back, the
database's count is added to Redis's for one window after this gateway last fell back, so the
failures counted during the outage still count.
"""
from __future__ import annotations

import logging
import math
import secrets
import time
from typing import TYPE_CHECKING, Any, List, Optional

from bot.gateway import throttle
from bot.gateway.fanout import _redis_errors, within

if TYPE_CHECKING:
    from bot.casedb.runner import Database
    from bot.gateway.fanout import RedisFanout

logger = logging.getLogger(__name__)


class LoginThrottle:
    """Refuses sign-ins after too many failures; ``failed`` counts one failed attempt."""

    limits: throttle.LoginLimits

    async def refusal(self, user_key: str, address_key: str) -> Optional[str]:
        """Why this attempt is refused before its password is checked, or None."""
        raise NotImplementedError

    async def failed(self, user_key: str, address_key: str) -> None:
        raise NotImplementedError


class DatabaseLoginThrottle(LoginThrottle):
    """Failed attempts are rows of ``throttle_events`` (one gateway, or Redis not answering)."""

    def __init__(self, db: "Database", limits: throttle.LoginLimits) -> None:
        self.db = db
        self.limits = limits

    async def refusal(self, user_key: str, address_key: str) -> Optional[str]:
        return await self.db.run(throttle.login_refusal, user_key, address_key, self.limits)

    async def failed(self, user_key: str, address_key: str) -> None:
        await self.db.run(throttle.login_failed, user_key, address_key)

    async def counts(self, user_key: str, address_key: str) -> List[int]:
        return await self.db.run(throttle.login_counts, user_key, address_key, self.limits)


class RedisLoginThrottle(LoginThrottle):
    """Failed attempts in Redis sorted sets shared by all gateways; the database when Redis fails."""

    def __init__(self, redis: Any, prefix: str, limits: throttle.LoginLimits, fallback: DatabaseLoginThrottle,
                 timeout: float = 3.0, retry_after: float = 5.0) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limits = limits
        self.fallback = fallback
        self.timeout = timeout  # the longest a login waits for Redis
        self.retry_after = retry_after  # after a failure, Redis is not asked again before this
        self._down_until = 0.0  # monotonic: Redis is skipped until then
        self._database_counts_until = 0.0  # monotonic: failures counted in the database still matter
        self._warned_at = -math.inf
        self._down = False

    def key(self, kind: str, key: str) -> str:
        return f"{self.prefix}:login:{kind}:{key}"

    async def refusal(self, user_key: str, address_key: str) -> Optional[str]:
        if self._skipping():
            return await self.fallback.refusal(user_key, address_key)
        try:
            counts = await within(self._count(user_key, address_key), self.timeout)
        except _redis_errors() as error:
            self._fell_back(error)
            return await self.fallback.refusal(user_key, address_key)
        self._answered()
        if time.monotonic() < self._database_counts_until:  # failures counted there during an outage
            counts = [a + b for a, b in zip(counts, await self.fallback.counts(user_key, address_key))]
        return throttle.refusal_for_counts(counts, user_key, address_key, self.limits)

    async def failed(self, user_key: str, address_key: str) -> None:
        if not self._skipping():
            try:
                await within(self._record(user_key, address_key), self.timeout)
            except _redis_errors() as error:
                self._fell_back(error)
            else:
                self._answered()
                return
        await self.fallback.failed(user_key, address_key)
        self._database_counts_until = time.monotonic() + self._longest_window()  # adds to Redis's once it is back

    async def _count(self, user_key: str, address_key: str) -> List[int]:
        now = time.time()
        windows = throttle.login_windows(user_key, address_key, self.limits)
        async with self.redis.pipeline(transaction=True) as pipe:
            for kind, key, _limit, span in windows:
                pipe.zremrangebyscore(self.key(kind, key), "-inf", f"({now - span.total_seconds()}")
                pipe.zcard(self.key(kind, key))
            results = await pipe.execute()
        return [int(n) for n in results[1::2]]

    async def _record(self, user_key: str, address_key: str) -> None:
        now = time.time()
        member = f"{now:.6f}:{secrets.token_hex(4)}"  # unique: two failures in the same microsecond both count
        async with self.redis.pipeline(transaction=True) as pipe:
            for kind, key, _limit, span in throttle.login_windows(user_key, address_key, self.limits):
                name = self.key(kind, key)
                pipe.zadd(name, {member: now})
                pipe.zremrangebyscore(name, "-inf", f"({now - span.total_seconds()}")
                pipe.expire(name, max(1, math.ceil(span.total_seconds())))
            await pipe.execute()

    def _longest_window(self) -> float:
        return max(span.total_seconds() for *_rest, span in throttle.login_windows("", "", self.limits))

    def _skipping(self) -> bool:
        return time.monotonic() < self._down_until

    def _fell_back(self, error: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + self.retry_after
        self._database_counts_until = now + self._longest_window()
        self._down = True
        if now - self._warned_at >= 60:
            self._warned_at = now
            logger.warning("login throttle: Redis does not answer (%r); failed sign-ins are checked and counted "
                           "in the case database until it is back", error)

    def _answered(self) -> None:
        if self._down:
            self._down = False
            logger.warning("login throttle: Redis answers again; failed sign-ins are counted there again (those "
                           "counted in the database meanwhile are added for one window)")


def limits_from_config(config: Any) -> throttle.LoginLimits:
    return throttle.LoginLimits(config.login_window_minutes, config.login_per_username,
                                config.login_per_address, config.login_global_per_minute)


def from_config(config: Any, db: "Database", fanout: Optional["RedisFanout"]) -> LoginThrottle:
    """In Redis with the fan-out (its client and key prefix), else in the database."""
    database = DatabaseLoginThrottle(db, limits_from_config(config))
    if fanout is None:
        return database
    return RedisLoginThrottle(fanout.redis, fanout.settings.prefix, database.limits, database,
                              timeout=fanout.settings.connect_timeout + 1)
