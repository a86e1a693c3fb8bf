"""The case database from asyncio code (the gateway): each piece of work in a worker thread, in its own
session and transaction, so sockets keep flowing while the database answers."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional, TypeVar

from bot.casedb.engine import session_scope

T = TypeVar("T")


class Database:
    """Runs case-database work in worker threads; ``url`` None means the configured database."""

    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(session, *args, **kwargs)`` in one transaction, committed when it returns."""
        def call() -> T:
            with session_scope(self.url) as session:
                return work(session, *args, **kwargs)

        return await asyncio.to_thread(call)
