"""The real Redis the multi-gateway tests use (MEND_TEST_REDIS_URL, default database 15 of the local one),
and the fixture giving each test a key prefix of its own (conftest.py ``redis_prefix``)."""
from __future__ import annotations

import asyncio
import os
import secrets
from typing import AsyncIterator

import pytest

REDIS_URL = os.environ.get("MEND_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def redis_answers() -> str:
    """'' when Redis answers, else why not (one line)."""
    import redis.asyncio as aioredis
    client = aioredis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await asyncio.wait_for(client.ping(), 2)
        return ""
    except Exception as error:  # noqa: BLE001 - any failure means "not here"
        return f"{type(error).__name__}: {error}"
    finally:
        await client.close(close_connection_pool=True)


async def prefix_of_this_test(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A key prefix (and channel) of this test alone, as MEND_REDIS_PREFIX; its keys are deleted afterwards.
    Skips the test, saying why, when Redis does not answer."""
    problem = await redis_answers()
    if problem:
        pytest.skip(f"Redis at {REDIS_URL} does not answer ({problem}): the multi-gateway tests need a real "
                    f"Redis (set MEND_TEST_REDIS_URL; .ci/run provides one)")
    prefix = f"mendtest-{secrets.token_hex(6)}"
    monkeypatch.setenv("MEND_REDIS_PREFIX", prefix)
    monkeypatch.setenv("MEND_REDIS_PRESENCE_TTL", "6")
    yield prefix
    import redis.asyncio as aioredis
    client = aioredis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.close(close_connection_pool=True)
