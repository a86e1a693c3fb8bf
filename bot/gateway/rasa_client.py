"""Rasa's REST channel and HTTP API, as the gateway uses them (loopback only).

Idempotent reads are retried with backoff (aiohttp-retry); a customer message is never
sent twice. Every failure becomes ``RasaUnavailable`` so callers have one thing to handle.
Every request carries Rasa's auth token (``?token=``, Rasa's ``--auth-token``); it is kept out
of error messages.
"""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional
from urllib.parse import quote

import aiohttp
from aiohttp_retry import ExponentialRetry, RetryClient


class RasaUnavailable(Exception):
    pass


class RasaClient:
    def __init__(self, base_url: str, timeout: float = 20.0, token: Optional[str] = None) -> None:
        from bot.gateway.config import secret

        self.base_url = base_url.rstrip("/")
        self.token = token or secret("rasa_token")  # MEND_RASA_TOKEN, else var/secrets.json
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: Optional[aiohttp.ClientSession] = None
        self._retrying: Optional[RetryClient] = None
        self._domain: Optional[Dict[str, Any]] = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=30)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
        self._retrying = RetryClient(client_session=self._session, retry_options=ExponentialRetry(
            attempts=3, start_timeout=0.2, methods={"GET"}, exceptions={aiohttp.ClientConnectionError}))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _conversation(self, conversation_id: str, tail: str) -> str:
        return f"{self.base_url}/conversations/{quote(conversation_id, safe='')}/{tail}"

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        assert self._session is not None and self._retrying is not None, "RasaClient.start() was not awaited"
        client = self._retrying if method == "GET" else self._session
        kwargs["params"] = dict(kwargs.get("params") or {}, token=self.token)
        try:
            async with client.request(method, url, **kwargs) as response:
                if response.status >= 400:
                    body = (await response.text())[:300]
                    raise RasaUnavailable(f"Rasa answered {response.status} to {method} {url}: {body}")
                return await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
            raise RasaUnavailable(f"{method} {url} failed: {error!r}".replace(self.token, "***")) from error

    async def send(self, conversation_id: str, text: str, metadata: Dict[str, Any]) -> List[Dict[str, Any]]:
        """A customer message through the REST channel; the bot's replies."""
        result = await self._request("POST", f"{self.base_url}/webhooks/rest/webhook",
                                     json={"sender": conversation_id, "message": text, "metadata": metadata})
        return result if isinstance(result, list) else []

    async def tracker(self, conversation_id: str, events: bool = False) -> Dict[str, Any]:
        params = {"include_events": "ALL" if events else "NONE"}
        return await self._request("GET", self._conversation(conversation_id, "tracker"), params=params)

    async def add_user_message(self, conversation_id: str, text: str, metadata: Dict[str, Any]) -> Dict[str, Any]:
        """Record (and parse) a customer message without letting the bot answer: an agent has the chat."""
        return await self._request("POST", self._conversation(conversation_id, "messages"),
                                   params={"include_events": "NONE"},
                                   json={"text": text, "sender": "user", "metadata": metadata})

    async def predict(self, conversation_id: str) -> Dict[str, Any]:
        """Scores of every action for the next step; the tracker is not changed."""
        return await self._request("POST", self._conversation(conversation_id, "predict"),
                                   params={"include_events": "AFTER_RESTART"})

    async def append_events(self, conversation_id: str, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        return await self._request("POST", self._conversation(conversation_id, "tracker/events"),
                                   params={"include_events": "NONE"}, json=events)

    async def replace_events(self, conversation_id: str, events: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Replace a (scratch) conversation's events: the trainer page replays prefixes this way."""
        return await self._request("PUT", self._conversation(conversation_id, "tracker/events"),
                                   params={"include_events": "NONE"}, json=events)

    async def parse(self, text: str) -> Dict[str, Any]:
        return await self._request("POST", f"{self.base_url}/model/parse", json={"text": text})

    async def execute(self, conversation_id: str, action: str) -> Dict[str, Any]:
        """Run one action for real (its side effects and messages), as an agent's choice."""
        return await self._request("POST", self._conversation(conversation_id, "execute"),
                                   params={"include_events": "NONE"}, json={"name": action})

    async def status(self) -> Dict[str, Any]:
        """The loaded model (its id changes when a new model is loaded)."""
        return await self._request("GET", f"{self.base_url}/status")

    async def domain(self) -> Dict[str, Any]:
        if self._domain is None:
            self._domain = await self._request("GET", f"{self.base_url}/domain",
                                               headers={"Accept": "application/json"})
        return self._domain

    async def trigger_intent(self, conversation_id: str, intent: str) -> Dict[str, Any]:
        """Inject an external event (the follow-up job's ``EXTERNAL_follow_up``): ``{"tracker": {...},
        "messages": [the bot's replies]}`` (Rasa collects them when no output channel is named)."""
        result = await self._request("POST", self._conversation(conversation_id, "trigger_intent"),
                                     params={"include_events": "NONE"}, json={"name": intent})
        return result if isinstance(result, dict) else {}
