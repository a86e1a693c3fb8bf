"""``python -m bot run`` on a machine where Mend cannot come up in time says so in one line, stops what it
started and exits 1 (a traceback used to end `make run` on a busy machine)."""
from __future__ import annotations

import pytest

import bot.__main__ as cli
import bot.services
import bot.setup


def test_a_service_that_does_not_answer_in_time_is_one_clear_line(monkeypatch, capsys):
    started = []

    def start(self, timeout=240.0):
        started.append(timeout)
        raise TimeoutError("http://127.0.0.1:5005/ did not answer within 12s")

    monkeypatch.setattr(bot.setup, "setup_all", lambda: None)
    monkeypatch.setattr(bot.services.Services, "start", start)
    monkeypatch.setenv("MEND_START_TIMEOUT_SECONDS", "12")
    assert cli._run() == 1
    err = capsys.readouterr().err
    assert started == [12.0]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "did not answer within 12s" in err and "MEND_START_TIMEOUT_SECONDS" in err


def test_a_start_timeout_that_is_not_a_number_is_refused(monkeypatch):
    monkeypatch.setenv("MEND_START_TIMEOUT_SECONDS", "soon")
    with pytest.raises(SystemExit, match="must be a number of seconds"):
        cli.start_timeout()
