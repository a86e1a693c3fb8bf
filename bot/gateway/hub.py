"""Open WebSockets and who should hear what: widgets per conversation, consoles per agent.

One gateway process keeps its own sockets in memory. With Redis configured (``fanout.RedisFanout``),
``to_widgets`` / ``to_consoles`` publish to every gateway and each delivers to its own sockets; who is
online follows across gateways (presence). The interface stays the same either way.

Who holds a conversation is not kept here: the database records it (``ChatConversation.assigned_agent``
while its status is "agent") and a push "to the consoles following X" asks it, once, as it is sent. With
Redis the holder travels in the envelope, so every gateway delivers to the same agent without a copy of
its own that could disagree with the record.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any, Awaitable, Callable, DefaultDict, Dict, Iterable, List, Optional, Set

from aiohttp import web

from bot.gateway.fanout import RedisFanout

logger = logging.getLogger(__name__)


class ConsoleClient:
    """One open console socket; setting ``watching`` tells the other gateways (presence)."""

    def __init__(self, socket: web.WebSocketResponse, username: str, watching: Optional[Set[str]] = None) -> None:
        self.socket = socket
        self.username = username
        self._watching: Set[str] = set(watching or ())
        self.on_change: Optional[Callable[[], None]] = None

    @property
    def watching(self) -> Set[str]:
        return self._watching

    @watching.setter
    def watching(self, value: Iterable[str]) -> None:
        self._watching = set(value)
        if self.on_change is not None:
            self.on_change()


def holder_in(session: Any, conversation_id: str) -> Optional[str]:
    """The agent holding the conversation, as the database records it (one primary-key read)."""
    from bot.gateway import transcript

    conversation = transcript.get_conversation(session, conversation_id)
    if conversation is None or conversation.status != "agent":
        return None
    return conversation.assigned_agent


class Hub:
    """``database``: anything with ``async run(work, *args)`` (``bot.casedb.runner.Database``); without one
    (some tests) no conversation has a holder and its pushes reach the consoles watching it only."""

    def __init__(self, fanout: Optional[RedisFanout] = None, database: Any = None) -> None:
        self.widgets: DefaultDict[str, Set[web.WebSocketResponse]] = defaultdict(set)
        self.consoles: Set[ConsoleClient] = set()
        self.fanout = fanout
        self.database = database
        self._last_push: Optional["asyncio.Future[None]"] = None  # the console push sent last (see to_consoles)
        # Closes this gateway's console sockets of a revoked staff session (bot/gateway/staff_sockets.py).
        self.on_revoked: Optional[Callable[[str], Awaitable[Any]]] = None

    # -- several gateways (Redis) -----------------------------------------------------------
    async def start(self) -> None:
        """Join the other gateways (subscription, presence). Nothing to do without Redis."""
        if self.fanout is not None:
            await self.fanout.start(self._deliver, self._presence_state)

    async def stop(self) -> None:
        if self.fanout is not None:
            await self.fanout.stop()

    def _presence_state(self) -> Dict[str, Any]:
        return {"agents": {c.username for c in self.consoles},
                "watching": {w for c in self.consoles for w in c.watching}}

    def _presence_changed(self) -> None:
        if self.fanout is not None:
            self.fanout.presence_changed()

    async def _deliver(self, envelope: Dict[str, Any]) -> None:
        """An envelope from the channel (any gateway's, ours included) to this gateway's sockets."""
        target = envelope.get("target") or {}
        kind = target.get("kind")
        payload = envelope.get("payload")
        if kind == "revoked" and isinstance(target.get("session"), str):
            if self.on_revoked is not None:
                await self.on_revoked(target["session"][:64])
            return
        if not isinstance(payload, dict):
            return
        if kind == "widgets" and isinstance(target.get("conversation_id"), str):
            await self._local_widgets(target["conversation_id"], payload)
        elif kind == "consoles" and isinstance(target.get("conversation_id"), str):
            holder = target.get("holder")
            await self._sending(payload, conversation_id=target["conversation_id"],
                                holder=holder if isinstance(holder, str) else None)
        elif kind == "agent" and isinstance(target.get("agent"), str):
            await self._sending(payload, agent=target["agent"])
        elif kind == "all":
            await self._sending(payload)

    async def session_revoked(self, session_digest: str) -> None:
        """A staff session ended here (logout): every gateway closes its console sockets of that session.
        Only a digest of the session id travels (``staff_sockets.digest``)."""
        if self.fanout is not None:
            self.fanout.publish({"kind": "revoked", "session": session_digest})
        elif self.on_revoked is not None:
            await self.on_revoked(session_digest)

    # -- registration ---------------------------------------------------------------------
    def add_widget(self, conversation_id: str, socket: web.WebSocketResponse) -> None:
        self.widgets[conversation_id].add(socket)

    def remove_widget(self, conversation_id: str, socket: web.WebSocketResponse) -> None:
        sockets = self.widgets.get(conversation_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self.widgets[conversation_id]

    def add_console(self, client: ConsoleClient) -> None:
        self.consoles.add(client)
        client.on_change = self._presence_changed
        self._presence_changed()

    def remove_console(self, client: ConsoleClient) -> None:
        self.consoles.discard(client)
        client.on_change = None
        self._presence_changed()

    def online_agents(self) -> Set[str]:
        """Agents with a console open here, or (with Redis) on another live gateway."""
        local = {c.username for c in self.consoles}
        return local | self.fanout.remote_agents if self.fanout is not None else local

    async def holder_of(self, conversation_id: str) -> Optional[str]:
        """Who holds the conversation, from the database; None when nobody does, when no console is open
        anywhere (nobody to deliver to: the read is skipped) or when the database does not answer (the
        push then reaches the consoles watching the conversation only)."""
        if self.database is None or not self.online_agents():
            return None
        try:
            return await self.database.run(holder_in, conversation_id)
        except Exception as error:  # noqa: BLE001 - a live push must not fail for it (the database is down)
            logger.warning("could not read who holds %s (%r): its push reaches the consoles watching it only",
                           conversation_id, error)
            return None

    def _followed(self, conversation_id: str, holder: Optional[str]) -> bool:
        """A console here or on another gateway watches the conversation, or its holder is online."""
        return any(conversation_id in c.watching for c in self.consoles) or \
            (self.fanout is not None and conversation_id in self.fanout.remote_watching) or \
            (holder is not None and holder in self.online_agents())

    async def watched(self, conversation_id: str) -> bool:
        """Some console, here or on another gateway, follows the conversation or belongs to its holder."""
        return self._followed(conversation_id, None) or \
            self._followed(conversation_id, await self.holder_of(conversation_id))

    # -- sending --------------------------------------------------------------------------
    @staticmethod
    async def _send(socket: web.WebSocketResponse, text: str) -> None:
        if socket.closed:
            return
        try:
            await socket.send_str(text)
        except (ConnectionError, RuntimeError) as error:  # a socket closing under us is routine
            logger.debug("dropped a message to a closing socket: %s", error)

    async def to_widgets(self, conversation_id: str, payload: Dict[str, Any]) -> None:
        if self.fanout is not None:
            self.fanout.publish({"kind": "widgets", "conversation_id": conversation_id}, payload)
        else:
            await self._local_widgets(conversation_id, payload)

    async def to_consoles(self, payload: Dict[str, Any], conversation_id: Optional[str] = None,
                          agent: Optional[str] = None, only_if_followed: bool = False) -> None:
        """Everyone (queue changes), those following a conversation (watching it, or its holder), or one agent.
        ``only_if_followed``: nothing is sent for a conversation nobody follows (decided on the same read of
        its holder as the push; the event feed's pushes, most of them for conversations nobody has open).

        Console pushes leave in the order of the calls, even though a push for a conversation first reads
        its holder: each waits until the one called before it was handed over (published, or to this
        gateway's sockets), so a console never gets a conversation's later message first."""
        previous, mine = self._last_push, asyncio.get_running_loop().create_future()
        self._last_push = mine
        try:
            holder = await self.holder_of(conversation_id) if agent is None and conversation_id is not None else None
            if previous is not None and not previous.done():
                await asyncio.wait({previous})  # not cancelled with us: the next push still waits for it
            sending: Optional[Awaitable[Any]] = None
            if only_if_followed and conversation_id is not None and not self._followed(conversation_id, holder):
                pass  # nobody to send it to, on any gateway
            elif self.fanout is None:
                sending = self._sending(payload, conversation_id, agent, holder)
            else:
                if agent is not None:
                    self.fanout.publish({"kind": "agent", "agent": agent}, payload)
                elif conversation_id is not None:
                    self.fanout.publish({"kind": "consoles", "conversation_id": conversation_id, "holder": holder},
                                        payload)
                else:
                    self.fanout.publish({"kind": "all"}, payload)
        finally:
            if not mine.done():
                mine.set_result(None)
            if self._last_push is mine:
                self._last_push = None
        if sending is not None:
            await sending

    async def _local_widgets(self, conversation_id: str, payload: Dict[str, Any]) -> None:
        text = json.dumps(payload)
        await asyncio.gather(*(self._send(s, text) for s in list(self.widgets.get(conversation_id, ()))))

    def _sending(self, payload: Dict[str, Any], conversation_id: Optional[str] = None, agent: Optional[str] = None,
                 holder: Optional[str] = None) -> "asyncio.Future[List[None]]":
        """To this gateway's consoles: everyone, one agent, or those watching ``conversation_id`` or logged in
        as its ``holder``. The sends start now, in this call's order; await the result for them to end."""
        text = json.dumps(payload)
        targets = []
        for client in list(self.consoles):
            if agent is not None:
                wanted = client.username == agent
            elif conversation_id is not None:
                wanted = conversation_id in client.watching or (holder is not None and client.username == holder)
            else:
                wanted = True
            if wanted:
                targets.append(self._send(client.socket, text))
        return asyncio.gather(*targets)
