"""Mend's command line: ``python -m bot <command>``.

setup        create the spaCy pipeline, migrate and seed the database, train if needed
run          setup, then start the action server and Rasa on loopback until Ctrl-C
train        train the model now
db upgrade | db seed | db reset     manage the case database (MEND_DATABASE_URL)
evaluate     held-out NLU quality beside the VADER baseline
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from typing import Sequence

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _run() -> int:
    from bot.services import Services
    from bot.setup import setup_all

    setup_all()
    services = Services()
    print("mend: starting the action server and Rasa (loading the model takes about a minute)...")
    services.start()
    url = services.rasa_url
    print(f"""
mend is running.
  Talk to the bot through Rasa's REST channel, as a verified customer (Dana, order A1001):
    curl -s {url}/webhooks/rest/webhook -H 'Content-Type: application/json' \\
      -d '{{"sender": "demo-dana", "message": "where is my headphones order?!", "metadata": {{"customer_id": "cust-1001"}}}}'
  or anonymously (the bot asks for your email and order number, e.g. sam@example.com and B2002):
    curl -s {url}/webhooks/rest/webhook -H 'Content-Type: application/json' \\
      -d '{{"sender": "demo-anon", "message": "I was charged twice for my order"}}'
  Parse only:  curl -s {url}/model/parse -d '{{"text": "this is the THIRD time I ask, where is my parcel"}}'
  Logs: var/log/    Case database: var/mend.db    Stop: Ctrl-C
""", flush=True)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stopping:
            if any(p.poll() is not None for p in services.processes):
                print("mend: a service stopped unexpectedly; see var/log/", file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        print("mend: stopping...")
        services.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["setup", "run", "train", "db", "evaluate"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    if options.command == "setup":
        from bot.setup import setup_all

        setup_all()
        return 0
    if options.command == "run":
        return _run()
    if options.command == "train":
        from bot.setup import ensure_model

        ensure_model(force=True)
        return 0
    if options.command == "db":
        from bot.casedb.migrate import upgrade
        from bot.casedb.seed import seed

        action = options.args[0] if options.args else "upgrade"
        if action not in {"upgrade", "seed", "reset"}:
            parser.error("db takes upgrade, seed or reset")
        upgrade()
        if action in {"seed", "reset"}:
            print("seeded" if seed(reset=action == "reset") else "demo data already present")
        return 0
    from bot.nlu.evaluate import main as evaluate_main

    return evaluate_main(options.args)


if __name__ == "__main__":
    raise SystemExit(main())
