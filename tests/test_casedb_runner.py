"""The gateway's case-database worker threads (bot/casedb/runner.py).

Under 1,000 simulated customers the gateway's one shared pool of six threads was busy with console
work, customer messages were not stored within their timeout, the widgets resent them, and nothing
was stored for a minute. Customer messages now have threads of their own: tested here by keeping
every general thread busy and storing a message anyway.
"""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from bot.casedb.runner import Database, WorkerThreads
from bot.gateway import transcript


async def test_a_customer_message_is_stored_while_every_other_database_thread_is_busy(db_url) -> None:
    db = Database(db_url, WorkerThreads(database=2, customer_messages=1, suggestions=1))
    release = threading.Event()

    def slow_console_work(session) -> None:
        release.wait(20)

    busy = [asyncio.ensure_future(db.run(slow_console_work)) for _ in range(4)]  # 2 running, 2 queued
    try:
        await asyncio.sleep(0.2)
        conversation = await db.run_first(transcript.open_conversation, "w-runner-test", None, "test-client")
        started = time.monotonic()
        message, created = await asyncio.wait_for(
            db.run_first(transcript.add_message, conversation.id, "customer", "where is my parcel?",
                         client_id="c-1"), 5)
        assert created and message.text == "where is my parcel?"
        assert time.monotonic() - started < 5
        assert not any(task.done() for task in busy)  # the console work was still holding its threads
    finally:
        release.set()
        await asyncio.gather(*busy)
        db.close()


def test_worker_threads_come_from_the_settings_and_refuse_nonsense(monkeypatch) -> None:
    monkeypatch.setenv("MEND_WORKERS_DATABASE", "5")
    assert WorkerThreads.load().database == 5
    for bad in ("0", "-2", "many"):
        monkeypatch.setenv("MEND_WORKERS_CUSTOMER_MESSAGES", bad)
        with pytest.raises(RuntimeError, match="gateway.workers.customer_messages"):
            WorkerThreads.load()
