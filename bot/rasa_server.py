"""``python -m bot.rasa_server [rasa run options]``: Rasa's ``rasa run`` with its HTTP API's auth token.

The token comes from ``MEND_RASA_TOKEN`` and is handed to Rasa as ``--auth-token`` inside this
process, so it never appears on a command line (which every local user can read with ``ps``).
Without ``-i`` it listens on 127.0.0.1 only (plain ``rasa run`` listens on every interface).
Files the server creates (the SQLite tracker store, its logs) are the owner's only (umask 077).
"""
from __future__ import annotations

import os
import sys
from typing import List, Optional, Sequence


def rasa_argv(options: Sequence[str], token: str) -> List[str]:
    if any(option == "--auth-token" or option.startswith("--auth-token=") for option in options):
        raise SystemExit("mend: pass Rasa's auth token in MEND_RASA_TOKEN, not on the command line")
    interface = any(option in {"-i", "--interface"} or option.startswith("--interface=") for option in options)
    loopback = [] if interface else ["-i", "127.0.0.1"]  # Rasa's own default is every interface
    return ["rasa", "run", *options, *loopback, "--auth-token", token]


def main(argv: Optional[Sequence[str]] = None) -> None:
    os.umask(0o077)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    token = os.environ.get("MEND_RASA_TOKEN", "")
    if not token:
        raise SystemExit("mend: MEND_RASA_TOKEN is not set: refusing to start Rasa's HTTP API without an auth "
                         "token (python -m bot run sets it from var/secrets.json)")
    sys.argv = rasa_argv(list(sys.argv[1:] if argv is None else argv), token)
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
