"""An open console socket dies with its staff session, wherever the session ends: a logout on another
gateway (a Redis notice, at once), a new password set from the command line or an expiry (the periodic
check of the session rows, within ``gateway.staff_session_check_seconds``).

The two-gateway test runs against the real Redis (skipped, saying why, when it does not answer; see
tests/test_gateway_fanout.py); Rasa is tests/fake_rasa.py.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import aiohttp
from yarl import URL

from bot.casedb.engine import session_scope
from bot.casedb.models import StaffSession
from bot.gateway.accounts import create_account, set_password
from bot.gateway.client import Staff
from bot.gateway.staff_sockets import digest
from tests.one_gateway import gateway_with_fake_rasa
from tests.test_gateway_fanout import _base, _two_gateways

PASSWORD = "staff socket password"


async def _closed_within(staff: Staff, seconds: float) -> float:
    """How long the gateway took to close the console socket (the console then asks /api/me, gets 401 and
    goes to the login page); fails after ``seconds``."""
    started = time.monotonic()
    while True:
        message = await staff.socket.receive(timeout=max(0.1, seconds - (time.monotonic() - started)))
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            assert message.type == aiohttp.WSMsgType.CLOSE, message  # the gateway closed it
            return time.monotonic() - started


def _copy_session(source: Staff, target_url: str) -> Staff:
    """The same staff session (cookie) on another gateway: one browser, two tabs behind a load balancer."""
    cookie = next(c for c in source.http.cookie_jar if c.key == "mend_session").value
    copy = Staff(target_url)
    copy.http.cookie_jar.update_cookies({"mend_session": cookie}, URL(target_url))
    return copy


async def test_a_logout_on_gateway_a_closes_the_sessions_console_on_gateway_b_at_once(db_url, tmp_path,
                                                                                      redis_prefix) -> None:
    with session_scope(db_url) as session:
        create_account(session, "bo", PASSWORD, "agent", "Bo")
        create_account(session, "cy", PASSWORD, "agent", "Cy")
    # The periodic check is an hour away: only the notice over Redis can close the socket in time.
    rasa, gateway_a, gateway_b = await _two_gateways(db_url, tmp_path, staff_session_check_seconds=3600)
    bo_a = Staff(_base(gateway_a))
    cy_b = Staff(_base(gateway_b))
    bo_b = None
    try:
        assert await bo_a.login("bo", PASSWORD) == 302
        assert await cy_b.login("cy", PASSWORD) == 302
        bo_b = _copy_session(bo_a, _base(gateway_b))
        await bo_b.open_console()
        await cy_b.open_console()
        async with bo_a.http.post(_base(gateway_a) + "/logout", allow_redirects=False) as response:
            assert response.status == 302
        assert await _closed_within(bo_b, 5.0) < 5.0
        assert (await bo_b.get("/api/me"))[0] == 401  # what the console asks next: to the login page
        # Another agent's console on the same gateway stays open.
        await cy_b.watch("anything")
        assert not cy_b.socket.closed
        # What travelled was a digest, never the session id.
        assert len(digest("x" * 43)) == 32
    finally:
        for staff in (bo_a, cy_b, bo_b):
            if staff is not None:
                await staff.close()
        for server in (gateway_a, gateway_b, rasa):
            await server.close()


async def test_a_password_set_from_the_command_line_or_an_expiry_closes_open_consoles(db_url, tmp_path) -> None:
    with session_scope(db_url) as session:
        for name in ("dee", "eve", "fay"):
            create_account(session, name, PASSWORD, "agent", name.title())
    async with gateway_with_fake_rasa(db_url, tmp_path, staff_session_check_seconds=0.5) as gateway:
        dee, eve, fay = (Staff(_base(gateway)) for _ in range(3))
        try:
            for staff, name in ((dee, "dee"), (eve, "eve"), (fay, "fay")):
                assert await staff.login(name, PASSWORD) == 302
                await staff.open_console()
            with session_scope(db_url) as session:  # `python -m bot accounts password dee`: another process
                set_password(session, "dee", "a brand new password for dee")
            assert await _closed_within(dee, 5.0) < 5.0
            with session_scope(db_url) as session:  # eve's session runs out
                session.query(StaffSession).filter(StaffSession.username == "eve").update(
                    {"expires_at": datetime.utcnow() - timedelta(seconds=1)})
            assert await _closed_within(eve, 5.0) < 5.0
            await asyncio.sleep(1.5)  # three more checks: fay's live session is left alone
            assert not fay.socket.closed and (await fay.get("/api/me"))[0] == 200
        finally:
            for staff in (dee, eve, fay):
                await staff.close()
