"""Nothing internal answers strangers; what Mend creates is the owner's only.

Rasa's HTTP API needs its auth token; the action server refuses calls without the shared token
(whatever command starts it) and binds loopback; a forged action call writes nothing; setup and
the running services create databases, secrets and logs without group or other permissions.
"""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest
from sqlalchemy import text

from bot.casedb.engine import session_scope
from bot.services import quiet_env
from bot.settings import PROJECT_ROOT
from tests.rest_client import Customer

PORT_BASE = int(os.environ.get("MEND_TEST_PORT_BASE", "5305"))


def call(url: str, payload: Optional[Any] = None, method: Optional[str] = None) -> Tuple[int, Any]:
    """Status and JSON body of a request, errors included (no token added)."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body or b"null")
        except ValueError:
            return error.code, body.decode("utf-8", "replace")
    except OSError as error:  # nothing listening
        return 0, str(error)


def listening_addresses(port: int) -> List[str]:
    """Local addresses (hex, as the kernel lists them) of TCP sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                address, hex_port = fields[1].rsplit(":", 1)
                if int(hex_port, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                    found.append(address)
    return found


LOOPBACK_HEX = "0100007F"  # 127.0.0.1 in /proc/net/tcp


def contacts(url: str, conversation_id: str) -> int:
    with session_scope(url) as session:
        return session.execute(text("SELECT COUNT(*) FROM case_contacts WHERE conversation_id = :c"),
                               {"c": conversation_id}).scalar_one()


def action_call(tracker: Dict[str, Any], sender_id: str, action: str = "action_handle_complaint") -> Dict[str, Any]:
    """The request Rasa sends to the action server (rasa.core.actions.action.RemoteAction)."""
    import rasa

    forged = dict(tracker, sender_id=sender_id)
    return {"next_action": action, "sender_id": sender_id, "tracker": forged, "domain": {}, "version": rasa.__version__}


# -- Rasa's HTTP API -----------------------------------------------------------------------------------------------

def test_rasa_http_api_needs_its_auth_token(live_bot):
    dana = Customer(live_bot.rasa_url, f"sec-{uuid.uuid4().hex[:10]}", "cust-1001")
    dana.say("where are my headphones?! a week late now")
    tracker_url = f"{live_bot.rasa_url}/conversations/{dana.sender}/tracker"
    for url, payload, method in [(tracker_url, None, "GET"),
                                 (f"{live_bot.rasa_url}/model/parse", {"text": "hello"}, "POST"),
                                 (f"{live_bot.rasa_url}/conversations/{dana.sender}/tracker/events", [], "PUT"),
                                 (f"{live_bot.rasa_url}/domain", None, "GET"),
                                 (f"{live_bot.rasa_url}/status", None, "GET")]:
        status, body = call(url, payload, method)
        assert status == 401, (url, status, body)
        status, body = call(url + "?token=not-the-token", payload, method)
        assert status == 401, (url, status, body)
    # Nothing was changed by the refused PUT: Dana's conversation is still there, read with the token.
    status, tracker = call(tracker_url + "?" + urllib.parse.urlencode({"token": live_bot.rasa_token}))
    assert status == 200 and any(e.get("event") == "user" for e in tracker["events"])


def test_rasa_server_refuses_to_start_without_its_token():
    env = _bare_env()
    result = subprocess.run([sys.executable, "-m", "bot.rasa_server", "--enable-api", "-p", str(PORT_BASE + 64)],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "MEND_RASA_TOKEN is not set: refusing to start Rasa's HTTP API without an auth token" in result.stderr


def test_tokens_are_not_on_any_command_line(live_bot):
    """Every local user can read /proc/PID/cmdline (ps): the secrets travel in the environment only."""
    for name in ("rasa", "actions"):
        with open(f"/proc/{live_bot.pid(name)}/cmdline", "rb") as handle:
            command = handle.read().decode("utf-8", "replace")
        assert live_bot.rasa_token not in command and live_bot.action_token not in command, name


def test_rasa_and_action_server_listen_on_loopback_only(live_bot):
    for port in (live_bot.rasa_port, live_bot.actions_port):
        addresses = listening_addresses(port)
        assert addresses and set(addresses) == {LOOPBACK_HEX}, (port, addresses)


# -- the action server ---------------------------------------------------------------------------------------------

def test_forged_action_call_is_refused_and_writes_nothing(live_bot):
    dana = Customer(live_bot.rasa_url, f"sec-{uuid.uuid4().hex[:10]}", "cust-1001")
    dana.say("where are my headphones?! a week late now")
    tracker = dana.tracker()
    forged_id = f"forged-{uuid.uuid4().hex[:10]}"
    webhook = f"{live_bot.actions_url}/webhook"

    status, body = call(webhook, action_call(tracker, forged_id))
    assert status == 401 and body["code"] == "token_missing" and "token" in body["error"]
    status, body = call(webhook + "?token=guess", action_call(tracker, forged_id))
    assert status == 403 and body["code"] == "token_wrong"
    status, body = call(f"{live_bot.actions_url}/actions")
    assert status == 401
    assert contacts(live_bot.case_db_url, forged_id) == 0  # nothing of Dana's case was read or written

    # With the token (what Rasa sends) the same call runs: Dana's case gets this conversation as a contact.
    status, body = call(webhook + "?" + urllib.parse.urlencode({"token": live_bot.action_token}),
                        action_call(tracker, forged_id))
    assert status == 200 and body["responses"], body
    assert contacts(live_bot.case_db_url, forged_id) == 1
    status, _ = call(f"{live_bot.actions_url}/health")
    assert status == 200  # health stays open for supervision


def _start_action_server(command: List[str], env: Dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _wait_health(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        if call(f"http://127.0.0.1:{port}/health")[0] == 200:
            return
        time.sleep(0.3)
    raise AssertionError(f"action server on {port} did not answer within {timeout:.0f}s")


@pytest.fixture
def stop_later() -> Iterator[List[subprocess.Popen]]:
    started: List[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait(10)


def _bare_env(**extra: str) -> Dict[str, str]:
    """The environment of someone starting the action server by hand: no SANIC_HOST, no Mend secrets."""
    env = quiet_env()
    for name in ("SANIC_HOST", "MEND_ACTION_TOKEN", "MEND_RASA_TOKEN", "MEND_ACTIONS_ALLOW_UNAUTHENTICATED"):
        env.pop(name, None)
    env.update(extra)
    return env


@pytest.mark.parametrize("how", ["rasa_sdk", "rasa run actions"])
def test_action_server_started_by_hand_binds_loopback_and_needs_the_token(how, stop_later):
    port = PORT_BASE + 60 + (0 if how == "rasa_sdk" else 1)
    command = ([sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)] if how == "rasa_sdk"
               else [sys.executable, "-m", "rasa", "run", "actions", "--actions", "actions", "--port", str(port)])
    token = uuid.uuid4().hex
    process = _start_action_server(command, _bare_env(MEND_ACTION_TOKEN=token))
    stop_later.append(process)
    _wait_health(port, process)
    assert set(listening_addresses(port)) == {LOOPBACK_HEX}
    assert call(f"http://127.0.0.1:{port}/actions")[0] == 401
    assert call(f"http://127.0.0.1:{port}/webhook", {"next_action": "action_handoff"})[0] == 401
    status, actions = call(f"http://127.0.0.1:{port}/actions?token={token}")
    assert status == 200 and {"name": "action_handle_complaint"} in actions


def test_action_server_without_a_token_refuses_to_start(stop_later):
    port = PORT_BASE + 62
    process = _start_action_server([sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
                                   _bare_env())
    stop_later.append(process)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 78, output
    assert "MEND_ACTION_TOKEN is not set: the action server refuses to start" in output
    assert call(f"http://127.0.0.1:{port}/health")[0] != 200


def test_development_opt_out_serves_without_a_token(stop_later):
    port = PORT_BASE + 63
    process = _start_action_server([sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
                                   _bare_env(MEND_ACTIONS_ALLOW_UNAUTHENTICATED="1"))
    stop_later.append(process)
    _wait_health(port, process)
    assert call(f"http://127.0.0.1:{port}/actions")[0] == 200
    assert set(listening_addresses(port)) == {LOOPBACK_HEX}  # still loopback


# -- owner-only files ----------------------------------------------------------------------------------------------

def loose_permissions(*roots: Path) -> List[str]:
    """Every path under the roots (roots included) with a group or other permission bit."""
    loose = []
    for root in roots:
        paths = [root] + (sorted(root.rglob("*")) if root.is_dir() else [])
        for path in paths:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                loose.append(f"{path} {stat.filemode(mode)}")
    return loose


def test_running_services_create_owner_only_files(live_bot):
    Customer(live_bot.rasa_url, f"sec-{uuid.uuid4().hex[:10]}", "cust-1002").say("I was charged twice!")
    tracker_files = [p for p in live_bot.tracker_db.parent.glob(live_bot.tracker_db.name + "*")]
    assert live_bot.tracker_db in tracker_files
    assert not loose_permissions(live_bot.log_dir, *tracker_files)


def test_fresh_setup_creates_owner_only_files_and_tightens_old_ones(tmp_path):
    """`python -m bot setup` in a fresh copy of the project (as a new clone would run it)."""
    from bot.setup import FINGERPRINT, training_fingerprint

    if not FINGERPRINT.exists() or FINGERPRINT.read_text().strip() != training_fingerprint():
        pytest.fail("the model is out of date with its training inputs: run `make setup` first")
    root = tmp_path / "mend"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("bot", "actions", "data"):
        shutil.copytree(PROJECT_ROOT / folder, root / folder, ignore=ignore)
    for name in ("config.yml", "domain.yml", "endpoints.yml"):
        shutil.copy2(PROJECT_ROOT / name, root / name)
    (root / "models").mkdir()
    for name in ("mend.tar.gz", "mend.fingerprint"):
        (root / "models" / name).symlink_to(PROJECT_ROOT / "models" / name)
    # Left over from an older Mend: a world-readable var/, case database and log.
    var = root / "var"
    (var / "log").mkdir(parents=True)
    sqlite3.connect(var / "mend.db").close()
    (var / "log" / "train.log").write_text("old log\n")
    for path, mode in ((var, 0o755), (var / "log", 0o755), (var / "mend.db", 0o644), (var / "log" / "train.log", 0o644)):
        path.chmod(mode)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEND_")}
    env.update(PYTHONPATH=str(root), RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-m", "bot", "setup"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "training the model" not in result.stdout
    for created in ("secrets.json", "demo-accounts.txt", "mend.db", "spacy"):
        assert (var / created).exists(), created
    assert set(json.loads((var / "secrets.json").read_text())) >= {"rasa_token", "action_token",
                                                                  "customer_token_secret", "session_secret"}
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    assert not loose_permissions(var)
