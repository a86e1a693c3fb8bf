"""``python -m bot gateway``: serve the gateway until stopped; and demo accounts for ``make run``."""
from __future__ import annotations

import logging
import os
import secrets
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

from aiohttp import web

from bot.casedb.engine import session_scope
from bot.gateway.accounts import any_accounts, create_account
from bot.gateway.app import create_app
from bot.gateway.config import load_config
from bot.settings import PROJECT_ROOT

DEMO_ACCOUNTS_FILE = PROJECT_ROOT / "var" / "demo-accounts.txt"
DEMO_ACCOUNTS = [("maria", "Maria", "agent"), ("tom", "Tom", "trainer"), ("admin", "Admin", "admin")]


def serve(port: Optional[int] = None) -> None:
    logging.basicConfig(level=os.environ.get("MEND_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    warnings.filterwarnings("ignore", message=".*does \\*not\\* support Decimal objects natively")
    config = load_config()
    if port is not None:
        config.port = port
    web.run_app(create_app(config), host=config.host, port=config.port, print=None, access_log=None,
                shutdown_timeout=5)


def ensure_demo_accounts(path: Path = DEMO_ACCOUNTS_FILE) -> List[Tuple[str, str, str]]:
    """On a database without staff, create demo accounts with random passwords, written to a 0600 file."""
    with session_scope() as session:
        if any_accounts(session):
            return []
        created = []
        for username, name, role in DEMO_ACCOUNTS:
            password = secrets.token_urlsafe(12)
            create_account(session, username, password, role, name)
            created.append((username, password, role))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("# Demo staff accounts created by setup (change or remove them: python -m bot accounts --help)\n")
        for username, password, role in created:
            handle.write(f"{role:8} {username:8} {password}\n")
    return created
