"""Start, stop, kill, restart and supervise Mend's processes (action server, Rasa server, gateway).

Used by ``python -m bot run`` (``make run``), by the test suite and by the benchmark,
so all three run the product the same way. Rasa and the action server listen on loopback only
and each needs its shared secret: Rasa's HTTP API its auth token (``MEND_RASA_TOKEN``), the action
server the token Rasa sends with every action call (``MEND_ACTION_TOKEN``). Both are taken from
the environment or generated into ``var/secrets.json`` (see ``bot.gateway.config.secret``).
Every process is started with umask 077: what it creates is readable by the owner only.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Dict, List, Optional, Tuple

from bot.settings import PROJECT_ROOT

if TYPE_CHECKING:  # pragma: no cover
    from bot.supervisor import Supervisor, SupervisorSettings

LOOPBACK = "127.0.0.1"
SERVICE_NAMES = ("actions", "rasa", "gateway")
OWNER_ONLY_UMASK = 0o077


def quiet_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for every process we start: no telemetry, no GPU probing noise, the shared secrets."""
    from bot.gateway.config import secret

    env = dict(os.environ)
    env.update(RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", SANIC_HOST=LOOPBACK,
               PYTHONPATH=str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    env.update(extra or {})
    # Rasa reads the action token from endpoints.yml (${MEND_ACTION_TOKEN}); the action server checks it.
    env.setdefault("MEND_ACTION_TOKEN", secret("action_token"))
    env.setdefault("MEND_RASA_TOKEN", secret("rasa_token"))
    return env


def wait_for(url: str, timeout: float, process: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {_without_token(url)} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{_without_token(url)} did not answer within {timeout:.0f}s")


def _without_token(url: str) -> str:
    return url.split("?", 1)[0]


def _owner_only_log(path: Path, append: bool) -> IO[bytes]:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab" if append else "wb")


@dataclass
class Services:
    """The running product: action server and Rasa on loopback, and optionally the gateway in front."""

    model: Path = PROJECT_ROOT / "models" / "mend.tar.gz"
    rasa_port: int = 5005
    actions_port: int = 5055
    endpoints: Optional[Path] = None
    tracker_db: Optional[Path] = None  # another SQLite tracker store (tests, benchmark)
    env: Dict[str, str] = field(default_factory=dict)
    log_dir: Path = PROJECT_ROOT / "var" / "log"
    gateway_port: Optional[int] = None  # also start the gateway (the only public port) on this port
    processes: List[subprocess.Popen] = field(default_factory=list)  # in start order: actions, rasa, gateway
    actions_package: str = "actions"  # the Python package the action server loads
    rasa_token: str = ""    # "" = MEND_RASA_TOKEN from env, else generated into var/secrets.json
    action_token: str = ""  # "" = MEND_ACTION_TOKEN from env, else generated into var/secrets.json

    def __post_init__(self) -> None:
        from bot.gateway.config import secret

        self.rasa_token = self.rasa_token or self.env.get("MEND_RASA_TOKEN") or secret("rasa_token")
        self.action_token = self.action_token or self.env.get("MEND_ACTION_TOKEN") or secret("action_token")
        self._by_name: Dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()
        self._supervisor: Optional["Supervisor"] = None
        self._restarting: set = set()  # names being restarted by restart(): their exit is expected

    @property
    def rasa_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rasa_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{LOOPBACK}:{self.gateway_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{LOOPBACK}:{self.actions_port}"

    def endpoints_file(self) -> Path:
        """The endpoints file this Rasa runs with (tests and benchmarks get their own copy)."""
        if self.endpoints is not None:
            return self.endpoints
        if self.actions_port == 5055 and self.tracker_db is None:
            return PROJECT_ROOT / "endpoints.yml"
        # Tests and benchmark: the same endpoints, pointing at their own action server and tracker store.
        text = (PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8").replace(
            f"{LOOPBACK}:5055", f"{LOOPBACK}:{self.actions_port}")
        if self.tracker_db is not None:
            text = text.replace('db: "var/tracker.db"', f'db: "{self.tracker_db}"')
        path = self.log_dir / f"endpoints-{self.rasa_port}.yml"
        with _owner_only_log(path, append=False) as handle:
            handle.write(text.encode("utf-8"))
        return path

    # -- what each service is ---------------------------------------------------------------------------------

    def names(self) -> Tuple[str, ...]:
        """The services this instance runs, in start order."""
        return SERVICE_NAMES if self.gateway_port is not None else SERVICE_NAMES[:2]

    def log_path(self, name: str) -> Path:
        port = {"actions": self.actions_port, "rasa": self.rasa_port, "gateway": self.gateway_port}[name]
        return self.log_dir / f"{name}-{port}.log"

    def health_url(self, name: str) -> str:
        """A URL that answers (status < 500) once the service is ready."""
        if name == "actions":
            return f"{self.actions_url}/health"
        if name == "rasa":
            return f"{self.rasa_url}/status?" + urllib.parse.urlencode({"token": self.rasa_token})
        if name == "gateway":
            return f"{self.gateway_url}/healthz"
        raise KeyError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")

    def _command(self, name: str) -> Tuple[List[str], Dict[str, str]]:
        python = sys.executable
        env = quiet_env(dict(self.env, MEND_RASA_TOKEN=self.rasa_token, MEND_ACTION_TOKEN=self.action_token))
        if name == "actions":
            return [python, "-m", "rasa_sdk", "--actions", self.actions_package, "--port", str(self.actions_port)], env
        if name == "rasa":
            # bot.rasa_server is `rasa run` with --auth-token from MEND_RASA_TOKEN (never on the command line).
            return [python, "-m", "bot.rasa_server", "--enable-api", "-i", LOOPBACK, "-p", str(self.rasa_port),
                    "--model", str(self.model), "--endpoints", str(self.endpoints_file())], env
        if name == "gateway":
            return [python, "-m", "bot", "gateway", "--port", str(self.gateway_port)], dict(env, MEND_RASA_URL=self.rasa_url)
        raise KeyError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")

    def _spawn(self, name: str, append_log: bool) -> subprocess.Popen:
        command, env = self._command(name)
        with _owner_only_log(self.log_path(name), append=append_log) as log:
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True, umask=OWNER_ONLY_UMASK)
        with self._lock:
            old = self._by_name.get(name)
            self._by_name[name] = process
            if old is not None and old in self.processes:
                self.processes[self.processes.index(old)] = process
            else:
                self.processes.append(process)
        return process

    # -- the interface of make run, the tests and the fault suite ------------------------------------------

    def start(self, timeout: float = 240.0) -> "Services":
        self.launch()
        try:
            self.wait_ready(timeout)
        except Exception:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Start every service without waiting (the scaled layout starts all replicas at once)."""
        self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in self.names():
            self._spawn(name, append_log=False)

    def wait_ready(self, timeout: float = 240.0) -> None:
        """Wait until every launched service answers (raises if one exits or stays silent)."""
        for name in self.names():
            wait_for(self.health_url(name), timeout, self._by_name[name])

    def _process(self, name: str) -> subprocess.Popen:
        if name not in SERVICE_NAMES:
            raise KeyError(f"unknown service {name!r}; one of {', '.join(SERVICE_NAMES)}")
        with self._lock:
            process = self._by_name.get(name)
        if process is None:
            raise LookupError(f"{name} is not running under these Services (not started, or no gateway port)")
        return process

    def pid(self, name: str) -> int:
        """The process id of a service ("actions", "rasa" or "gateway"), the latest one if it was restarted."""
        return self._process(name).pid

    def alive(self, name: str) -> bool:
        return self._process(name).poll() is None

    def exit_code(self, name: str) -> Optional[int]:
        """None while the service runs; its exit code (negative: killed by that signal) once it has stopped."""
        return self._process(name).poll()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send a signal to a service's whole process group (default: SIGKILL, as a crash would)."""
        process = self._process(name)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass

    def restart(self, name: str, timeout: float = 240) -> int:
        """Start a service again (stopping it first if it still runs) and wait until it answers; its new pid."""
        old = self._process(name)
        with self._lock:
            self._restarting.add(name)
        try:
            self._terminate([old])
            with self._lock:
                current = self._by_name[name]
                alive = current is not old and current.poll() is None
                process = current if alive else self._spawn(name, append_log=True)
        finally:
            with self._lock:
                self._restarting.discard(name)
        wait_for(self.health_url(name), timeout, process)
        return process.pid

    def restarting(self, name: str) -> bool:
        """Whether restart() is bringing this service down and up right now (the supervisor keeps out)."""
        with self._lock:
            return name in self._restarting

    def respawn_if_dead(self, name: str, dead_pid: Optional[int]) -> Optional[int]:
        """Start a service again if the process that died is still the current one; its new pid, else None."""
        with self._lock:
            current = self._process(name)
            if current.poll() is None or (dead_pid is not None and current.pid != dead_pid):
                return None  # someone (restart()) already brought it back
            return self._spawn(name, append_log=True).pid

    def supervise(self, settings: Optional["SupervisorSettings"] = None,
                  report: Optional[Callable[[int, str], None]] = None) -> "Supervisor":
        """Start the background supervisor (bot.supervisor) that restarts services that die; stop() stops it."""
        from bot.supervisor import Supervisor

        if self._supervisor is not None and self._supervisor.is_alive():
            return self._supervisor
        self._supervisor = Supervisor(self, settings, report)
        self._supervisor.start()
        return self._supervisor

    @property
    def supervisor(self) -> Optional["Supervisor"]:
        return self._supervisor

    def stop_supervising(self) -> None:
        """Stop the supervisor thread (the services keep running)."""
        if self._supervisor is not None:
            self._supervisor.stop()
            self._supervisor = None

    def stop(self) -> None:
        self.stop_supervising()
        with self._lock:
            processes = list(self.processes)
        self._terminate(list(reversed(processes)))
        with self._lock:
            self.processes.clear()
            self._by_name.clear()

    @staticmethod
    def _terminate(processes: List[subprocess.Popen]) -> None:
        for process in processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)

    def __enter__(self) -> "Services":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
