"""Suggestions reach the console newest-last: when two computations for one conversation overlap (the
takeover's and the next customer message's) and the older ends last, its list is dropped, not shown over
the newer one (a browser test clicked a suggestion that had just been replaced this way)."""
from __future__ import annotations

import asyncio
from typing import Any, Dict, List

from bot.gateway.routing.console_feed import ConsoleFeed


class _Hub:
    def __init__(self) -> None:
        self.sent: List[Dict[str, Any]] = []

    async def to_consoles(self, event: Dict[str, Any], **_: Any) -> None:
        self.sent.append(event)


class _NoDatabase:
    async def run(self, work: Any, *args: Any) -> None:
        return None  # no conversation state: only the suggestions are published


class _Feed(ConsoleFeed):
    def __init__(self, seconds: List[float]) -> None:
        self.hub, self.db, self._suggesting, self._seconds = _Hub(), _NoDatabase(), {}, seconds

    async def suggestions_for(self, conversation_id: str) -> List[Dict[str, Any]]:
        seconds = self._seconds.pop(0)
        await asyncio.sleep(seconds)
        return [{"text": f"computed in {seconds} s"}]


async def test_an_older_computation_that_ends_last_is_not_shown() -> None:
    feed = _Feed([0.3, 0.0])  # the first (older) takes longer than the second
    older = asyncio.ensure_future(feed._publish_state("w-1", suggest=True))
    await asyncio.sleep(0.05)
    await asyncio.gather(feed._publish_state("w-1", suggest=True), older)
    assert [e["suggestions"][0]["text"] for e in feed.hub.sent] == ["computed in 0.0 s"]
    assert feed._suggesting == {}  # nothing kept once done


async def test_computations_that_do_not_overlap_are_each_shown() -> None:
    feed = _Feed([0.0, 0.0])
    await feed._publish_state("w-1", suggest=True)
    await feed._publish_state("w-1", suggest=True)
    assert len(feed.hub.sent) == 2
