"""The case database from asyncio code (the gateway): each piece of work in a worker thread, in its own
session and transaction, so sockets keep flowing while the database answers.

Storing a customer's message has worker threads of its own (``run_first``). With one shared pool
(asyncio's default: six threads on two cores) a burst of console work (queues, states, suggestion
telemetry) made the store of a customer's words wait past its timeout; the widget then resent,
adding more work: under 1,000 simulated customers nothing was stored for a minute.
"""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

from bot.casedb.engine import session_scope

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerThreads:
    """``gateway.workers`` in the settings (env ``MEND_WORKERS_<NAME>``). Database threads together stay
    below a process's connection pool (15), or work would wait for a connection instead."""

    database: int = 8            # everything else the gateway reads or writes
    customer_messages: int = 3   # storing customer messages, never queued behind the rest
    suggestions: int = 2         # ranking and rendering suggested replies (CPU: more threads would not help)

    @classmethod
    def load(cls) -> "WorkerThreads":
        from bot.settings import numbers_for

        return numbers_for(cls, "gateway.workers", "MEND_WORKERS_")


class Database:
    """Runs case-database work in worker threads; ``url`` None means the configured database."""

    def __init__(self, url: Optional[str] = None, threads: Optional[WorkerThreads] = None) -> None:
        self.url = url
        self.threads = threads or WorkerThreads.load()
        self._general = ThreadPoolExecutor(self.threads.database, thread_name_prefix="casedb")
        self._first = ThreadPoolExecutor(self.threads.customer_messages, thread_name_prefix="casedb-customer")

    async def _in(self, pool: ThreadPoolExecutor, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            with session_scope(self.url) as session:
                return work(session, *args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(call))

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``work(session, *args, **kwargs)`` in one transaction, committed when it returns."""
        return await self._in(self._general, work, *args, **kwargs)

    async def run_first(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Like ``run``, on threads kept for storing customer messages."""
        return await self._in(self._first, work, *args, **kwargs)

    def close(self) -> None:
        """Let the worker threads end (work already queued still runs)."""
        self._general.shutdown(wait=False)
        self._first.shutdown(wait=False)
