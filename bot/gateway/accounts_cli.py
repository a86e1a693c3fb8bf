"""``python -m bot accounts``: create staff accounts and set passwords (the password is read, never an argument)."""
from __future__ import annotations

import argparse
import getpass
import sys
from typing import Sequence

from bot.casedb.engine import session_scope
from bot.casedb.migrate import upgrade
from bot.casedb.models import Account
from bot.gateway.accounts import ROLES, AccountError, create_account, set_password


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise AccountError("the passwords differ")
    return first


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot accounts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create an account")
    create.add_argument("username")
    create.add_argument("--role", choices=ROLES, default="agent")
    create.add_argument("--name", help="display name shown to customers (default: the username)")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    password = commands.add_parser("password", help="set a new password")
    password.add_argument("username")
    password.add_argument("--password-stdin", action="store_true")
    commands.add_parser("list", help="list accounts")
    options = parser.parse_args(list(argv))
    upgrade()
    try:
        if options.command == "list":
            with session_scope() as session:
                for account in session.query(Account).order_by(Account.username):
                    state = " (disabled)" if account.disabled else ""
                    print(f"{account.role:8} {account.username:20} {account.display_name}{state}")
            return 0
        secret = _read_password(options.password_stdin)
        with session_scope() as session:
            if options.command == "create":
                staff = create_account(session, options.username, secret, options.role, options.name)
                print(f"created {staff.role} {staff.username}")
            else:
                set_password(session, options.username, secret)
                print(f"password changed for {options.username}")
    except AccountError as error:
        print(f"accounts: {error}", file=sys.stderr)
        return 2
    return 0
