"""Staff login under attack: throttles that padding cannot dodge, server-side sessions, local-only redirects.

Real gateway, real HTTP: the ``gateway`` fixture of tests/test_gateway.py (in front of the live bot's database).
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import aiohttp
import pytest
from yarl import URL

from bot.casedb.engine import session_scope
from bot.casedb.models import StaffSession
from bot.gateway.accounts import set_password
from bot.gateway.client import Staff
from tests.test_gateway import PASSWORD, another_gateway, gateway  # noqa: F401  (gateway is a fixture)


async def _login(http: aiohttp.ClientSession, base: str, username: str, password: str,
                 headers: dict | None = None, next_path: str | None = None) -> tuple:
    data = {"username": username, "password": password}
    if next_path is not None:
        data["next"] = next_path
    async with http.post(base + "/login", data=data, headers=headers or {}, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers.get("Location")


def _error_text(page: str) -> str:
    found = re.search(r'data-testid="error">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else ""


async def test_padding_or_respelling_the_username_does_not_dodge_the_throttle(gateway):
    agent = gateway.agent()
    spellings = ["maria", " maria", "maria  ", "MARIA", "\tMaria\u3000", "\uff4d\uff41\uff52\uff49\uff41"]  # last: full-width
    statuses = [(await _login(agent.http, gateway.url, name, f"guess {n}"))[0] for n, name in enumerate(spellings)]
    assert statuses == [401] * 5 + [429], statuses
    status, page, _ = await _login(agent.http, gateway.url, "  Maria ", PASSWORD)  # even the right password, for now
    assert status == 429 and "Too many failed sign-ins for this username" in _error_text(page)
    # Another account from the same address is not locked out by maria's failures.
    assert await agent.login("omar", PASSWORD) == 302


async def test_guessing_many_usernames_from_one_address_is_refused(gateway):
    limit = 6
    async with another_gateway(gateway, login_per_address=limit) as (url, _):
        async with aiohttp.ClientSession() as http:
            for n in range(limit):
                # A forged X-Forwarded-For changes nothing: the gateway trusts no proxy by default.
                status, _, _ = await _login(http, url, f"user{n}", "guess", {"X-Forwarded-For": f"10.9.0.{n}"})
                assert status == 401, n
            status, page, _ = await _login(http, url, "user-next", "guess", {"X-Forwarded-For": "10.9.1.1"})
            assert status == 429 and "from your network" in _error_text(page)
            status, _, _ = await _login(http, url, "omar", PASSWORD)  # the whole address waits
            assert status == 429


async def test_a_global_ceiling_stops_failed_logins_spread_over_many_addresses(gateway):
    ceiling = 8
    async with another_gateway(gateway, trusted_proxies=["127.0.0.1"], login_global_per_minute=ceiling) as (url, _):
        async with aiohttp.ClientSession() as http:
            for n in range(ceiling):  # a botnet: every attempt from another address, for another name
                status, _, _ = await _login(http, url, f"staff{n}", "guess", {"X-Forwarded-For": f"198.51.100.{n}"})
                assert status == 401, n
            status, page, _ = await _login(http, url, "maria", PASSWORD, {"X-Forwarded-For": "203.0.113.77"})
            assert status == 429 and "paused" in _error_text(page)


async def test_logout_revokes_the_session_so_a_copied_cookie_stops_working(gateway):
    agent = gateway.agent()
    assert await agent.login("maria", PASSWORD) == 302
    cookie = next(c for c in agent.http.cookie_jar if c.key == "mend_session")
    thief = Staff(gateway.url)
    thief.http.cookie_jar.update_cookies({"mend_session": cookie.value}, URL(gateway.url))
    try:
        assert (await thief.get("/api/me"))[0] == 200
        await thief.open_console()  # an open console socket on the copied session
        async with agent.http.post(gateway.url + "/logout", allow_redirects=False) as response:
            assert response.status == 302
        assert (await agent.get("/api/me"))[0] == 401
        assert (await thief.get("/api/me"))[0] == 401  # the copy died with the session
        closing = await thief.socket.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await thief.http.ws_connect(gateway.url + "/ws/console", headers={"Origin": gateway.url})
        assert refused.value.status == 401
    finally:
        await thief.close()


async def test_a_logged_out_session_stays_dead_across_gateway_restarts(gateway):
    agent = gateway.agent()
    assert await agent.login("maria", PASSWORD) == 302
    cookie = next(c for c in agent.http.cookie_jar if c.key == "mend_session").value
    async with another_gateway(gateway) as (second, _):  # another process (or the restarted one), same database
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as copy:
            copy.cookie_jar.update_cookies({"mend_session": cookie}, URL(second))
            async with copy.get(second + "/api/me") as response:
                assert response.status == 200  # a live session survives a restart
            async with agent.http.post(gateway.url + "/logout", allow_redirects=False) as response:
                assert response.status == 302
            async with copy.get(second + "/api/me") as response:
                assert response.status == 401
    async with another_gateway(gateway) as (third, _):  # and after the next restart too
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as copy:
            copy.cookie_jar.update_cookies({"mend_session": cookie}, URL(third))
            async with copy.get(third + "/api/me") as response:
                assert response.status == 401


async def test_an_expired_session_or_a_new_password_ends_the_session(gateway):
    agent = gateway.agent()
    assert await agent.login("omar", PASSWORD) == 302
    assert (await agent.get("/api/me"))[0] == 200
    with session_scope(gateway.db_url) as session:  # the session's lifetime passed
        session.query(StaffSession).filter(StaffSession.username == "omar").update(
            {"expires_at": datetime.utcnow() - timedelta(seconds=1)})
    assert (await agent.get("/api/me"))[0] == 401
    assert await agent.login("omar", PASSWORD) == 302
    assert (await agent.get("/api/me"))[0] == 200
    with session_scope(gateway.db_url) as session:  # what `python -m bot accounts password omar` does
        set_password(session, "omar", PASSWORD)
    assert (await agent.get("/api/me"))[0] == 401


@pytest.mark.parametrize("raw", [
    "/%09/evil.example",          # a tab: browsers drop it and go to //evil.example
    "/%0A/evil.example",          # a newline, likewise
    "//evil.example",
    "/%5Cevil.example",           # /\evil.example: a backslash counts as a slash
    "https://evil.example/",
    "/%00/x",
    "javascript:alert(1)",
])
async def test_login_redirects_only_to_local_paths(gateway, raw):
    async with gateway.http.get(URL(gateway.url + "/login?next=" + raw, encoded=True)) as response:
        page = await response.text()
    assert response.status == 200
    assert re.search(r'name="next" value="([^"]*)"', page).group(1) == "/console"
    agent = gateway.agent()
    value = URL("/?n=" + raw, encoded=True).query["n"]  # what a tampered form would post
    status, _, location = await _login(agent.http, gateway.url, "maria", PASSWORD, next_path=value)
    assert status == 302 and location == "/console"


async def test_login_keeps_a_local_next_path(gateway):
    agent = gateway.agent()
    status, _, location = await _login(agent.http, gateway.url, "maria", PASSWORD, next_path="/console?view=mine")
    assert status == 302 and location == "/console?view=mine"
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(gateway.url + "/trainer", allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/login?next=/trainer"
