"""A customer on Rasa's REST channel, as the demo and tests use it."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

from bot.gateway.config import secret


def with_token(url: str) -> str:
    """Rasa's HTTP API needs its auth token (the one bot.services starts Rasa with)."""
    if "token" in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query):
        return url
    return url + ("&" if "?" in url else "?") + urllib.parse.urlencode({"token": secret("rasa_token")})


def post(url: str, payload: Any, timeout: float = 120) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(with_token(url), data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def get(url: str, timeout: float = 60) -> Any:
    with urllib.request.urlopen(with_token(url), timeout=timeout) as response:
        return json.loads(response.read())


class Customer:
    def __init__(self, rasa_url: str, sender: str, customer_id: Optional[str] = None) -> None:
        self.rasa_url, self.sender = rasa_url, sender
        self.metadata = {"customer_id": customer_id} if customer_id else {}
        self.transcript: List[str] = []

    def say(self, text: str) -> List[Dict[str, Any]]:
        replies = post(f"{self.rasa_url}/webhooks/rest/webhook",
                       {"sender": self.sender, "message": text, "metadata": self.metadata})
        self.transcript.append(f"customer: {text}")
        for reply in replies:
            line = f"bot: {reply.get('text', '')}"
            if reply.get("buttons"):
                line += "  [" + " | ".join(b["title"] for b in reply["buttons"]) + "]"
            self.transcript.append(line)
        return replies

    def text_of(self, replies: List[Dict[str, Any]]) -> str:
        return "\n".join(r.get("text", "") for r in replies)

    def tracker(self) -> Dict[str, Any]:
        return get(f"{self.rasa_url}/conversations/{self.sender}/tracker")
