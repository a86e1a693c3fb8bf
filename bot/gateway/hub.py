"""Open WebSockets and who should hear what: widgets per conversation, consoles per agent.

One gateway process keeps these in memory. With Redis configured (``fanout.RedisFanout``),
``to_widgets`` / ``to_consoles`` publish to every gateway and each delivers to its own sockets;
who holds a conversation (``assignments``) and who is online follow across gateways. The
interface stays the same either way.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Any, Awaitable, Callable, DefaultDict, Dict, Iterable, Optional, Set

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


class Assignments(dict):
    """conversation -> agent username, a mirror of the database; with Redis, a change made here is
    published so every gateway's mirror follows (``set_quietly`` applies what another one published)."""

    def __init__(self, on_change: Optional[Callable[[str, Optional[str]], None]] = None) -> None:
        super().__init__()
        self.on_change = on_change

    def __setitem__(self, conversation_id: str, agent: str) -> None:
        super().__setitem__(conversation_id, agent)
        if self.on_change is not None:
            self.on_change(conversation_id, agent)

    def __delitem__(self, conversation_id: str) -> None:
        super().__delitem__(conversation_id)
        if self.on_change is not None:
            self.on_change(conversation_id, None)

    _MISSING = object()

    def pop(self, conversation_id: str, *default: Any) -> Any:  # type: ignore[override]
        value = super().pop(conversation_id, self._MISSING)
        if value is self._MISSING:
            if default:
                return default[0]
            raise KeyError(conversation_id)
        if self.on_change is not None:
            self.on_change(conversation_id, None)
        return value

    def set_quietly(self, conversation_id: str, agent: Optional[str]) -> None:
        if agent:
            super().__setitem__(conversation_id, agent)
        else:
            super().pop(conversation_id, None)

    def replace_quietly(self, current: Dict[str, str]) -> None:
        super().clear()
        super().update(current)


class Hub:
    def __init__(self, fanout: Optional[RedisFanout] = None) -> None:
        self.widgets: DefaultDict[str, Set[web.WebSocketResponse]] = defaultdict(set)
        self.consoles: Set[ConsoleClient] = set()
        self.fanout = fanout
        # conversation -> agent username (mirror of the database; with Redis, kept in step across gateways)
        self.assignments: Assignments = Assignments(self._assignment_changed if fanout is not None else None)

    # -- several gateways (Redis) -----------------------------------------------------------
    async def start(self, load_assignments: Optional[Callable[[], Awaitable[Dict[str, str]]]] = None) -> None:
        """Join the other gateways: the mirror of assignments from the database (again after each
        reconnection to Redis), then the subscription. Nothing to do without Redis."""
        if self.fanout is None:
            return

        async def reload() -> None:
            if load_assignments is not None:
                self.assignments.replace_quietly(await load_assignments())

        await self.fanout.start(self._deliver, self._presence_state, reload)

    async def stop(self) -> None:
        if self.fanout is not None:
            await self.fanout.stop()

    def _assignment_changed(self, conversation_id: str, agent: Optional[str]) -> None:
        assert self.fanout is not None
        self.fanout.publish({"kind": "assign", "conversation_id": conversation_id, "agent": agent})

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
        if kind == "assign":
            conversation_id, agent = target.get("conversation_id"), target.get("agent")
            if envelope.get("origin") != (self.fanout.gateway_id if self.fanout else None) \
                    and isinstance(conversation_id, str):
                self.assignments.set_quietly(conversation_id, agent if isinstance(agent, str) else None)
            return
        if not isinstance(payload, dict):
            return
        if kind == "widgets" and isinstance(target.get("conversation_id"), str):
            await self._local_widgets(target["conversation_id"], payload)
        elif kind == "consoles" and isinstance(target.get("conversation_id"), str):
            await self._local_consoles(payload, conversation_id=target["conversation_id"])
        elif kind == "agent" and isinstance(target.get("agent"), str):
            await self._local_consoles(payload, agent=target["agent"])
        elif kind == "all":
            await self._local_consoles(payload)

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

    def watched(self, conversation_id: str) -> bool:
        if any(conversation_id in c.watching or self.assignments.get(conversation_id) == c.username
               for c in self.consoles):
            return True
        if self.fanout is None:
            return False
        return conversation_id in self.fanout.remote_watching or \
            self.assignments.get(conversation_id) in self.fanout.remote_agents

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
                          agent: Optional[str] = None) -> None:
        """Everyone (queue changes), those following a conversation, or one agent."""
        if self.fanout is None:
            await self._local_consoles(payload, conversation_id, agent)
        elif agent is not None:
            self.fanout.publish({"kind": "agent", "agent": agent}, payload)
        elif conversation_id is not None:
            self.fanout.publish({"kind": "consoles", "conversation_id": conversation_id}, payload)
        else:
            self.fanout.publish({"kind": "all"}, payload)

    async def _local_widgets(self, conversation_id: str, payload: Dict[str, Any]) -> None:
        text = json.dumps(payload)
        await asyncio.gather(*(self._send(s, text) for s in list(self.widgets.get(conversation_id, ()))))

    async def _local_consoles(self, payload: Dict[str, Any], conversation_id: Optional[str] = None,
                              agent: Optional[str] = None) -> None:
        text = json.dumps(payload)
        targets = []
        for client in list(self.consoles):
            if agent is not None:
                wanted = client.username == agent
            elif conversation_id is not None:
                wanted = conversation_id in client.watching or self.assignments.get(conversation_id) == client.username
            else:
                wanted = True
            if wanted:
                targets.append(self._send(client.socket, text))
        await asyncio.gather(*targets)
