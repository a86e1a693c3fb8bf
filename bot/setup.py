"""Everything `make run` and `make test` prepare before starting: secrets, spaCy, database, model.

Each step is idempotent and cheap when nothing changed, so it runs on every start. Everything
under var/ (databases, secrets, demo passwords, logs) is made the owner's only on every setup.
"""
from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Iterable, List, Optional

from bot.settings import PROJECT_ROOT

MODEL = PROJECT_ROOT / "models" / "mend.tar.gz"
VAR = PROJECT_ROOT / "var"
SECRETS = ("rasa_token", "action_token", "customer_token_secret", "session_secret")
FINGERPRINT = PROJECT_ROOT / "models" / "mend.fingerprint"
TRAINING_INPUTS = ("config.yml", "domain.yml", "data", "bot/nlu", "bot/dialogue")


def _files(paths: Iterable[str]) -> List[Path]:
    found: List[Path] = []
    for name in paths:
        path = PROJECT_ROOT / name
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        elif path.exists():
            found.append(path)
    return found


def training_fingerprint() -> str:
    """A hash of everything that changes the trained model: data, config, domain, NLU and dialogue code."""
    digest = hashlib.sha256()
    for path in _files(TRAINING_INPUTS):
        digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _owner_only(path: Path) -> None:
    """Drop group and other permission bits (never following a symlink)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISLNK(mode) and mode & 0o077:
        path.chmod(stat.S_IMODE(mode) & ~0o077)


def _sqlite_file(url: str) -> Optional[Path]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def secure_files(var: Path = VAR) -> None:
    """var/ 0700 and everything in it owner-only; also a SQLite case database kept elsewhere (+ its journals)."""
    from bot.settings import database_url

    var.mkdir(mode=0o700, parents=True, exist_ok=True)
    _owner_only(var)
    for folder, dirs, files in os.walk(var):
        for name in dirs + files:
            _owner_only(Path(folder) / name)
    database = _sqlite_file(database_url())
    if database is not None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            _owner_only(database.with_name(database.name + suffix))


def ensure_secrets() -> None:
    """Generate the secrets not given in the environment into var/secrets.json (0600), once."""
    from bot.gateway.config import secret

    for name in SECRETS:
        secret(name)


def ensure_spacy() -> None:
    from bot.nlu.spacy_model import DEFAULT_PATH, build_blank_pipeline

    if not (DEFAULT_PATH / "meta.json").exists():
        print(f"mend: creating the blank English spaCy pipeline in {DEFAULT_PATH.relative_to(PROJECT_ROOT)}")
        build_blank_pipeline(DEFAULT_PATH)


def ensure_database(url: Optional[str] = None) -> None:
    from bot.casedb.migrate import upgrade
    from bot.casedb.seed import seed

    upgrade(url)
    if seed(url):
        print("mend: seeded the demo customers (cust-1001 to cust-1005)")
    from bot.casedb.engine import session_scope
    from bot.gateway.canned import seed_defaults

    with session_scope(url) as session:  # only into an empty table: an admin's deletions stay deleted
        if seed_defaults(session):
            print("mend: added the default canned replies (/hello, /sorry, /track, /case, /bye)")


def ensure_model(force: bool = False) -> bool:
    """Train when the model is missing or its inputs changed; return whether it trained."""
    fingerprint = training_fingerprint()
    if not force and MODEL.exists() and FINGERPRINT.exists() and FINGERPRINT.read_text().strip() == fingerprint:
        return False
    ensure_spacy()
    print("mend: training the model (data, config or NLU code changed); this takes a few minutes")
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = PROJECT_ROOT / "var" / "log" / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        result = subprocess.run(
            [sys.executable, "-m", "rasa", "train", "--fixed-model-name", "mend", "--out", "models",
             "--config", "config.yml", "--domain", "domain.yml", "--data", "data"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0 or not MODEL.exists():
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise SystemExit("mend: training failed; last lines of var/log/train.log:\n" + "\n".join(tail))
    FINGERPRINT.write_text(fingerprint)
    return True


def setup_all() -> None:
    secure_files()
    ensure_secrets()
    ensure_spacy()
    ensure_database()
    from bot.gateway.server import DEMO_ACCOUNTS_FILE, ensure_demo_accounts

    if ensure_demo_accounts():
        print(f"mend: created demo staff accounts; their passwords are in {DEMO_ACCOUNTS_FILE.relative_to(PROJECT_ROOT)}")
    ensure_model()
    secure_files()
