"""Supervision: a service that dies is restarted with backoff; a crash loop is given up and reported.

Real processes: an action server and a Rasa server of their own (ports MEND_TEST_PORT_BASE+20 and
+70), killed with SIGKILL as a crash would.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
import urllib.request
from typing import Iterator, List, Tuple

import pytest

from bot.services import Services
from bot.supervisor import SupervisorSettings
from tests.conftest import _reset

FAST = SupervisorSettings(max_restarts=2, window_minutes=10, backoff_initial_seconds=0.5, backoff_max_seconds=1.0,
                          poll_seconds=0.2)


class Reports:
    """What the supervisor reported, as an operator reads it on the terminal."""

    def __init__(self) -> None:
        self.lines: List[Tuple[int, str]] = []
        self._lock = threading.Lock()

    def __call__(self, level: int, message: str) -> None:
        with self._lock:
            self.lines.append((level, message))

    def text(self) -> str:
        with self._lock:
            return "\n".join(message for _, message in self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no report matching {pattern!r} within {timeout:.0f}s; reports:\n{self.text()}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[Services]:
    directory = tmp_path_factory.mktemp("supervised")
    url = f"sqlite:///{directory / 'mend.db'}"
    _reset(url)
    base = int(os.environ.get("MEND_TEST_PORT_BASE", "5305")) + 20
    running = Services(rasa_port=base, actions_port=base + 50, tracker_db=directory / "tracker.db",
                       env={"MEND_DATABASE_URL": url}, log_dir=directory / "log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_killed_action_server_is_restarted_and_answers_again(services: Services) -> None:
    reports = Reports()
    services.supervise(FAST, reports)
    try:
        killed = services.pid("actions")
        rasa = services.pid("rasa")
        services.kill("actions", signal.SIGKILL)
        line = reports.wait_for(rf"mend: actions \(pid {killed}\) exited with code -9; restarting in 0\.5 s, "
                                rf"restart 1 of 2 within 10 min", 10)
        assert line
        reports.wait_for(r"mend: actions \(pid \d+\) is back and answering", 60)
        assert services.pid("actions") != killed
        assert answers(f"{services.actions_url}/health")
        assert services.pid("rasa") == rasa and services.exit_code("rasa") is None  # the others were left alone
    finally:
        services.stop_supervising()


def test_restart_brings_a_service_back_and_kill_takes_a_signal(services: Services) -> None:
    before = services.pid("actions")
    services.kill("actions", signal.SIGTERM)
    deadline = time.monotonic() + 20
    while services.exit_code("actions") is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert services.exit_code("actions") is not None and not answers(f"{services.actions_url}/health")
    after = services.restart("actions", timeout=60)
    assert after == services.pid("actions") != before
    assert answers(f"{services.actions_url}/health")
    with pytest.raises(KeyError):
        services.pid("nonsense")


def test_a_deliberate_restart_is_not_reported_as_a_crash(services: Services) -> None:
    reports = Reports()
    services.supervise(FAST, reports)
    try:
        before = services.pid("actions")
        after = services.restart("actions", timeout=60)
        time.sleep(2)  # several supervisor polls
        assert after != before and services.pid("actions") == after and services.exit_code("actions") is None
        assert "exited" not in reports.text() and "restarted as" not in reports.text()
    finally:
        services.stop_supervising()


def test_crash_loop_is_given_up_and_reported_while_the_others_stay_up(services: Services) -> None:
    reports = Reports()
    rasa = services.pid("rasa")
    healthy_package = services.actions_package
    services.actions_package = "mend_no_such_actions_package"  # every start of the action server fails at once
    services.supervise(FAST, reports)
    try:
        services.kill("actions")
        given_up = reports.wait_for(r"mend: actions \(pid (\d+)\) exited with code 1; it was restarted 2 times within "
                                    r"10 min: giving up on actions, not restarting it again", 60)
        assert services.supervisor is not None and services.supervisor.given_up == {"actions"}
        # Backoff doubled (0.5 s, then 1 s) and the count is reported with each restart.
        text = reports.text()
        assert "restarting in 0.5 s, restart 1 of 2 within 10 min" in text
        assert "restarting in 1 s, restart 2 of 2 within 10 min" in text
        # Not looped: the dead action server stays dead, nothing more is reported about it.
        time.sleep(3)
        assert services.pid("actions") == int(given_up.group(1)) and services.exit_code("actions") == 1
        assert reports.text().count("restarting in") == 2
        # The other service kept running and answering, untouched.
        assert services.pid("rasa") == rasa and services.exit_code("rasa") is None
        assert answers(services.health_url("rasa"))
    finally:
        services.stop_supervising()
        services.actions_package = healthy_package
    services.restart("actions", timeout=60)  # leave the fixture healthy


def test_supervisor_reports_reach_the_log(services: Services, caplog: pytest.LogCaptureFixture) -> None:
    """Without a report callback the supervisor logs to "mend.supervisor" (python -m bot run shows it)."""
    caplog.set_level(logging.WARNING, logger="mend.supervisor")
    services.supervise(FAST)
    try:
        killed = services.pid("actions")
        services.kill("actions")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "is back and answering" not in caplog.text:
            time.sleep(0.2)
        assert f"mend: actions (pid {killed}) exited with code -9; restarting in 0.5 s" in caplog.text
        assert "is back and answering" in caplog.text
    finally:
        services.stop_supervising()


def test_settings_file_has_the_supervisor_section() -> None:
    settings = SupervisorSettings.load()
    assert settings.max_restarts >= 1 and settings.window_minutes > 0
    assert settings.backoff(1) == settings.backoff_initial_seconds
    assert settings.backoff(2) == min(2 * settings.backoff_initial_seconds, settings.backoff_max_seconds)
    assert settings.backoff(50) == settings.backoff_max_seconds
