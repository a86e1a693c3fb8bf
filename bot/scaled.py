"""The scaled layout: ``python -m bot run --replicas N`` (``make run-scaled``, N=2).

N action servers, N Rasa servers and N gateways on one machine, sharing everything through real
engines instead of one process's memory:

* PostgreSQL (``MEND_DATABASE_URL``): the case database and the gateway's tables, and in a
  database of its own on the same server (``MEND_TRACKER_DATABASE_URL``, default ``mend_tracker``)
  Rasa's tracker store, the one record of each conversation. The tracker store's per-process
  cache (bot.tracker_store) is OFF (``cached_conversations: 0``): it is only correct while one
  process writes, and here any Rasa server may handle a conversation's next turn.
* Redis (``MEND_REDIS_URL``): Rasa's lock store, so one conversation is handled by one Rasa server
  at a time; the gateways use it too (fan-out, limits: bot.gateway.hub, bot.gateway.limits).
* RabbitMQ (``MEND_AMQP_URL``): Rasa's event broker (pika); every event a Rasa server stores is
  published once to the ``mend_events`` queue.

Each replica i gets its own endpoints file (``var/scaled/endpoints-<rasa port>.yml``) whose
``action_endpoint`` is its own action server. Every gateway knows every Rasa server
(``MEND_RASA_URLS``) and sends each conversation to one of them by rendezvous hashing
(bot.gateway.rasa_client). Before anything starts, each engine must answer and each port be
free; otherwise one clear line says which, and nothing is started.
"""
from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

from bot.settings import PROJECT_ROOT

DEFAULT_DATABASE_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/mend"
DEFAULT_TRACKER_DATABASE = "mend_tracker"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
EVENTS_QUEUE = "mend_events"
EVENTS_EXCHANGE = "rasa-exchange"  # Rasa's default fanout exchange
# Redis keys of Rasa's locks: mendrasa:lock:<conversation>. Not "mend": the gateways hold their own lock of
# a conversation at mend:lock:<conversation> (bot.gateway.fanout) while they ask Rasa about it, and Rasa,
# finding the gateway's token where it expects its ticket list, failed every customer message (LockError).
# Rasa takes only letters and digits here.
LOCK_KEY_PREFIX = "mendrasa"
ENDPOINTS_DIR = PROJECT_ROOT / "var" / "scaled"
CHECK_TIMEOUT_SECONDS = 3.0
AMQP_HEARTBEAT_SECONDS = 600  # unless MEND_AMQP_URL names its own (?heartbeat=N)


class ScaledError(SystemExit):
    """A one-line reason the scaled layout cannot start (an engine does not answer, a port is taken)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# -- settings --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScaledSettings:
    """Where the shared engines are (environment, defaults: this machine's engines on 127.0.0.1)."""

    database_url: str = DEFAULT_DATABASE_URL
    tracker_database_url: str = ""
    redis_url: str = DEFAULT_REDIS_URL
    amqp_url: str = DEFAULT_AMQP_URL
    events_queue: str = EVENTS_QUEUE
    events_exchange: str = EVENTS_EXCHANGE

    def __post_init__(self) -> None:
        if not self.tracker_database_url:
            object.__setattr__(self, "tracker_database_url", tracker_url_for(self.database_url))

    @classmethod
    def from_env(cls) -> "ScaledSettings":
        env = os.environ
        database = env.get("MEND_DATABASE_URL") or DEFAULT_DATABASE_URL
        if not database.startswith("postgresql"):
            raise ScaledError(f"mend: the scaled layout keeps its data in PostgreSQL; MEND_DATABASE_URL is "
                              f"{safe_url(database)} (unset it for {DEFAULT_DATABASE_URL}, or name a PostgreSQL "
                              f"database)")
        return cls(database_url=database, tracker_database_url=env.get("MEND_TRACKER_DATABASE_URL") or "",
                   redis_url=env.get("MEND_REDIS_URL") or DEFAULT_REDIS_URL,
                   amqp_url=env.get("MEND_AMQP_URL") or DEFAULT_AMQP_URL,
                   events_queue=env.get("MEND_EVENTS_QUEUE") or EVENTS_QUEUE,
                   events_exchange=env.get("MEND_EVENTS_EXCHANGE") or EVENTS_EXCHANGE)

    def env(self) -> Dict[str, str]:
        """What every process of the layout is started with."""
        return {"MEND_DATABASE_URL": self.database_url, "MEND_TRACKER_DATABASE_URL": self.tracker_database_url,
                "MEND_REDIS_URL": self.redis_url, "MEND_AMQP_URL": self.amqp_url,
                "MEND_EVENTS_QUEUE": self.events_queue, "MEND_EVENTS_EXCHANGE": self.events_exchange}


def tracker_url_for(database_url: str) -> str:
    """The tracker store's database: the case database's server, database ``mend_tracker``."""
    from sqlalchemy.engine import make_url

    return make_url(database_url).set(database=DEFAULT_TRACKER_DATABASE).render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """A URL with its password replaced by ***, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


# -- engine checks ---------------------------------------------------------------------------------------------

def _reason(error: BaseException) -> str:
    """A short reason from a connection error: 'connection refused', 'no answer within 3 s', or its first line."""
    text = f"{error!r} {error}".lower()
    code = getattr(error, "errno", None)
    if code == errno.ECONNREFUSED or "connection refused" in text or "connect call failed" in text:
        return "connection refused"
    if isinstance(error, (TimeoutError, asyncio.TimeoutError, socket.timeout)) or "timeout" in text \
            or "timed out" in text:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    if "name or service not known" in text or "nodename nor servname" in text or "could not translate" in text:
        return "unknown host"
    if "password" in text or "authentication" in text or "access_refused" in text or "login" in text:
        return "login refused"
    first = (str(error) or type(error).__name__).strip().splitlines()[0]
    return first[:160]


def _down(engine: str, url: str, setting: str, error: BaseException) -> ScaledError:
    reason = _reason(error)
    if reason == "login refused":
        return ScaledError(f"mend: {engine} at {safe_url(url)} refuses the login; check the user and password "
                           f"in {setting}")
    return ScaledError(f"mend: {engine} at {safe_url(url)} does not answer ({reason}); "
                       f"start it or set {setting}")


def check_postgres(url: str, setting: str = "MEND_DATABASE_URL") -> None:
    """PostgreSQL answers and lets us in (through its maintenance database: ours may not exist yet)."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    try:
        connection = psycopg2.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 5432,
                                      user=parsed.username, password=parsed.password, dbname="postgres",
                                      connect_timeout=max(1, int(CHECK_TIMEOUT_SECONDS)))
    except Exception as error:  # psycopg2.OperationalError and anything under it
        raise _down("PostgreSQL", parsed.render_as_string(hide_password=True), setting, error) from None
    connection.close()


def check_redis(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                                      socket_timeout=CHECK_TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as error:
        raise _down("Redis", url, "MEND_REDIS_URL", error) from None


def check_rabbitmq(url: str) -> None:
    import aio_pika

    async def _connect() -> None:
        connection = await asyncio.wait_for(aio_pika.connect(url, timeout=CHECK_TIMEOUT_SECONDS),
                                            CHECK_TIMEOUT_SECONDS + 1)
        await connection.close()

    try:
        asyncio.run(_connect())
    except Exception as error:
        raise _down("RabbitMQ", url, "MEND_AMQP_URL", error) from None


def check_engines(settings: ScaledSettings) -> None:
    """Every engine answers, else a ScaledError naming the first that does not."""
    check_postgres(settings.database_url)
    if _server(settings.tracker_database_url) != _server(settings.database_url):
        check_postgres(settings.tracker_database_url, "MEND_TRACKER_DATABASE_URL")
    check_redis(settings.redis_url)
    check_rabbitmq(settings.amqp_url)


def _server(url: str) -> Tuple[Optional[str], Optional[int], Optional[str]]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.host, parsed.port, parsed.username


def check_ports(ports: Sequence[Tuple[int, str]], host: str = "127.0.0.1") -> None:
    """Each (port, what) is free to listen on, else a ScaledError naming the port and what needed it."""
    for port, what in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                taken = "is already in use" if error.errno == errno.EADDRINUSE else f"cannot be used ({error.strerror})"
                raise ScaledError(f"mend: port {port} ({what}) {taken} on {host}; stop what listens there "
                                  f"(ss -ltnp 'sport = :{port}') or choose other ports") from None


# -- databases -------------------------------------------------------------------------------------------------

def ensure_postgres_database(url: str) -> bool:
    """Create the database the URL names if it does not exist; whether it was created."""
    import psycopg2
    from psycopg2 import sql
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database
    if not name:
        raise ScaledError(f"mend: {parsed.render_as_string(hide_password=True)} names no database")
    connection = psycopg2.connect(host=parsed.host or "127.0.0.1", port=parsed.port or 5432, user=parsed.username,
                                  password=parsed.password, dbname="postgres", connect_timeout=5)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone():
                return False
            try:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg2.errors.DuplicateDatabase:  # another starter was quicker
                return False
            return True
    finally:
        connection.close()


def prepare_tracker_store(url: str) -> None:
    """Create the tracker store's table before N Rasa servers start, so they do not race to create it."""
    from rasa.core.tracker_store import SQLTrackerStore
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        SQLTrackerStore.Base.metadata.create_all(engine)
    finally:
        engine.dispose()


DEMO_ACCOUNTS_FILE = PROJECT_ROOT / "var" / "demo-accounts-scaled.txt"  # make run's file is for its SQLite database


def prepare(settings: ScaledSettings, demo_accounts: Path = DEMO_ACCOUNTS_FILE) -> None:
    """Create and migrate what the layout needs: both databases, the schema, the demo data, the model
    (``bot.setup.setup_all``'s steps, on PostgreSQL, with the demo passwords in a file of their own)."""
    from sqlalchemy.engine import make_url

    from bot.gateway.server import ensure_demo_accounts
    from bot.setup import ensure_database, ensure_model, ensure_secrets, ensure_spacy, secure_files

    for url in (settings.database_url, settings.tracker_database_url):
        if ensure_postgres_database(url):
            print(f"mend: created the PostgreSQL database {make_url(url).database}")
    prepare_tracker_store(settings.tracker_database_url)
    os.environ["MEND_DATABASE_URL"] = settings.database_url  # this process's case database from now on
    secure_files()
    ensure_secrets()
    ensure_spacy()
    ensure_database(settings.database_url)
    if ensure_demo_accounts(demo_accounts):
        print(f"mend: created demo staff accounts; their passwords are in {demo_accounts.relative_to(PROJECT_ROOT)}")
    ensure_model()
    secure_files()


# -- Rasa's endpoints per replica ------------------------------------------------------------------------------

def _yaml_str(value: object) -> str:
    import json

    return json.dumps(str(value))  # a JSON string is a YAML string


def endpoints_yaml(settings: ScaledSettings, actions_port: int, cached_conversations: int = 0) -> str:
    """Rasa 3.6 endpoints for one Rasa server of the scaled layout.

    Passwords are never written into the file: it names environment variables
    (``${MEND_TRACKER_DB_PASSWORD}`` ...) that Rasa substitutes, set by ``secret_env``.
    """
    from sqlalchemy.engine import make_url

    tracker = make_url(settings.tracker_database_url)
    redis_url = urlsplit(settings.redis_url)
    amqp = urlsplit(settings.amqp_url)
    redis_db = (redis_url.path or "/0").strip("/") or "0"
    amqp_vhost = amqp.path if amqp.path not in ("", "/") else "/%2F"
    amqp_port = amqp.port or (5671 if amqp.scheme == "amqps" else 5672)
    # PikaEventBroker: an amqp:// url keeps the virtual host; it adds username and password itself.
    # A Rasa server's event loop is blocked for a minute or more while it loads the model: with the
    # default 60 s heartbeat RabbitMQ drops its connection then, and events wait for the reconnect.
    query = amqp.query or f"heartbeat={AMQP_HEARTBEAT_SECONDS}"
    amqp_host = f"{amqp.scheme or 'amqp'}://{amqp.hostname or '127.0.0.1'}:{amqp_port}{amqp_vhost}?{query}"
    lines = [
        "# Generated by `python -m bot run --replicas N` (bot/scaled.py) for one Rasa server of the scaled",
        "# layout; regenerated on every start, edits are lost. Passwords come from the environment.",
        "action_endpoint:",
        f"  url: {_yaml_str(f'http://127.0.0.1:{actions_port}/webhook')}  # this replica's own action server",
        "  token: ${MEND_ACTION_TOKEN}",
        "  enable_selective_domain: true",
        "",
        "# The one record of each conversation, shared by every Rasa server. The per-process cache of",
        "# bot.tracker_store is OFF (cached_conversations: 0): with several Rasa servers another one may",
        "# have stored newer events, so every turn reads the conversation from PostgreSQL.",
        "tracker_store:",
        "  type: bot.tracker_store.CachedSQLTrackerStore",
        '  dialect: "postgresql"',
        f"  url: {_yaml_str(tracker.host or '127.0.0.1')}",
        f"  port: {int(tracker.port or 5432)}",
        f"  db: {_yaml_str(tracker.database)}",
    ]
    if tracker.username:
        lines.append(f"  username: {_yaml_str(tracker.username)}")
    if tracker.password:
        lines.append("  password: ${MEND_TRACKER_DB_PASSWORD}")
    lines += [
        f"  cached_conversations: {int(cached_conversations)}",
        "",
        "# One conversation is handled by one Rasa server at a time: Rasa's ticket locks, in Redis.",
        "lock_store:",
        "  type: redis",
        f"  url: {_yaml_str(redis_url.hostname or '127.0.0.1')}",
        f"  port: {int(redis_url.port or 6379)}",
        f"  db: {int(redis_db)}",
        f"  key_prefix: {_yaml_str(LOCK_KEY_PREFIX)}",
    ]
    if redis_url.username:
        lines.append(f"  username: {_yaml_str(unquote(redis_url.username))}")
    if redis_url.password:
        lines.append("  password: ${MEND_REDIS_PASSWORD}")
    if redis_url.scheme == "rediss":
        lines.append("  use_ssl: true")
    lines += [
        "",
        f"# Every stored event is published once, to the {settings.events_queue} queue (RabbitMQ).",
        "event_broker:",
        "  type: pika",
        f"  url: {_yaml_str(amqp_host)}",
        f"  port: {amqp_port}",
        f"  username: {_yaml_str(unquote(amqp.username or 'guest'))}",
        "  password: ${MEND_AMQP_PASSWORD}",
        "  queues:",
        f"    - {_yaml_str(settings.events_queue)}",
        f"  exchange_name: {_yaml_str(settings.events_exchange)}",
        "",
    ]
    return "\n".join(lines)


def secret_env(settings: ScaledSettings) -> Dict[str, str]:
    """The passwords the generated endpoints name, for the Rasa servers' environment."""
    from sqlalchemy.engine import make_url

    env = {"MEND_TRACKER_DB_PASSWORD": make_url(settings.tracker_database_url).password or "",
           "MEND_REDIS_PASSWORD": unquote(urlsplit(settings.redis_url).password or ""),
           "MEND_AMQP_PASSWORD": unquote(urlsplit(settings.amqp_url).password or "guest")}
    return env


def write_endpoints(settings: ScaledSettings, rasa_port: int, actions_port: int,
                    directory: Path = ENDPOINTS_DIR, cached_conversations: int = 0) -> Path:
    """This replica's endpoints file (owner-only)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"endpoints-{rasa_port}.yml"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(endpoints_yaml(settings, actions_port, cached_conversations))
    return path


# -- the layout ------------------------------------------------------------------------------------------------

@dataclass
class ScaledLayout:
    """N replicas of (action server, Rasa server[, gateway]), each a bot.services.Services."""

    settings: ScaledSettings
    replicas: int = 2
    rasa_port: int = 5005      # replica i: rasa_port + i
    actions_port: int = 5055   # replica i: actions_port + i
    gateway_port: Optional[int] = 8080  # replica i: gateway_port + i; None: no gateways
    gateways: Optional[int] = None  # how many replicas run a gateway (None: all)
    log_dir: Path = PROJECT_ROOT / "var" / "log"
    endpoints_dir: Path = ENDPOINTS_DIR
    gateway_host: str = "127.0.0.1"
    extra_env: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from bot.services import Services

        if self.replicas < 1:
            raise ScaledError("mend: --replicas must be at least 1")
        rasa_urls = ",".join(f"http://127.0.0.1:{self.rasa_port + i}" for i in range(self.replicas))
        env = dict(self.settings.env(), **secret_env(self.settings), MEND_RASA_URLS=rasa_urls, **self.extra_env)
        gateways = self.replicas if self.gateways is None else self.gateways
        self.services: List[Services] = []
        for i in range(self.replicas):
            gateway = self.gateway_port + i if self.gateway_port is not None and i < gateways else None
            self.services.append(Services(rasa_port=self.rasa_port + i, actions_port=self.actions_port + i,
                                          gateway_port=gateway, env=dict(env), log_dir=self.log_dir))

    @property
    def rasa_urls(self) -> List[str]:
        return [s.rasa_url for s in self.services]

    @property
    def gateway_urls(self) -> List[str]:
        return [s.gateway_url for s in self.services if s.gateway_port is not None]

    def ports(self) -> List[Tuple[int, str, str]]:
        """(port, what, host) of every process, for the free-port check."""
        found: List[Tuple[int, str, str]] = []
        for i, s in enumerate(self.services, start=1):
            found += [(s.actions_port, f"action server {i}", "127.0.0.1"), (s.rasa_port, f"Rasa server {i}", "127.0.0.1")]
            if s.gateway_port is not None:
                found.append((s.gateway_port, f"gateway {i}", self.gateway_host))
        return found

    def check_ports(self) -> None:
        seen: Dict[int, str] = {}
        for port, what, host in self.ports():
            if port in seen:
                raise ScaledError(f"mend: port {port} is wanted by both {seen[port]} and {what}; choose other ports")
            seen[port] = what
            check_ports([(port, what)], host)

    def write_endpoints(self) -> None:
        for s in self.services:
            s.endpoints = write_endpoints(self.settings, s.rasa_port, s.actions_port, self.endpoints_dir)

    def start(self, timeout: float = 300.0) -> "ScaledLayout":
        """Write each replica's endpoints, start every process at once, wait until all answer."""
        self.write_endpoints()
        for s in self.services:
            s.launch()
        try:
            for s in self.services:
                s.wait_ready(timeout)
        except BaseException:  # Ctrl-C while the models load too: never leave processes behind
            self.stop()
            raise
        return self

    def supervise(self) -> List[object]:
        """A supervisor (bot.supervisor) per replica: a process that dies is restarted with backoff."""
        return [s.supervise() for s in self.services]

    def stop(self) -> None:
        for s in reversed(self.services):
            s.stop()

    def __enter__(self) -> "ScaledLayout":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def preflight(layout: ScaledLayout) -> None:
    """Everything checked before anything is created or started: engines, then ports."""
    check_engines(layout.settings)
    layout.check_ports()


def print_banner(layout: ScaledLayout) -> None:
    lines = [f"mend is running: {layout.replicas} replicas (PostgreSQL, Redis lock store, RabbitMQ event broker)."]
    for url in layout.gateway_urls:
        lines.append(f"  Gateway: {url}/   console: {url}/console")
    lines.append(f"  Rasa servers (loopback): {', '.join(layout.rasa_urls)}")
    lines.append(f"  Events: RabbitMQ queue {layout.settings.events_queue} at {safe_url(layout.settings.amqp_url)}")
    lines.append(f"  Case database: {safe_url(layout.settings.database_url)}   tracker store: "
                 f"{safe_url(layout.settings.tracker_database_url)} (tracker cache off)")
    if DEMO_ACCOUNTS_FILE.exists():
        lines.append(f"  Staff logins: {DEMO_ACCOUNTS_FILE.relative_to(PROJECT_ROOT)}")
    lines.append("  A process that dies is restarted (var/log/supervisor.log).  Logs: var/log/   Stop: Ctrl-C")
    print("\n".join(lines), flush=True)


def main_check_only(replicas: int) -> int:  # pragma: no cover - a debugging aid
    layout = ScaledLayout(ScaledSettings.from_env(), replicas)
    preflight(layout)
    print("mend: every engine answers and every port is free")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_check_only(int(sys.argv[1]) if len(sys.argv) > 1 else 2))
