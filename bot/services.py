"""Start and stop Mend's processes (action server, Rasa server, gateway).

Used by ``python -m bot run`` (``make run``), by the test suite and by the benchmark,
so all three run the product the same way.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from bot.settings import PROJECT_ROOT

LOOPBACK = "127.0.0.1"


def quiet_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for every process we start: no telemetry, no GPU probing noise."""
    env = dict(os.environ)
    env.update(RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", SANIC_HOST=LOOPBACK,
               PYTHONPATH=str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    env.update(extra or {})
    return env


def wait_for(url: str, timeout: float, process: Optional[subprocess.Popen] = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process for {url} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


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
    processes: List[subprocess.Popen] = field(default_factory=list)

    @property
    def rasa_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rasa_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{LOOPBACK}:{self.gateway_port}"

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
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def start(self, timeout: float = 240.0) -> "Services":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = quiet_env(self.env)
        python = sys.executable
        actions = subprocess.Popen(
            [python, "-m", "rasa_sdk", "--actions", "actions", "--port", str(self.actions_port)],
            cwd=PROJECT_ROOT, env=env, stdout=open(self.log_dir / f"actions-{self.actions_port}.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(actions)
        rasa = subprocess.Popen(
            [python, "-m", "rasa", "run", "--enable-api", "-i", LOOPBACK, "-p", str(self.rasa_port),
             "--model", str(self.model), "--endpoints", str(self.endpoints_file())],
            cwd=PROJECT_ROOT, env=env, stdout=open(self.log_dir / f"rasa-{self.rasa_port}.log", "w"),
            stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(rasa)
        gateway = None
        if self.gateway_port is not None:
            gateway = subprocess.Popen(
                [python, "-m", "bot", "gateway", "--port", str(self.gateway_port)], cwd=PROJECT_ROOT,
                env=dict(env, MEND_RASA_URL=self.rasa_url),
                stdout=open(self.log_dir / f"gateway-{self.gateway_port}.log", "w"),
                stderr=subprocess.STDOUT, start_new_session=True)
            self.processes.append(gateway)
        try:
            wait_for(f"http://{LOOPBACK}:{self.actions_port}/health", timeout, actions)
            wait_for(f"{self.rasa_url}/status", timeout, rasa)
            if gateway is not None:
                wait_for(f"{self.gateway_url}/healthz", timeout, gateway)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()

    def __enter__(self) -> "Services":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
