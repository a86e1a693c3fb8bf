"""Per-session rate limits (token buckets) and message-size checks, with texts the sender can act on."""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Optional


class RateLimiter:
    """``burst`` messages at once, refilled at ``per_minute``; one bucket per key, oldest keys forgotten."""

    def __init__(self, burst: int, per_minute: float, max_keys: int = 100_000) -> None:
        self.burst = max(1, burst)
        self.rate = max(per_minute, 0.001) / 60.0
        self.max_keys = max_keys
        self._buckets: "OrderedDict[str, tuple]" = OrderedDict()

    def allow(self, key: str, now: Optional[float] = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return allowed

    async def allowed(self, key: str) -> bool:
        """What the gateway awaits: this process's bucket here; the Redis-backed limiter
        (fanout.RedisRateLimiter) answers the same call for all gateways at once."""
        return self.allow(key)


def clean_text(value: object) -> Optional[str]:
    """Message text as stored: a string without NUL bytes (PostgreSQL refuses them), stripped."""
    if not isinstance(value, str):
        return None
    return value.replace("\x00", "").strip()


def too_long_message(limit: int) -> str:
    return f"That message is too long (the limit is {limit} characters). Please shorten it or split it up."


RATE_LIMITED = "You're sending messages very quickly. Please wait a few seconds and try again."
