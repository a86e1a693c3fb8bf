"""Open WebSockets and who should hear what: widgets per conversation, consoles per agent.

One gateway process keeps these in memory. Several gateways would fan out through
Redis pub/sub (see README, "Scaling out"); the interface here stays the same.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, DefaultDict, Dict, Optional, Set

from aiohttp import web

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class ConsoleClient:
    socket: web.WebSocketResponse
    username: str
    watching: Set[str] = field(default_factory=set)


class Hub:
    def __init__(self) -> None:
        self.widgets: DefaultDict[str, Set[web.WebSocketResponse]] = defaultdict(set)
        self.consoles: Set[ConsoleClient] = set()
        self.assignments: Dict[str, str] = {}  # conversation -> agent username (mirror of the database)

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

    def remove_console(self, client: ConsoleClient) -> None:
        self.consoles.discard(client)

    def online_agents(self) -> Set[str]:
        return {c.username for c in self.consoles}

    def watched(self, conversation_id: str) -> bool:
        return any(conversation_id in c.watching or self.assignments.get(conversation_id) == c.username
                   for c in self.consoles)

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
        text = json.dumps(payload)
        await asyncio.gather(*(self._send(s, text) for s in list(self.widgets.get(conversation_id, ()))))

    async def to_consoles(self, payload: Dict[str, Any], conversation_id: Optional[str] = None,
                          agent: Optional[str] = None) -> None:
        """Everyone (queue changes), those following a conversation, or one agent."""
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
