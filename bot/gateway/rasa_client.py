"""Rasa's REST channel and HTTP API, as the gateway uses them (loopback only).

Idempotent reads are retried with backoff (aiohttp-retry); a customer message is never
sent twice. Every failure becomes ``RasaUnavailable`` so callers have one thing to handle.
Every request carries Rasa's auth token (``?token=``, Rasa's ``--auth-token``); it is kept out
of error messages.

Several Rasa servers (the scaled layout, ``python -m bot run --replicas N``): every request about
a conversation goes to the server that ranks first for its id by rendezvous (highest random
weight) hashing, so each conversation stays on one server while the set of servers is the same, and
adding or removing a server moves only the conversations that ranked it first. When that server
fails, the request goes to the next one in the conversation's ranking, and the failed server is
marked down for ``down_seconds`` (tried last meanwhile). Which failures move a request on:

* reads (GET): any connection error, timeout or 5xx answer;
* writes (POST, PUT: a customer message, an event): only failures that prove the server did not
  take the request: the connection could not be made, the request body could not be written (a
  kept-alive connection to a server that died), or a 502/503/504 answer. A write that may
  have been processed (timeout, dropped connection, 500) is never sent to another server: it
  raises ``RasaUnavailable`` and the caller decides, as with one server.

Rasa's Redis lock store and the shared PostgreSQL tracker store keep a conversation correct
whichever server handles a turn; the hashing only keeps it on one server while that one is up.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any, Dict, List, Optional, Sequence, Union
from urllib.parse import quote

import aiohttp
from aiohttp_retry import ExponentialRetry, RetryClient

# The gateway's id of a customer message, sent with it (webhook metadata, or the parse data of a logged
# message): Rasa logs a message once however often it is sent (bot/rasa_exactly_once.py).
MESSAGE_ID = "mend_message_id"
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})  # the server (or a proxy) says it did not take the request


class RasaUnavailable(Exception):
    pass


class _TryNext(Exception):
    """This server failed in a way that lets the request go to the next one."""

    def __init__(self, error: RasaUnavailable) -> None:
        super().__init__(str(error))
        self.error = error


def _never_sent(error: BaseException) -> bool:
    """Whether a failure proves Rasa never got the whole request: no connection could be made, or the
    request body could not be written (a pooled keep-alive connection to a server that has died)."""
    if isinstance(error, aiohttp.ClientConnectorError):
        return True
    return isinstance(error, aiohttp.ClientOSError) and "Can not write request body" in str(error)


def split_urls(base_url: Union[str, Sequence[str]]) -> List[str]:
    """Rasa base URLs from one URL, several comma-separated, or a list (order kept, no duplicates)."""
    items = base_url.split(",") if isinstance(base_url, str) else list(base_url)
    urls: List[str] = []
    for item in items:
        url = str(item).strip().rstrip("/")
        if url and url not in urls:
            urls.append(url)
    if not urls:
        raise ValueError("RasaClient needs at least one Rasa URL")
    return urls


def rendezvous_order(key: str, urls: Sequence[str]) -> List[str]:
    """``urls`` ranked for ``key`` by highest random weight: a stable, evenly spread choice per key.

    The weight of a server for a key is a SHA-256 of both, so every gateway computes the same
    ranking without talking to the others, and removing a server leaves every other key's first
    choice where it was.
    """
    def weight(url: str) -> bytes:
        return hashlib.sha256(f"{url}\x00{key}".encode("utf-8")).digest()

    return sorted(urls, key=weight, reverse=True)


class RasaClient:
    def __init__(self, base_url: Union[str, Sequence[str]], timeout: float = 20.0, token: Optional[str] = None,
                 down_seconds: Optional[float] = None) -> None:
        from bot.gateway.config import rasa_down_seconds, secret

        self.base_urls = split_urls(base_url)
        self.base_url = self.base_urls[0]  # the only one with a single server
        self.token = token or secret("rasa_token")  # MEND_RASA_TOKEN, else var/secrets.json
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.down_seconds = rasa_down_seconds() if down_seconds is None else max(0.0, float(down_seconds))
        self._down_until: Dict[str, float] = {}  # base URL -> monotonic time until which it is passed over
        self._session: Optional[aiohttp.ClientSession] = None
        self._retrying: Optional[RetryClient] = None
        self._domain: Optional[Dict[str, Any]] = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=64 * len(self.base_urls), keepalive_timeout=30)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        self._retrying = RetryClient(client_session=self._session, retry_options=ExponentialRetry(
            attempts=3, start_timeout=0.2, methods={"GET"}, exceptions={aiohttp.ClientConnectionError}))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- choosing a server --------------------------------------------------------------------------------

    def servers_for(self, conversation_id: Optional[str]) -> List[str]:
        """The servers to try, in order: the conversation's rendezvous ranking (configured order for
        requests about no conversation), servers marked down moved to the end (still tried last)."""
        ranked = self.base_urls if conversation_id is None else rendezvous_order(conversation_id, self.base_urls)
        now = time.monotonic()
        up = [url for url in ranked if self._down_until.get(url, 0.0) <= now]
        return up + [url for url in ranked if url not in up]

    def mark_down(self, url: str) -> None:
        """Pass this server over for ``down_seconds`` (it failed)."""
        if len(self.base_urls) > 1:
            self._down_until[url] = time.monotonic() + self.down_seconds

    def is_down(self, url: str) -> bool:
        return self._down_until.get(url, 0.0) > time.monotonic()

    # -- requests -----------------------------------------------------------------------------------------

    async def _request(self, method: str, path: str, conversation_id: Optional[str] = None,
                       idempotent: Optional[bool] = None, **kwargs: Any) -> Any:
        """``method`` on ``path`` (after the base URL) of the conversation's server, failing over as the
        module docstring says (``idempotent``: a POST that changes nothing, failed over like a read)."""
        assert self._session is not None and self._retrying is not None, "RasaClient.start() was not awaited"
        kwargs["params"] = dict(kwargs.get("params") or {}, token=self.token)
        servers = self.servers_for(conversation_id)
        last: Optional[RasaUnavailable] = None
        for base in servers:
            try:
                return await self._once(method, base, base + path, single=len(servers) == 1,
                                        reading=method == "GET" if idempotent is None else idempotent, **kwargs)
            except _TryNext as failed:
                self.mark_down(base)
                last = failed.error
        assert last is not None
        raise last

    async def _once(self, method: str, base: str, url: str, single: bool, reading: bool, **kwargs: Any) -> Any:
        # One server: reads retried with backoff against it. Several: the next server is the retry.
        client = self._retrying if method == "GET" and single else self._session
        assert client is not None
        try:
            async with client.request(method, url, **kwargs) as response:
                if response.status >= 400:
                    body = (await response.text())[:300]
                    error = RasaUnavailable(f"Rasa answered {response.status} to {method} {url}: {body}")
                    if response.status in UNAVAILABLE_STATUSES or (reading and response.status >= 500):
                        raise _TryNext(error)
                    raise error
                return await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            failure = RasaUnavailable(f"{method} {url} failed: {error!r}".replace(self.token, "***"))
            if _never_sent(error) or (reading and not isinstance(error, ValueError)):
                raise _TryNext(failure) from error
            if isinstance(error, (aiohttp.ClientConnectionError, asyncio.TimeoutError)):
                self.mark_down(base)  # probably dying; the request itself is not moved (it may have been taken)
            raise failure from error

    async def _on_conversation(self, method: str, conversation_id: str, tail: str,
                               idempotent: Optional[bool] = None, **kwargs: Any) -> Any:
        path = f"/conversations/{quote(conversation_id, safe='')}/{tail}"
        return await self._request(method, path, conversation_id, idempotent, **kwargs)

    async def send(self, conversation_id: str, text: str, metadata: Dict[str, Any]) -> List[Dict[str, Any]]:
        """A customer message through the REST channel; the bot's replies."""
        result = await self._request("POST", "/webhooks/rest/webhook", conversation_id,
                                     json={"sender": conversation_id, "message": text, "metadata": metadata})
        return result if isinstance(result, list) else []

    async def tracker(self, conversation_id: str, events: bool = False) -> Dict[str, Any]:
        params = {"include_events": "ALL" if events else "NONE"}
        return await self._on_conversation("GET", conversation_id, "tracker", params=params)

    async def add_user_message(self, conversation_id: str, text: str, parse_data: Dict[str, Any]) -> Dict[str, Any]:
        """Record a customer message, parsed (``parse``), without letting the bot answer: an agent has the chat.
        Rasa tracks it as it logs it: the tracker returned carries the conversation's slots. (Rasa's endpoint
        drops metadata; the message's id travels in ``parse_data``: bot/rasa_exactly_once.py.)"""
        return await self._on_conversation("POST", conversation_id, "messages",
                                             params={"include_events": "NONE"},
                                             json={"text": text, "sender": "user", "parse_data": parse_data})

    async def predict(self, conversation_id: str) -> Dict[str, Any]:
        """Scores of every action for the next step; the tracker is not changed."""
        return await self._on_conversation("POST", conversation_id, "predict", idempotent=True,
                                             params={"include_events": "AFTER_RESTART"})

    async def append_events(self, conversation_id: str, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        return await self._on_conversation("POST", conversation_id, "tracker/events",
                                             params={"include_events": "NONE"}, json=events)

    async def replace_events(self, conversation_id: str, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Replace a (scratch) conversation's events: the trainer page replays prefixes this way."""
        return await self._on_conversation("PUT", conversation_id, "tracker/events",
                                             params={"include_events": "NONE"}, json=events)

    async def parse(self, text: str) -> Dict[str, Any]:
        return await self._request("POST", "/model/parse", idempotent=True, json={"text": text})

    async def execute(self, conversation_id: str, action: str) -> Dict[str, Any]:
        """Run one action for real (its side effects and messages), as an agent's choice."""
        return await self._on_conversation("POST", conversation_id, "execute",
                                             params={"include_events": "NONE"}, json={"name": action})

    async def status(self) -> Dict[str, Any]:
        """The loaded model (its id changes when a new model is loaded)."""
        return await self._request("GET", "/status")

    async def domain(self) -> Dict[str, Any]:
        if self._domain is None:
            self._domain = await self._request("GET", "/domain",
                                               headers={"Accept": "application/json"})
        return self._domain

    async def trigger_intent(self, conversation_id: str, intent: str) -> Dict[str, Any]:
        """Inject an external event (the follow-up job's ``EXTERNAL_follow_up``): ``{"tracker": {...},
        "messages": [the bot's replies]}`` (Rasa collects them when no output channel is named)."""
        result = await self._on_conversation("POST", conversation_id, "trigger_intent",
                                     params={"include_events": "NONE"}, json={"name": intent})
        return result if isinstance(result, dict) else {}
