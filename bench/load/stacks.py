"""The stacks a load run starts: the single-process layout of ``make run`` (``OwnStack``) and the scaled
layout of ``python -m bot run --replicas N`` (``ScaledStack``), each on its own ports and fresh data,
with staff accounts for the simulated agents, the per-address limits lifted (every simulated
customer comes from 127.0.0.1), supervised (a killed process is restarted) and killable on a timer.
"""
from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

KILLABLE = ("gateway", "rasa", "actions")
CUSTOMER_SECRET = "load-customer-secret-0123456789-0123456789"
SESSION_SECRET = "load-session-secret-0123456789-0123456789"


def lifted_limits_settings(workdir: Path) -> Path:
    """The product's settings with the per-session and per-address limits lifted, as a file."""
    import yaml

    from bot.settings import DEFAULT_FILE

    data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    data["gateway"]["rate_limit"] = {"burst": 1000, "per_minute": 100000}
    abuse = data["gateway"].setdefault("abuse", {})
    abuse["new_conversations_per_hour"] = 1000000
    abuse.setdefault("login", {}).update(per_address=1000, global_per_minute=1000)
    path = workdir / "settings.yml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def create_staff(database_url: str, agents: int) -> List[Tuple[str, str]]:
    """One console account per simulated agent (``load-agent-N``)."""
    from bot.casedb.engine import session_scope
    from bot.gateway.accounts import create_account

    staff = [(f"load-agent-{n}", f"load-agent-password-{n}-0123") for n in range(1, max(agents, 1) + 1)]
    with session_scope(database_url) as session:
        for username, password in staff:
            create_account(session, username, password, "agent", f"Load Agent {username.rsplit('-', 1)[1]}")
    return staff


def copy_model(workdir: Path) -> Path:
    """A copy of the trained model: a training run replacing models/mend.tar.gz does not touch ours."""
    from bot.setup import MODEL

    if not MODEL.exists():
        raise SystemExit("load: no trained model at models/mend.tar.gz; run `make setup` first")
    model = workdir / "mend.tar.gz"
    shutil.copy2(MODEL, model)
    return model


def parse_target(value: str) -> Tuple[str, int]:
    """``rasa`` or ``rasa@2`` -> (kind, replica index from 0)."""
    kind, _, replica = value.partition("@")
    if kind not in KILLABLE:
        raise ValueError(f"{value!r}: the process is one of {', '.join(KILLABLE)}, optionally @REPLICA (rasa@2)")
    try:
        index = int(replica or "1") - 1
    except ValueError:
        raise ValueError(f"{value!r}: the replica after @ is a number from 1") from None
    if index < 0:
        raise ValueError(f"{value!r}: replicas are numbered from 1")
    return kind, index


class Stack:
    """What both layouts share: notes with timestamps, timed kills, waiting until all answer, stopping."""

    name = "stack"

    def __init__(self, port_base: int, agents: int, workdir: Path) -> None:
        self.port_base = port_base
        self.agents = agents
        self.workdir = workdir
        self.replicas: List[Any] = []  # bot.services.Services, one per replica
        self.events: List[str] = []
        self.started_at = time.monotonic()
        self.staff: List[Tuple[str, str]] = []
        self.db_url = ""
        self.tracker_url = ""
        self.starting: Set[int] = set()  # process groups restarted after a kill that do not answer yet

    @property
    def gateways(self) -> List[str]:
        return [s.gateway_url for s in self.replicas if s.gateway_port is not None]

    def note(self, message: str) -> None:
        line = f"[load] t={time.monotonic() - self.started_at:6.1f}s {message}"
        self.events.append(line)
        print(line, flush=True)

    def _supervise(self) -> None:
        from bot.supervisor import SupervisorSettings

        for i, services in enumerate(self.replicas, start=1):
            label = f" {i}" if len(self.replicas) > 1 else ""
            services.supervise(SupervisorSettings(max_restarts=10, backoff_initial_seconds=1.0),
                               report=lambda level, message, label=label: self.note(f"supervisor{label}: {message}"))

    def process_groups(self) -> Dict[str, List[int]]:
        """The current process group of each service by kind (each service runs in a session of its own)."""
        groups: Dict[str, List[int]] = {}
        for services in self.replicas:
            for name in services.names():
                groups.setdefault(name, []).append(services.pid(name))
        return groups

    def kill_later(self, target: str, at: float, load_started: float, stop: threading.Event) -> threading.Thread:
        """kill -9 ``target`` (``rasa``, ``rasa@2``) ``at`` seconds into the load; note when it answers again."""
        from bot.services import wait_for

        kind, index = parse_target(target)
        services = self.replicas[index]
        label = target if "@" in target or len(self.replicas) == 1 else f"{kind}@1"

        def run() -> None:
            if stop.wait(max(0.0, load_started + at - time.monotonic())):
                return
            old = services.pid(kind)
            services.kill(kind, signal.SIGKILL)
            killed = time.monotonic()
            self.note(f"killed {label} (pid {old}) with SIGKILL at {killed - load_started:.0f} s into the load")
            deadline = killed + 600
            while time.monotonic() < deadline:  # watched past the end of the load: the time to recover counts
                try:
                    new = services.pid(kind)
                    if new != old:
                        self.starting.add(new)
                        try:
                            wait_for(services.health_url(kind), max(1.0, deadline - time.monotonic()))
                        finally:
                            self.starting.discard(new)
                        self.note(f"{label} answers again {time.monotonic() - killed:.0f} s after the kill "
                                  f"(pid {services.pid(kind)})")
                        return
                except Exception:
                    pass
                time.sleep(0.5)
            self.note(f"{label} did not come back within the run")

        thread = threading.Thread(target=run, name=f"kill-{target}", daemon=True)
        thread.start()
        return thread

    def wait_healthy(self, timeout: float) -> float:
        """Wait until every service answers (a killed one is back); the seconds it took."""
        from bot.services import wait_for

        started = time.monotonic()
        for i, services in enumerate(self.replicas, start=1):
            for name in services.names():
                try:
                    wait_for(services.health_url(name), max(1.0, timeout - (time.monotonic() - started)))
                except Exception as error:
                    self.note(f"{name}@{i} still does not answer after the load: {error}")
        return time.monotonic() - started

    def stop(self) -> None:
        for services in reversed(self.replicas):
            services.stop()
        self.cleanup()

    def cleanup(self) -> None:
        """Remove what the stack created outside its work folder (nothing for the single-process stack)."""


class OwnStack(Stack):
    """One Rasa, one action server, one gateway; SQLite case database and tracker store in the work folder."""

    name = "single process"

    def start(self) -> None:
        from bot.services import Services
        from bot.setup import ensure_database

        model = copy_model(self.workdir)
        self.db_url = f"sqlite:///{self.workdir / 'mend.db'}"
        tracker_db = self.workdir / "tracker.db"
        self.tracker_url = f"sqlite:///{tracker_db}"
        ensure_database(self.db_url)
        self.staff = create_staff(self.db_url, self.agents)
        env = {"MEND_DATABASE_URL": self.db_url, "MEND_SETTINGS_FILE": str(lifted_limits_settings(self.workdir)),
               "MEND_CUSTOMER_TOKEN_SECRET": CUSTOMER_SECRET, "MEND_SESSION_SECRET": SESSION_SECRET,
               "MEND_LOG_LEVEL": "WARNING"}
        services = Services(model=model, rasa_port=self.port_base + 5, actions_port=self.port_base + 55,
                            gateway_port=self.port_base + 80, tracker_db=tracker_db, env=env,
                            log_dir=self.workdir / "log")
        self.replicas = [services]
        print(f"[load] starting actions (:{services.actions_port}), Rasa (:{services.rasa_port}), "
              f"gateway (:{services.gateway_port}); work dir {self.workdir}", flush=True)
        started = time.monotonic()
        services.start(timeout=600)
        print(f"[load] stack up in {time.monotonic() - started:.0f} s", flush=True)
        self._supervise()


class ScaledStack(Stack):
    """``replicas`` x (action server, Rasa server, gateway) on PostgreSQL, Redis and RabbitMQ
    (bot.scaled.ScaledLayout), with databases, a Redis database and an events queue of its own,
    created fresh for the run and removed after it."""

    name = "scaled"

    def __init__(self, port_base: int, agents: int, workdir: Path, replicas: int, postgres_url: str,
                 redis_url: str, amqp_url: str) -> None:
        super().__init__(port_base, agents, workdir)
        self.count = replicas
        self.postgres_url = postgres_url
        self.redis_url = redis_url
        self.amqp_url = amqp_url
        self.layout: Any = None

    def _settings(self) -> Any:
        from sqlalchemy.engine import make_url

        from bot.scaled import ScaledSettings

        server = make_url(self.postgres_url)
        return ScaledSettings(
            database_url=server.set(database="mend_load").render_as_string(hide_password=False),
            tracker_database_url=server.set(database="mend_load_tracker").render_as_string(hide_password=False),
            redis_url=self.redis_url, amqp_url=self.amqp_url, events_queue="mend_load_events")

    def start(self) -> None:
        from bot.scaled import ScaledLayout, check_engines, ensure_postgres_database, prepare_tracker_store
        from bot.setup import ensure_database

        settings = self._settings()
        check_engines(settings)
        for url in (settings.database_url, settings.tracker_database_url):
            drop_postgres_database(url)
            ensure_postgres_database(url)
        prepare_tracker_store(settings.tracker_database_url)
        ensure_database(settings.database_url)
        flush_redis(settings.redis_url)
        delete_queue(settings.amqp_url, settings.events_queue)
        self.settings = settings
        self.db_url, self.tracker_url = settings.database_url, settings.tracker_database_url
        self.staff = create_staff(self.db_url, self.agents)
        model = copy_model(self.workdir)
        env = {"MEND_SETTINGS_FILE": str(lifted_limits_settings(self.workdir)), "MEND_LOG_LEVEL": "WARNING",
               "MEND_CUSTOMER_TOKEN_SECRET": CUSTOMER_SECRET, "MEND_SESSION_SECRET": SESSION_SECRET}
        self.layout = ScaledLayout(settings, replicas=self.count, rasa_port=self.port_base + 5,
                                   actions_port=self.port_base + 55, gateway_port=self.port_base + 80,
                                   log_dir=self.workdir / "log", endpoints_dir=self.workdir / "endpoints",
                                   extra_env=env)
        for services in self.layout.services:
            services.model = model
        self.layout.check_ports()
        self.replicas = list(self.layout.services)
        print(f"[load] starting {self.count} x (actions, Rasa, gateway): gateways "
              f"{', '.join(self.layout.gateway_urls)}, Rasa {', '.join(self.layout.rasa_urls)}; "
              f"PostgreSQL mend_load + mend_load_tracker, Redis {self.redis_url}, RabbitMQ queue "
              f"{settings.events_queue}; work dir {self.workdir}", flush=True)
        started = time.monotonic()
        self.layout.start(timeout=900)
        print(f"[load] scaled stack up in {time.monotonic() - started:.0f} s", flush=True)
        self._supervise()

    def events_waiting(self) -> int:
        """Rasa's events still in the run's queue: near 0 while the gateways consume them (event_feed)."""
        return queue_depth(self.settings.amqp_url, self.settings.events_queue)

    def cleanup(self) -> None:
        settings = getattr(self, "settings", None)
        if settings is None:
            return
        for step in (lambda: delete_queue(settings.amqp_url, settings.events_queue),
                     lambda: flush_redis(settings.redis_url)):
            try:
                step()
            except Exception as error:  # the figures are printed already; say what was left behind
                print(f"[load] cleanup: {error}", flush=True)


def drop_postgres_database(url: str) -> None:
    """Drop the run's database (an earlier run's data would be checked as this run's)."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    connection = psycopg2.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 5432, user=parsed.username,
                                  password=parsed.password, dbname="postgres", connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(parsed.database)))
    finally:
        connection.close()


def flush_redis(url: str) -> None:
    """Empty the run's Redis database (rate-limit counters, presence and locks of an earlier run)."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in a queue (a passive declare: the queue is not created)."""
    import asyncio

    import aio_pika

    async def run() -> int:
        connection = await aio_pika.connect(amqp_url, timeout=5)
        try:
            channel = await connection.channel()
            found = await channel.declare_queue(queue, passive=True)
            return int(found.declaration_result.message_count or 0)
        finally:
            await connection.close()

    return asyncio.run(run())


def delete_queue(amqp_url: str, queue: str) -> None:
    """Delete the run's events queue: nobody consumes it after the run."""
    import asyncio

    import aio_pika

    async def run() -> None:
        connection = await aio_pika.connect(amqp_url, timeout=5)
        try:
            channel = await connection.channel()
            await channel.queue_delete(queue)
        finally:
            await connection.close()

    asyncio.run(run())

