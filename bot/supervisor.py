"""Keep Mend's processes running: restart one that died, with backoff, and give up on a crash loop.

``Services.supervise()`` starts a ``Supervisor`` thread. It polls the processes; when one has
exited it logs why, waits (exponential backoff) and starts it again, leaving the others alone.
When a service has been restarted ``max_restarts`` times within ``window_minutes`` and dies again,
the supervisor stops restarting it and says so once: a crash loop is reported, never looped.
"""
from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Deque, Dict, Optional, Set

from bot.settings import section

if TYPE_CHECKING:  # pragma: no cover
    from bot.services import Services

logger = logging.getLogger("mend.supervisor")


@dataclass(frozen=True)
class SupervisorSettings:
    max_restarts: int = 5            # restarts of one service within the window before giving up on it
    window_minutes: float = 10.0
    backoff_initial_seconds: float = 2.0   # first wait before a restart, doubled for each restart in the window
    backoff_max_seconds: float = 60.0
    poll_seconds: float = 0.5

    @classmethod
    def load(cls) -> "SupervisorSettings":
        """The ``supervisor`` section of the settings file (missing keys: the defaults above)."""
        raw = section("supervisor")
        defaults = cls()
        return cls(
            max_restarts=int(raw.get("max_restarts", defaults.max_restarts)),
            window_minutes=float(raw.get("window_minutes", defaults.window_minutes)),
            backoff_initial_seconds=float(raw.get("backoff_initial_seconds", defaults.backoff_initial_seconds)),
            backoff_max_seconds=float(raw.get("backoff_max_seconds", defaults.backoff_max_seconds)),
            poll_seconds=float(raw.get("poll_seconds", defaults.poll_seconds)),
        )

    def backoff(self, restart_number: int) -> float:
        """Seconds to wait before restart number ``restart_number`` (1-based) within the window."""
        return min(self.backoff_initial_seconds * 2 ** max(restart_number - 1, 0), self.backoff_max_seconds)


@dataclass
class _Watch:
    """What the supervisor knows about one service."""

    restarts: Deque[float] = field(default_factory=deque)  # monotonic times of restarts within the window
    restart_at: Optional[float] = None   # a restart is scheduled for this time
    dead_pid: Optional[int] = None       # the process that died (restart pending)
    awaiting_health_since: Optional[float] = None  # restarted, not answering yet
    given_up: bool = False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status < 500
    except OSError:
        return False


class Supervisor(threading.Thread):
    """A daemon thread restarting the services of one ``Services`` that die."""

    def __init__(self, services: "Services", settings: Optional[SupervisorSettings] = None,
                 report: Optional[Callable[[int, str], None]] = None) -> None:
        super().__init__(name="mend-supervisor", daemon=True)
        self.services = services
        self.settings = settings or SupervisorSettings.load()
        self._report = report or (lambda level, message: logger.log(level, message))
        self._stopping = threading.Event()
        self._watch: Dict[str, _Watch] = {}

    @property
    def given_up(self) -> Set[str]:
        """Services the supervisor stopped restarting (crash loop)."""
        return {name for name, watch in self._watch.items() if watch.given_up}

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                for name in self.services.names():
                    self._check(name, time.monotonic())
            except Exception:  # never let the supervisor itself die silently
                logger.exception("mend: supervisor check failed; continuing")
            self._stopping.wait(self.settings.poll_seconds)

    def _check(self, name: str, now: float) -> None:
        watch = self._watch.setdefault(name, _Watch())
        if watch.given_up or self.services.restarting(name):
            return
        window = self.settings.window_minutes * 60
        while watch.restarts and now - watch.restarts[0] > window:
            watch.restarts.popleft()
        if watch.restart_at is not None:
            if now >= watch.restart_at and not self._stopping.is_set():
                self._restart(name, watch, now)
            return
        if watch.awaiting_health_since is not None and self.services.alive(name):
            if _answers(self.services.health_url(name)):
                waited = now - watch.awaiting_health_since
                self._report(logging.WARNING, f"mend: {name} (pid {self.services.pid(name)}) is back and answering "
                                              f"after {waited:.0f} s")
                watch.awaiting_health_since = None
            return
        code = self.services.exit_code(name)
        if code is None:
            return
        pid = self.services.pid(name)
        watch.awaiting_health_since = None
        minutes = f"{self.settings.window_minutes:g} min"
        log = self.services.log_path(name)
        if len(watch.restarts) >= self.settings.max_restarts:
            watch.given_up = True
            self._report(logging.ERROR,
                         f"mend: {name} (pid {pid}) exited with code {code}; it was restarted {len(watch.restarts)} "
                         f"times within {minutes}: giving up on {name}, not restarting it again. The other services "
                         f"keep running; see {log}, fix the cause and restart Mend.")
            return
        number = len(watch.restarts) + 1
        delay = self.settings.backoff(number)
        watch.restart_at, watch.dead_pid = now + delay, pid
        self._report(logging.WARNING,
                     f"mend: {name} (pid {pid}) exited with code {code}; restarting in {delay:g} s, "
                     f"restart {number} of {self.settings.max_restarts} within {minutes} (log: {log})")

    def _restart(self, name: str, watch: _Watch, now: float) -> None:
        watch.restart_at = None
        watch.restarts.append(now)  # counted before trying: a restart that cannot even spawn counts too
        pid = self.services.respawn_if_dead(name, watch.dead_pid)
        if pid is None:
            watch.restarts.pop()  # brought back meanwhile by someone else (Services.restart)
            return
        watch.awaiting_health_since = time.monotonic()
        self._report(logging.WARNING, f"mend: {name} restarted as pid {pid}; waiting for it to answer")
