"""Open console sockets by staff session, closed as soon as their session ends, on every gateway.

A console socket is authorised once, when it opens; a session can end afterwards in several places: a
logout (on this gateway or another one behind the same load balancer), a new password or a disabled
account (``python -m bot accounts``, another process), or its expiry. The session rows in the case
database are the record (bot/gateway/staff_sessions.py); this registry closes the sockets that outlived
their session:

* at once on this gateway, when the logout comes here;
* at once on the other gateways, from the revocation notice published over Redis (``Hub`` fan-out,
  envelope kind ``revoked``), when Redis is configured;
* within ``gateway.staff_session_check_seconds`` everywhere, by re-reading the open sessions' rows: the
  net under the rest (a password changed from the command line, a notice lost while Redis was down).

Session ids are bearer secrets: notices carry a digest of the id, never the id.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime
from typing import Any, Dict, Iterable, Optional, Set

from aiohttp import web

from bot.casedb.models import Account, StaffSession

logger = logging.getLogger(__name__)

CLOSED_CODE = 4401  # the console reloads to the login page on this code


def digest(session_id: str) -> str:
    """What is published about a session (a revocation notice): not the id itself."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def live_sessions(session: Any, session_ids: Iterable[str]) -> Set[str]:
    """Which of these sessions are still live: not revoked, not expired, of an enabled account."""
    wanted = list(session_ids)
    if not wanted:
        return set()
    rows = (session.query(StaffSession.id)
            .join(Account, Account.username == StaffSession.username)
            .filter(StaffSession.id.in_(wanted), StaffSession.revoked_at.is_(None),
                    StaffSession.expires_at > datetime.utcnow(), Account.disabled.is_(False))
            .all())
    return {row[0] for row in rows}


class StaffSockets:
    """session id -> the console sockets it opened on this gateway."""

    def __init__(self) -> None:
        self._sockets: Dict[str, Set[web.WebSocketResponse]] = {}
        self._task: Optional[asyncio.Task] = None

    def add(self, session_id: str, socket: web.WebSocketResponse) -> None:
        self._sockets.setdefault(session_id, set()).add(socket)

    def remove(self, session_id: str, socket: web.WebSocketResponse) -> None:
        sockets = self._sockets.get(session_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                self._sockets.pop(session_id, None)

    def sessions(self) -> Set[str]:
        return set(self._sockets)

    async def close_session(self, session_id: str, reason: str = "logged out") -> int:
        """Close every socket of one session here; how many were open."""
        sockets = list(self._sockets.pop(session_id, ()))
        for socket in sockets:
            try:
                await socket.close(code=CLOSED_CODE, message=reason.encode()[:120])
            except (ConnectionError, RuntimeError) as error:  # closing under us is routine
                logger.debug("closing a console socket: %r", error)
        return len(sockets)

    async def close_digest(self, value: str) -> int:
        """A revocation notice from another gateway: close the session it names, if it is open here."""
        for session_id in list(self._sockets):
            if digest(session_id) == value:
                return await self.close_session(session_id)
        return 0

    async def check(self, db: Any) -> int:
        """Close the sockets of every session that ended (revoked anywhere, expired, account disabled)."""
        open_now = self.sessions()
        if not open_now:
            return 0
        live = await db.run(live_sessions, open_now)
        closed = 0
        for session_id in open_now - live:
            closed += await self.close_session(session_id, "session ended")
        if closed:
            logger.info("closed %d console socket(s) whose staff session ended", closed)
        return closed

    def start(self, db: Any, every_seconds: float) -> None:
        async def run() -> None:
            while True:
                await asyncio.sleep(every_seconds)
                try:
                    await self.check(db)
                except Exception as error:  # noqa: BLE001 - the database may be down: next round
                    logger.warning("could not check the open staff sessions: %r", error)

        if every_seconds > 0:
            self._task = asyncio.ensure_future(run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
