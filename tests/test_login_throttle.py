"""The staff login throttle with several gateways: failed sign-ins are counted in the Redis they share
(so guesses spread over gateways add up, and the database gets none of that traffic), in the case
database without Redis, and in the database, for that attempt, whenever Redis does not answer (down,
dying mid-run, or hung): a login is never blocked by Redis nor let through unthrottled.

The Redis tests use the real Redis (MEND_TEST_REDIS_URL, default redis://127.0.0.1:6379/15) and are
SKIPPED, saying why, when it does not answer; each uses its own key prefix and removes its keys.
Rasa is tests/fake_rasa.py: login needs no trained model.
"""
from __future__ import annotations

import asyncio
import html
import os
import re
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, List, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from aiohttp.test_utils import TestServer

from bot.casedb.engine import session_scope
from bot.casedb.models import ThrottleEvent
from bot.gateway.accounts import create_account
from bot.gateway.app import LOGIN_THROTTLE
from bot.gateway.login_throttle import DatabaseLoginThrottle, RedisLoginThrottle
from bot.gateway.throttle import keyed_hash
from tests.fake_rasa import fake_rasa_app
from tests.tcp_proxy import TcpProxy
from tests.one_gateway import started_gateway
from tests.redis_engine import REDIS_URL

TOKEN_SECRET = "login-throttle-customer-secret-long-enough-12"
SESSION_SECRET = "login-throttle-session-secret-long-enough-345"
PASSWORD = "login throttle password"
# Nothing listens here (this run's own port range): "Redis is down".
DEAD_REDIS = f"redis://127.0.0.1:{int(os.environ.get('MEND_TEST_PORT_BASE', '6600')) + 197}/15"
USERNAME_REFUSED = "Too many failed sign-ins for this username"
LOGGER = "bot.gateway.login_throttle"


@asynccontextmanager
async def _gateways(db_url: str, tmp_path: Any, redis_urls: List[Optional[str]],
                    **overrides: Any) -> AsyncIterator[List[TestServer]]:
    """One gateway per Redis URL (None: no Redis), one fake Rasa, one case database."""
    rasa = TestServer(fake_rasa_app(), host="127.0.0.1")
    await rasa.start_server()
    servers: List[TestServer] = []
    try:
        for number, redis_url in enumerate(redis_urls):
            servers.append(await started_gateway(rasa, db_url, tmp_path, str(number), redis_url=redis_url,
                                                 customer_token_secret=TOKEN_SECRET, session_secret=SESSION_SECRET,
                                                 **overrides))
        yield servers
    finally:
        for server in servers:
            await server.close()
        await rasa.close()


def _url(server: TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def _login(server: TestServer, username: str, password: str) -> Tuple[int, str]:
    """POST the login form from a fresh browser: (status, the error shown)."""
    async with aiohttp.ClientSession() as http:
        async with http.post(_url(server) + "/login", data={"username": username, "password": password},
                             allow_redirects=False) as response:
            page = await response.text()
    found = re.search(r'data-testid="error">([^<]*)<', page)
    return response.status, html.unescape(found.group(1)) if found else ""


async def _timed_login(server: TestServer, username: str, password: str) -> Tuple[int, str, float]:
    started = time.monotonic()
    status, error = await _login(server, username, password)
    return status, error, time.monotonic() - started


def _login_rows(db_url: str) -> List[Tuple[str, str]]:
    with session_scope(db_url) as session:
        rows = session.query(ThrottleEvent.kind, ThrottleEvent.key).filter(ThrottleEvent.kind.like("login%")).all()
        return [(kind, key) for kind, key in rows]


def _accounts(db_url: str, *names: str) -> None:
    with session_scope(db_url) as session:
        for name in names:
            create_account(session, name, PASSWORD, "agent", name.title())


@asynccontextmanager
async def _redis() -> AsyncIterator[Any]:
    import redis.asyncio as aioredis
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        await client.close(close_connection_pool=True)


def _user_key(prefix: str, username: str) -> str:
    return f"{prefix}:login:login_user:{keyed_hash(SESSION_SECRET, 'login', username)}"


# -- in Redis ----------------------------------------------------------------------------------
async def test_failed_sign_ins_on_two_gateways_add_up_in_redis(db_url, tmp_path, redis_prefix):
    _accounts(db_url, "lena", "noor")
    async with _gateways(db_url, tmp_path, [REDIS_URL, REDIS_URL]) as (gateway_a, gateway_b):
        assert isinstance(gateway_a.app[LOGIN_THROTTLE], RedisLoginThrottle)
        # Five wrong passwords spread over both gateways; each gateway alone has seen fewer than five.
        statuses = [(await _login(gateway, "lena", f"guess {n}"))[0]
                    for n, gateway in enumerate([gateway_a, gateway_b, gateway_a, gateway_b, gateway_a])]
        assert statuses == [401] * 5
        for gateway in (gateway_b, gateway_a):  # the sixth is refused on either gateway...
            status, error = await _login(gateway, "lena", "guess 6")
            assert status == 429 and USERNAME_REFUSED in error and "Wait 5 minutes" in error
        for gateway in (gateway_a, gateway_b):  # ... and so is the right password, for now
            status, error = await _login(gateway, " LENA ", PASSWORD)
            assert status == 429 and USERNAME_REFUSED in error
        assert (await _login(gateway_b, "noor", PASSWORD))[0] == 302  # another account is not locked out

        assert _login_rows(db_url) == []  # counted in Redis: not one login row in the database
        async with _redis() as client:
            keys = sorted([key async for key in client.scan_iter(match=f"{redis_prefix}:login:*")])
            assert len(keys) == 3, keys  # per username, per address, overall
            for key in keys:  # keyed hashes only: no username, no address
                assert "lena" not in key.lower() and "127.0.0.1" not in key
                assert re.fullmatch(rf"{redis_prefix}:login:login_(user|address):[0-9a-f]{{32}}|"
                                    rf"{redis_prefix}:login:login_any:\*", key), key
                assert 0 < await client.ttl(key) <= 300  # forgotten one window after the last failure
            assert await client.zcard(_user_key(redis_prefix, "lena")) == 5  # refused attempts are not counted


async def test_guessing_usernames_over_both_gateways_hits_the_address_limit(db_url, tmp_path, redis_prefix):
    _accounts(db_url, "lena")
    async with _gateways(db_url, tmp_path, [REDIS_URL, REDIS_URL], login_per_address=4) as (gateway_a, gateway_b):
        for n in range(4):
            assert (await _login([gateway_a, gateway_b][n % 2], f"user{n}", "guess"))[0] == 401, n
        status, error = await _login(gateway_b, "user-next", "guess")
        assert status == 429 and "from your network" in error
        assert (await _login(gateway_a, "lena", PASSWORD))[0] == 429  # the whole address waits
        assert _login_rows(db_url) == []


async def test_the_redis_window_slides(db_url, tmp_path, redis_prefix):
    _accounts(db_url, "lena")
    async with _gateways(db_url, tmp_path, [REDIS_URL, REDIS_URL], login_window_minutes=0.05,
                         login_per_username=2) as (gateway_a, gateway_b):  # 2 failures in 3 seconds
        assert [(await _login(g, "lena", "guess"))[0] for g in (gateway_a, gateway_b)] == [401, 401]
        assert (await _login(gateway_a, "lena", PASSWORD))[0] == 429
        await asyncio.sleep(3.3)  # both failures left the window
        assert (await _login(gateway_b, "lena", "guess"))[0] == 401
        assert (await _login(gateway_a, "lena", PASSWORD))[0] == 302
        async with _redis() as client:
            assert await client.zcard(_user_key(redis_prefix, "lena")) == 1  # older ones trimmed
            assert 0 < await client.ttl(_user_key(redis_prefix, "lena")) <= 3


# -- in the database -----------------------------------------------------------------------------
async def test_without_redis_failed_sign_ins_are_counted_in_the_database(db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("MEND_REDIS_URL", raising=False)
    _accounts(db_url, "lena")
    async with _gateways(db_url, tmp_path, [None]) as (gateway,):
        assert isinstance(gateway.app[LOGIN_THROTTLE], DatabaseLoginThrottle)
        assert [(await _login(gateway, "lena", f"guess {n}"))[0] for n in range(5)] == [401] * 5
        status, error = await _login(gateway, "lena", PASSWORD)
        assert status == 429 and USERNAME_REFUSED in error
        kinds = [kind for kind, _ in _login_rows(db_url)]
        assert sorted(set(kinds)) == ["login_address", "login_any", "login_user"] and len(kinds) == 15
        assert all("lena" not in key and "127.0.0.1" not in key for _, key in _login_rows(db_url))


# -- Redis not answering -------------------------------------------------------------------------
async def test_with_redis_down_each_attempt_is_counted_in_the_database(db_url, tmp_path, monkeypatch, caplog):
    """Redis configured but down from the start: logins answer at once, the throttle still holds (in the
    database), and the log says so."""
    monkeypatch.setenv("MEND_REDIS_CONNECT_TIMEOUT", "0.5")
    _accounts(db_url, "lena")
    async with _gateways(db_url, tmp_path, [DEAD_REDIS]) as (gateway,):
        assert isinstance(gateway.app[LOGIN_THROTTLE], RedisLoginThrottle)
        with caplog.at_level("WARNING", logger=LOGGER):
            attempts = [await _timed_login(gateway, "lena", f"guess {n}") for n in range(5)]
            assert [status for status, _, _ in attempts] == [401] * 5
            assert max(seconds for _, _, seconds in attempts) < 3.0
            status, error, seconds = await _timed_login(gateway, "lena", PASSWORD)
            assert status == 429 and USERNAME_REFUSED in error and seconds < 3.0
        assert len([kind for kind, _ in _login_rows(db_url) if kind == "login_user"]) == 5
        assert any("Redis does not answer" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_redis_dying_mid_run_moves_the_count_to_the_database_and_back(db_url, tmp_path, redis_prefix, caplog):
    """Two gateways reach Redis through a proxy that is cut and restored: during the outage failures are
    counted in the database (and refused there at the limit); once Redis is back the failures counted in
    each store add up."""
    _accounts(db_url, "lena", "noor")
    real = urlsplit(REDIS_URL)
    proxy = TcpProxy(real.hostname or "127.0.0.1", real.port or 6379)
    proxied = real._replace(netloc=real.netloc.rsplit("@", 1)[0] + "@" if "@" in real.netloc else "")
    proxied = urlunsplit(proxied._replace(netloc=proxied.netloc + f"127.0.0.1:{proxy.port}"))
    try:
        async with _gateways(db_url, tmp_path, [proxied, proxied]) as (gateway_a, gateway_b):
            for gateway in (gateway_a, gateway_b):
                gateway.app[LOGIN_THROTTLE].retry_after = 0.3  # ask Redis again soon after a failure
            statuses = [(await _login(g, "lena", "guess"))[0] for g in (gateway_a, gateway_b, gateway_a)]
            assert statuses == [401] * 3 and _login_rows(db_url) == []

            proxy.cut()
            with caplog.at_level("WARNING", logger=LOGGER):
                outage = [await _timed_login(g, "lena", "guess") for g in (gateway_b, gateway_a)]
                assert [status for status, _, _ in outage] == [401, 401]
                assert max(seconds for _, _, seconds in outage) < 5.0
                assert len([k for k, _ in _login_rows(db_url) if k == "login_user"]) == 2
                assert any("Redis does not answer" in r.getMessage() for r in caplog.records)
                # The throttle holds during the outage: noor's sixth attempt is refused (database count).
                noor = [(await _login(g, "noor", "guess"))[0] for g in (gateway_a, gateway_b) * 3]
                assert noor == [401] * 5 + [429]

                proxy.restore()
                await asyncio.sleep(0.6)
                # 3 failures in Redis + 2 in the database: lena has reached her 5, on both gateways.
                for gateway in (gateway_a, gateway_b):
                    status, error = await _login(gateway, "lena", PASSWORD)
                    assert status == 429 and USERNAME_REFUSED in error
                assert any("Redis answers again" in r.getMessage() for r in caplog.records)
            async with _redis() as client:
                assert await client.zcard(_user_key(redis_prefix, "lena")) == 3  # what Redis itself holds
            # A new failure is counted in Redis again, not in the database.
            rows = len(_login_rows(db_url))
            assert (await _login(gateway_b, "someone", "guess"))[0] == 401
            assert len(_login_rows(db_url)) == rows
    finally:
        proxy.close()


async def test_a_hung_redis_delays_a_login_by_at_most_its_timeout(db_url, tmp_path, monkeypatch, caplog):
    """A Redis that accepts connections but never answers: the first login waits for the timeout
    (connect_timeout + 1 s), is counted in the database, and the next ones do not wait at all."""
    monkeypatch.setenv("MEND_REDIS_CONNECT_TIMEOUT", "0.3")
    connections: List[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(65536):
            pass

    hung = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = hung.sockets[0].getsockname()[1]
    _accounts(db_url, "lena")
    try:
        async with _gateways(db_url, tmp_path, [f"redis://127.0.0.1:{port}/15"]) as (gateway,):
            with caplog.at_level("WARNING", logger=LOGGER):
                status, _, first = await _timed_login(gateway, "lena", "guess")
                assert status == 401 and first < 3.0
                later = [await _timed_login(gateway, "lena", "guess") for _ in range(4)]
                assert [s for s, _, _ in later] == [401] * 4 and max(t for _, _, t in later) < 1.0
                status, error = await _login(gateway, "lena", PASSWORD)
                assert status == 429 and USERNAME_REFUSED in error
            assert len([k for k, _ in _login_rows(db_url) if k == "login_user"]) == 5
            assert any("Redis does not answer" in r.getMessage() for r in caplog.records)
    finally:
        hung.close()
        for writer in connections:
            writer.transport.abort()
