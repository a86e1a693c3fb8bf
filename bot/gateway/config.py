"""Gateway settings (the ``gateway`` section of the settings file, environment overrides) and secrets."""
from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from bot.settings import PROJECT_ROOT, section

SECRETS_FILE = PROJECT_ROOT / "var" / "secrets.json"
RASA_URL_EXAMPLE = "http://127.0.0.1:5005"


class ConfigError(SystemExit):
    """A setting the gateway cannot run with, in one line naming the setting and its value.

    A SystemExit (like bot.scaled.ScaledError and ``start_timeout``): ``python -m bot gateway`` and
    ``python -m bot run`` then end at start with this line and exit code 1, not with a traceback or,
    worse, a gateway that starts and fails at its first request.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def secret(name: str, path: Path = SECRETS_FILE) -> str:
    """A secret from the environment (``MEND_<NAME>``), else from var/secrets.json, generated there on first use.

    The file and its folder are the owner's only (0600/0700); a lock keeps two processes starting at
    once from generating two different values.
    """
    env = os.environ.get(f"MEND_{name.upper()}")
    if env:
        return env
    stored = _read_secrets(path)
    if stored.get(name):
        return str(stored[name])
    _owner_only_dir(path.parent)
    lock_fd = os.open(path.with_suffix(".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        stored = _read_secrets(path)  # another process may have written it meanwhile
        if not stored.get(name):
            stored[name] = secrets.token_urlsafe(48)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(stored, handle, indent=1)
            os.replace(tmp, path)
    finally:
        os.close(lock_fd)  # releases the lock
    return str(stored[name])


def _read_secrets(path: Path) -> Dict[str, Any]:
    if not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text(encoding="utf-8")) or {}
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path} is not valid JSON ({error}); fix or delete it") from error
    if not isinstance(stored, dict):
        raise RuntimeError(f"{path} must hold a JSON object; fix or delete it")
    return stored


def _owner_only_dir(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o077:
        directory.chmod(0o700)


@dataclass
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    # One Rasa server, or several comma-separated (the scaled layout): each conversation then goes to
    # one of them, chosen by rendezvous hashing of its id (bot.gateway.rasa_client).
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_down_seconds: float = 10.0  # a Rasa server that failed is passed over this long
    rasa_timeout: float = 20.0
    allowed_origins: List[str] = field(default_factory=list)
    customer_token_secret: str = ""
    session_secret: str = ""
    rasa_token: str = ""  # Rasa's HTTP API auth token (MEND_RASA_TOKEN, else var/secrets.json)
    customer_token_max_minutes: int = 60
    resume_days: int = 30
    conversation_idle_hours: float = 24.0
    max_message_chars: int = 2000
    rate_burst: int = 8
    rate_per_minute: float = 30.0
    session_hours: int = 12
    cookie_secure: bool = False
    live_minutes: int = 30
    history_messages: int = 500
    database_url: Optional[str] = None  # None: the case database from the settings
    # MEND_AMQP_URL: Rasa's events in RabbitMQ feed the consoles' activity list (event_feed.py); unset: no feed
    amqp_url: Optional[str] = None
    events_queue: str = "mend_events"  # MEND_EVENTS_QUEUE (bot.scaled writes the same name into Rasa's endpoints)
    events_exchange: str = "rasa-exchange"  # MEND_EVENTS_EXCHANGE
    event_max_age_seconds: float = 600.0
    # Open console sockets whose staff session ended elsewhere are closed within this (staff_sockets.py)
    staff_session_check_seconds: float = 30.0
    event_prefetch: int = 200
    redis_url: Optional[str] = None  # MEND_REDIS_URL: several gateways share fan-out, locks, rate limits (fanout.py)
    story_dirs: List[str] = field(default_factory=lambda: ["tests"])  # test stories the trainer page lists
    trainer_export_dir: str = "tests/trainer"  # where the trainer page saves exported test stories
    # Abuse limits (``gateway.abuse`` in the settings file).
    trusted_proxies: List[str] = field(default_factory=list)  # only these may set X-Forwarded-For
    login_window_minutes: float = 5.0
    login_per_username: int = 5
    login_per_address: int = 20
    login_global_per_minute: int = 60
    new_conversations_per_hour: int = 30
    verified_guest_hours: float = 4.0
    live_fold_after: int = 3

    def rasa_servers(self) -> List[str]:
        """Every Rasa server this gateway may use (rasa_url split at commas)."""
        return _url_list(self.rasa_url) or ["http://127.0.0.1:5005"]

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def origins(self) -> List[str]:
        """Origins whose pages may open sockets: the gateway itself, plus configured host sites."""
        own = {self.base_url, f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"}
        return sorted(own | {o.rstrip("/") for o in self.allowed_origins if o})


def rasa_down_seconds() -> float:
    """How long a Rasa server that failed is passed over: MEND_RASA_DOWN_SECONDS, else gateway.rasa_down_seconds
    (a negative number: never passed over). Anything but a number is a ConfigError naming the setting."""
    env = os.environ.get("MEND_RASA_DOWN_SECONDS", "").strip()
    raw: object = env if env else section("gateway").get("rasa_down_seconds", 10)
    where = "MEND_RASA_DOWN_SECONDS" if env else "gateway.rasa_down_seconds in the settings"
    try:
        seconds = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(raw, bool) or not math.isfinite(seconds):
        raise ConfigError(f"mend: {where} must be a number of seconds, not {raw!r}")
    return max(0.0, seconds)


def _url_list(value: object) -> List[str]:
    """Rasa URLs from a comma-separated string (MEND_RASA_URLS, MEND_RASA_URL) or a YAML list; no duplicates."""
    items = value.split(",") if isinstance(value, str) else list(value or [])  # type: ignore[call-overload]
    urls: List[str] = []
    for item in items:
        url = str(item).strip().rstrip("/")
        if url and url not in urls:
            urls.append(url)
    return urls


def _bad_rasa_url(url: str) -> bool:
    """Not an http(s) URL of a server (scheme, host, optional port, nothing that a request would choke on)."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        return True
    return (parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url)
            or bool(parts.query or parts.fragment))


def rasa_urls_setting() -> str:
    """The Rasa servers, comma-separated: MEND_RASA_URLS, else MEND_RASA_URL, else gateway.rasa_url.

    Checked here, at start: a value that is not a list of http(s) URLs is a ConfigError naming the
    setting and the bad entry (it used to be accepted and fail at the first customer message)."""
    for name in ("MEND_RASA_URLS", "MEND_RASA_URL"):
        given: object = os.environ.get(name, "")
        if str(given).strip():
            where = name
            break
    else:
        given = section("gateway").get("rasa_url") or RASA_URL_EXAMPLE
        where = "gateway.rasa_url in the settings"
    if not isinstance(given, (str, list)):
        raise ConfigError(f"mend: {where} must be Rasa server URLs like {RASA_URL_EXAMPLE}, not {given!r}")
    urls = _url_list(given)
    if not urls:
        raise ConfigError(f"mend: {where} names no Rasa server: {given!r} (give URLs like {RASA_URL_EXAMPLE}, "
                          f"several comma-separated)")
    for url in urls:
        if _bad_rasa_url(url):
            shown = repr(url) if url == str(given).strip() else f"{url!r} (in {given!r})"
            raise ConfigError(f"mend: {where} has {shown}, which is not a Rasa server URL; give http(s) URLs "
                              f"like {RASA_URL_EXAMPLE}, several comma-separated")
    return ",".join(urls)


def load_config(**overrides: object) -> GatewayConfig:
    """The gateway's configuration from the settings file and MEND_* environment variables."""
    raw = section("gateway")
    rate = raw.get("rate_limit") or {}
    env_origins = [o.strip() for o in os.environ.get("MEND_ALLOWED_ORIGINS", "").split(",") if o.strip()]
    public_url = os.environ.get("MEND_PUBLIC_URL") or str(raw.get("public_url") or "")
    secure = str(raw.get("cookie_secure", "auto")).lower()
    config = GatewayConfig(
        host=os.environ.get("MEND_GATEWAY_HOST") or str(raw.get("host") or "127.0.0.1"),
        port=int(os.environ.get("MEND_GATEWAY_PORT") or raw.get("port") or 8080),
        public_url=public_url,
        rasa_url=rasa_urls_setting(),
        rasa_down_seconds=rasa_down_seconds(),
        rasa_timeout=float(raw.get("rasa_timeout_seconds", 20)),
        allowed_origins=list(raw.get("allowed_origins") or []) + env_origins,
        customer_token_max_minutes=int(raw.get("customer_token_max_minutes", 60)),
        resume_days=int(raw.get("resume_days", 30)),
        conversation_idle_hours=float(raw.get("conversation_idle_hours", 24)),
        max_message_chars=int(raw.get("max_message_chars", 2000)),
        rate_burst=int(rate.get("burst", 8)),
        rate_per_minute=float(rate.get("per_minute", 30)),
        session_hours=int(raw.get("session_hours", 12)),
        cookie_secure=public_url.startswith("https://") if secure == "auto" else secure in {"true", "yes", "1"},
        live_minutes=int(raw.get("live_minutes", 30)),
        history_messages=int(raw.get("history_messages", 500)),
        story_dirs=[str(d) for d in raw.get("story_dirs") or ["tests"]],
        trainer_export_dir=os.environ.get("MEND_TRAINER_EXPORT_DIR") or str(raw.get("trainer_export_dir") or "tests/trainer"),
    )
    abuse = raw.get("abuse") or {}
    login = abuse.get("login") or {}
    config.trusted_proxies = [str(p).strip() for p in abuse.get("trusted_proxies") or [] if str(p).strip()]
    config.login_window_minutes = float(login.get("window_minutes", 5))
    config.login_per_username = int(login.get("per_username", 5))
    config.login_per_address = int(login.get("per_address", 20))
    config.login_global_per_minute = int(login.get("global_per_minute", 60))
    config.new_conversations_per_hour = int(abuse.get("new_conversations_per_hour", 30))
    config.verified_guest_hours = float(abuse.get("verified_guest_hours", 4))
    config.live_fold_after = int(abuse.get("live_fold_after", 3))
    config.redis_url = (os.environ.get("MEND_REDIS_URL") or str(raw.get("redis_url") or "")).strip() or None
    config.amqp_url = (os.environ.get("MEND_AMQP_URL") or str(raw.get("amqp_url") or "")).strip() or None
    config.events_queue = os.environ.get("MEND_EVENTS_QUEUE") or config.events_queue
    config.events_exchange = os.environ.get("MEND_EVENTS_EXCHANGE") or config.events_exchange
    feed = raw.get("event_feed") or {}
    config.event_max_age_seconds = float(feed.get("max_age_seconds", 600))
    config.event_prefetch = max(1, int(feed.get("prefetch", 200)))
    config.staff_session_check_seconds = float(raw.get("staff_session_check_seconds", 30))
    for key, value in overrides.items():
        setattr(config, key, value)
    if not config.customer_token_secret:
        config.customer_token_secret = secret("customer_token_secret")
    if not config.session_secret:
        config.session_secret = secret("session_secret")
    if not config.rasa_token:
        config.rasa_token = secret("rasa_token")
    return config
