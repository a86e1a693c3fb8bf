"""Shared fixtures: a migrated, seeded case database on SQLite and (when configured) PostgreSQL."""
from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime
from typing import Any, AsyncIterator, Iterator

import pytest
from sqlalchemy import text

from bot.casedb.engine import get_engine, session_scope
from bot.casedb.migrate import upgrade
from bot.casedb.models import Base
from bot.casedb.seed import seed_demo
from tests.redis_engine import prefix_of_this_test

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
POSTGRES_URL = os.environ.get("MEND_TEST_POSTGRES_URL")
NOW = datetime.utcnow().replace(microsecond=0)  # seeded "now": the bot computes "2 days ago" from the real clock


def pytest_report_header(config: pytest.Config) -> str:
    if POSTGRES_URL:
        return f"mend: PostgreSQL tests run against {POSTGRES_URL}"
    return ("mend: MEND_TEST_POSTGRES_URL is not set: the PostgreSQL variants of the case-database tests "
            "are SKIPPED (.ci/run always sets it)")


def _reset(url: str) -> None:
    engine = get_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade(url)
    with session_scope(url) as session:
        seed_demo(session, now=NOW)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> Iterator[str]:
    """A freshly migrated and seeded case database; every test gets its own."""
    if request.param == "postgresql":
        if not POSTGRES_URL:
            pytest.skip("PostgreSQL variant skipped: set MEND_TEST_POSTGRES_URL to run it")
        url = POSTGRES_URL
    else:
        url = f"sqlite:///{tmp_path / 'mend.db'}"
    _reset(url)
    monkeypatch.setenv("MEND_DATABASE_URL", url)
    yield url
    get_engine(url).dispose()


@pytest.fixture(scope="session")
def live_bot(tmp_path_factory) -> Iterator[str]:
    """The real product on loopback: Rasa + action server, own case database and tracker store."""
    from bot.services import Services
    from bot.setup import MODEL

    if not MODEL.exists():
        pytest.fail("no trained model: run `make test` (it trains one) or `python -m bot train`")
    directory = tmp_path_factory.mktemp("live")
    url = f"sqlite:///{directory / 'mend.db'}"
    _reset(url)
    # MEND_TEST_PORT_BASE lets two test runs share a machine (Rasa on BASE, actions on BASE+50).
    base = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))
    services = Services(rasa_port=base, actions_port=base + 50, tracker_db=directory / "tracker.db",
                        env={"MEND_DATABASE_URL": url}, log_dir=directory / "log")
    with running(services, url):
        yield services


@contextmanager
def running(services: Any, case_db_url: str) -> Iterator[Any]:
    """Start a stack of Mend's processes, tagged with its case database; stop it whatever happens."""
    services.start()
    services.case_db_url = case_db_url
    try:
        yield services
    finally:
        services.stop()


@pytest.fixture
async def redis_prefix(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """A Redis key prefix of this test alone (tests/redis_engine.py); skipped when Redis does not answer."""
    async for prefix in prefix_of_this_test(monkeypatch):
        yield prefix
