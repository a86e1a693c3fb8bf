"""Connections to the case database: SQLite by default, PostgreSQL when a URL says so."""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from bot.settings import database_url


def get_engine(url: Optional[str] = None) -> Engine:
    """One engine (and connection pool) per database URL, the settings' URL by default."""
    return _engine_for(url or database_url())


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A pool of open connections: SQLAlchemy 1.4 would otherwise open (and set up) a new
        # SQLite connection for every unit of work, a quarter of the action server's time per message.
        pool = {"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10} if path != ":memory:" else {}
        engine = create_engine(url, future=True, connect_args={"check_same_thread": False, "timeout": 15}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, future=True, pool_pre_ping=True, pool_size=5, max_overflow=10,
                         connect_args={"connect_timeout": 5} if url.startswith("postgresql") else {})


@contextmanager
def session_scope(url: Optional[str] = None) -> Iterator[Session]:
    """A unit of work: committed when the block succeeds, rolled back when it raises."""
    session = sessionmaker(bind=get_engine(url), future=True, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
