"""A gateway setting it cannot run with stops ``python -m bot gateway`` at start with one line naming the
setting and its value (exit code 1), never a traceback, and never a gateway that starts and fails at the
first customer message (``MEND_RASA_URLS="not a url"`` used to be accepted silently)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
import yaml

from bot.gateway.config import ConfigError, load_config
from bot.settings import DEFAULT_FILE, PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_gateway(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m bot gateway --port N`` with these settings; a gateway that starts is stopped after 90 s
    (the test then fails: it accepted the setting)."""
    full: Dict[str, str] = {k: v for k, v in os.environ.items()
                            if not k.startswith(("MEND_RASA_URL", "MEND_RASA_DOWN", "MEND_SETTINGS_FILE"))}
    full.update(PYTHONPATH=str(PROJECT_ROOT), RASA_TELEMETRY_ENABLED="false",
                MEND_DATABASE_URL=f"sqlite:///{tmp_path / 'mend.db'}",  # nothing of the project's var/ is touched
                MEND_CUSTOMER_TOKEN_SECRET="config-errors-customer-secret-0123456789",
                MEND_SESSION_SECRET="config-errors-session-secret-0123456789", MEND_RASA_TOKEN="config-errors-token")
    full.update(env)
    try:
        return subprocess.run([sys.executable, "-m", "bot", "gateway", "--port", str(_free_port())],
                              cwd=PROJECT_ROOT, env=full, capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired as running:
        pytest.fail(f"the gateway started with {env} instead of refusing it; its output: {running.stderr!r}")


def _one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode != 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines: List[str] = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("mend: ")
    return lines[0]


def test_a_rasa_url_that_is_not_a_url_stops_the_gateway_at_start(tmp_path: Path) -> None:
    line = _one_line(_start_gateway(tmp_path, MEND_RASA_URLS="not a url"))
    assert "MEND_RASA_URLS" in line and "'not a url'" in line and "http://127.0.0.1:5005" in line


def test_the_bad_entry_of_a_list_of_rasa_urls_is_named(tmp_path: Path) -> None:
    # A forgotten http:// in the second entry: the first would have worked, the second failed later.
    line = _one_line(_start_gateway(tmp_path, MEND_RASA_URLS="http://127.0.0.1:5005,127.0.0.1:5006"))
    assert "MEND_RASA_URLS" in line and "'127.0.0.1:5006'" in line


def test_rasa_down_seconds_that_is_not_a_number_stops_the_gateway_at_start(tmp_path: Path) -> None:
    line = _one_line(_start_gateway(tmp_path, MEND_RASA_DOWN_SECONDS="soon"))
    assert "MEND_RASA_DOWN_SECONDS" in line and "'soon'" in line and "number of seconds" in line


def test_a_bad_value_in_the_settings_file_names_the_settings_key(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    data["gateway"]["rasa_down_seconds"] = "soon"
    settings = tmp_path / "settings.yml"
    settings.write_text(yaml.safe_dump(data), encoding="utf-8")
    line = _one_line(_start_gateway(tmp_path, MEND_SETTINGS_FILE=str(settings)))
    assert "gateway.rasa_down_seconds" in line and "'soon'" in line


@pytest.mark.parametrize("setting, value", [
    ("MEND_RASA_URLS", " , "),                     # names no server at all
    ("MEND_RASA_URLS", "ftp://127.0.0.1:5005"),    # not http(s)
    ("MEND_RASA_URLS", "http://127.0.0.1:notaport"),
    ("MEND_RASA_URLS", "http:///no-host"),
    ("MEND_RASA_URL", "http://127.0.0.1:5005 http://127.0.0.1:5006"),  # a space instead of a comma
    ("MEND_RASA_DOWN_SECONDS", "nan"),
    ("MEND_RASA_DOWN_SECONDS", "10s"),
])
def test_other_bad_values_are_refused_with_their_name(monkeypatch: pytest.MonkeyPatch, setting: str,
                                                      value: str) -> None:
    for name in ("MEND_RASA_URLS", "MEND_RASA_URL", "MEND_RASA_DOWN_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(setting, value)
    with pytest.raises(ConfigError) as refused:
        load_config(customer_token_secret="x" * 40, session_secret="y" * 40, rasa_token="t")
    assert refused.value.message.startswith(f"mend: {setting} ") and repr(value) in refused.value.message
    assert "\n" not in refused.value.message


def test_good_values_are_still_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEND_RASA_URL", raising=False)
    monkeypatch.setenv("MEND_RASA_URLS", " https://rasa-0.rasa:5005/ , http://rasa-1.rasa:5005,http://[::1]:5005")
    monkeypatch.setenv("MEND_RASA_DOWN_SECONDS", "2.5")
    config = load_config(customer_token_secret="x" * 40, session_secret="y" * 40, rasa_token="t")
    assert config.rasa_servers() == ["https://rasa-0.rasa:5005", "http://rasa-1.rasa:5005", "http://[::1]:5005"]
    assert config.rasa_down_seconds == 2.5
    monkeypatch.setenv("MEND_RASA_DOWN_SECONDS", "-1")  # never passed over, as before
    assert load_config(customer_token_secret="x" * 40, session_secret="y" * 40, rasa_token="t").rasa_down_seconds == 0


def test_a_redis_prefix_that_would_share_rasas_lock_keys_is_refused(monkeypatch) -> None:
    """With MEND_REDIS_PREFIX=mendrasa the gateways' conversation locks would be Rasa's lock keys, and
    Rasa would refuse every message (as it did when both used "mend")."""
    from bot.gateway.config import ConfigError
    from bot.gateway.fanout import FanoutSettings

    monkeypatch.setenv("MEND_REDIS_PREFIX", "mendrasa")
    with pytest.raises(ConfigError, match="MEND_REDIS_PREFIX 'mendrasa'"):
        FanoutSettings.from_env()
    monkeypatch.setenv("MEND_REDIS_PREFIX", "shop2")
    assert FanoutSettings.from_env().prefix == "shop2"
