"""A Python client of the gateway protocol (a customer's widget, an agent's console): tests and benchmarks use it."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List, Optional

import aiohttp


class Widget:
    """What widget.js does on the wire: hello, messages with client ids, and collecting what comes back.

    Like the widget, it keeps every message until the server acknowledges it: ``reconnect`` resends
    the unacknowledged ones, and a ``not_stored`` error (the database is down) resends them after the
    delay the server asks for. ``received_at`` holds the monotonic time each event arrived.
    """

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.http = http
        self.socket: Optional[aiohttp.ClientWebSocketResponse] = None
        self.welcome: Dict[str, Any] = {}
        self.received: List[Dict[str, Any]] = []
        self.received_at: List[float] = []
        self.pending: Dict[str, Dict[str, Any]] = {}  # client id -> frame, until acknowledged
        self._token: Optional[str] = None
        self._origin: Optional[str] = None
        self._resend: Optional[asyncio.Task] = None
        self._counter = 0

    async def connect(self, token: Optional[str] = None, resume: Optional[str] = None,
                      origin: Optional[str] = None) -> Dict[str, Any]:
        self._token, self._origin = token, origin
        headers = {"Origin": origin} if origin else {}
        self.socket = await self.http.ws_connect(self.base_url + "/ws/widget", headers=headers)
        await self.socket.send_json({"type": "hello", "token": token, "resume": resume})
        first = await self.socket.receive_json(timeout=30)
        if first.get("type") == "welcome":
            self.welcome = first
        return first

    async def reconnect(self) -> Dict[str, Any]:
        """A new socket on the same conversation (the resume token), then the unacknowledged messages again."""
        if self.socket is not None and not self.socket.closed:
            await self.socket.close()
        first = await self.connect(self._token, self.resume, self._origin)
        for frame in list(self.pending.values()):
            await self.socket.send_json(frame)
        return first

    @property
    def resume(self) -> Optional[str]:
        return self.welcome.get("resume")

    @property
    def conversation_id(self) -> str:
        return self.welcome["conversation_id"]

    async def send(self, text: str, client_id: Optional[str] = None, payload: Optional[str] = None) -> str:
        self._counter += 1
        client_id = client_id or f"c{self._counter}"
        frame = {"type": "message", "client_id": client_id, "text": text}
        if payload:
            frame["payload"] = payload
        self.pending[client_id] = frame
        try:
            await self.socket.send_json(frame)
        except (ConnectionError, RuntimeError):  # the socket is gone: kept, resent after reconnect()
            pass
        return client_id

    async def next(self, timeout: float = 60) -> Dict[str, Any]:
        event = await self.socket.receive_json(timeout=timeout)
        self.received.append(event)
        self.received_at.append(time.monotonic())
        if event.get("type") == "ack":
            self.pending.pop(event.get("client_id"), None)
        elif event.get("type") == "error" and event.get("code") == "not_stored":
            if self._resend is None or self._resend.done():
                self._resend = asyncio.ensure_future(self._resend_after(float(event.get("retry_ms") or 2000) / 1000))
        elif event.get("type") == "error" and event.get("client_id"):
            self.pending.pop(event["client_id"], None)  # refused for good (too long, rate limited...)
        return event

    async def _resend_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        for frame in list(self.pending.values()):
            if self.socket is not None and not self.socket.closed:
                await self.socket.send_json(frame)

    async def until(self, predicate, timeout: float = 90) -> Dict[str, Any]:
        """Read events until one matches; the ones before it stay in ``received``."""
        async def wait() -> Dict[str, Any]:
            while True:
                event = await self.next(timeout)
                if predicate(event):
                    return event
        return await asyncio.wait_for(wait(), timeout)

    async def settle(self, quiet: float = 1.5) -> List[Dict[str, Any]]:
        """Everything that arrives until the socket has been quiet for ``quiet`` seconds."""
        events = []
        while True:
            try:
                events.append(await self.next(timeout=quiet))
            except asyncio.TimeoutError:
                return events

    def messages(self, sender: Optional[str] = None) -> List[Dict[str, Any]]:
        return [e["message"] for e in self.received if e.get("type") == "message"
                and (sender is None or e["message"]["sender"] == sender)]

    async def close(self) -> None:
        if self._resend is not None:
            self._resend.cancel()
        if self.socket is not None:
            await self.socket.close()


class Staff:
    """An agent with a logged-in session cookie."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.socket: Optional[aiohttp.ClientWebSocketResponse] = None
        self.events: List[Dict[str, Any]] = []

    async def login(self, username: str, password: str) -> int:
        async with self.http.post(self.base_url + "/login", data={"username": username, "password": password},
                                  allow_redirects=False) as response:
            return response.status

    async def get(self, path: str) -> tuple:
        async with self.http.get(self.base_url + path) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, body: Any = None) -> tuple:
        async with self.http.post(self.base_url + path, json=body if body is not None else {}) as response:
            return response.status, await response.json(content_type=None)

    async def open_console(self) -> None:
        self.socket = await self.http.ws_connect(self.base_url + "/ws/console", headers={"Origin": self.base_url})
        self.events.append(await self.socket.receive_json(timeout=30))

    async def watch(self, conversation_id: str) -> None:
        await self.socket.send_json({"type": "watch", "conversation_id": conversation_id})

    async def until(self, predicate, timeout: float = 90) -> Dict[str, Any]:
        async def wait() -> Dict[str, Any]:
            while True:
                event = await self.socket.receive_json(timeout=timeout)
                self.events.append(event)
                if predicate(event):
                    return event
        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()
        await self.http.close()
