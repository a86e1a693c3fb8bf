"""Mend's command line: ``python -m bot <command>``.

setup        create the spaCy pipeline, migrate and seed the database, train if needed
run          setup, then start the action server, Rasa (loopback) and the gateway until Ctrl-C;
             a service that dies is restarted (with backoff; a crash loop is given up and reported)
run --replicas N   the scaled layout: N action servers, N Rasa servers, N gateways (8080, 8081, ...)
             on PostgreSQL, Redis and RabbitMQ (MEND_DATABASE_URL, MEND_REDIS_URL, MEND_AMQP_URL)
secrets      print `export MEND_RASA_TOKEN=... MEND_ACTION_TOKEN=...` for scripts and hand-started servers
gateway [--port N]   serve only the gateway (Rasa must be running)
accounts create|password|list      manage staff accounts (agents, trainers, admins)
replay PATH... | --conversation ID   replay test stories or a recorded conversation turn by turn
train        train the model now
db upgrade | db seed | db reset     manage the case database (MEND_DATABASE_URL)
evaluate     held-out NLU quality beside the VADER baseline (--suggestions: agent-assist suggestions)
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from typing import Sequence

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.umask(0o077)  # databases, secrets and logs created by any `python -m bot` command: the owner's only


def _internal_tokens() -> None:
    """Rasa's auth token and the action server's token for this process and its children.

    endpoints.yml names ``${MEND_ACTION_TOKEN}``, so every command reading it (replay) needs it set.
    """
    from bot.gateway.config import secret

    os.environ.setdefault("MEND_RASA_TOKEN", secret("rasa_token"))
    os.environ.setdefault("MEND_ACTION_TOKEN", secret("action_token"))


def _supervisor_log(path: "os.PathLike[str]") -> None:
    """The supervisor's reports on the terminal and in var/log/supervisor.log."""
    log = logging.getLogger("mend.supervisor")
    log.setLevel(logging.INFO)
    log.propagate = False
    terminal = logging.StreamHandler(sys.stderr)
    terminal.setFormatter(logging.Formatter("%(message)s"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    to_file = logging.StreamHandler(os.fdopen(fd, "a", encoding="utf-8"))
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(terminal)
    log.addHandler(to_file)


def _run() -> int:
    from bot.gateway.config import load_config
    from bot.gateway.server import DEMO_ACCOUNTS_FILE
    from bot.services import Services
    from bot.setup import setup_all

    setup_all()
    config = load_config()
    services = Services(gateway_port=config.port)
    print("mend: starting the action server, Rasa and the gateway (loading the model takes about a minute)...")
    timeout = start_timeout()
    try:
        services.start(timeout)  # stops what it started when a service fails to come up
    except KeyboardInterrupt:
        print("mend: interrupted while starting; stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as error:
        print(f"mend: Mend did not come up: {error} (logs in var/log/; on a busy machine allow longer "
              f"with MEND_START_TIMEOUT_SECONDS, now {timeout:.0f})", file=sys.stderr)
        return 1
    base = config.base_url
    accounts = DEMO_ACCOUNTS_FILE.read_text(encoding="utf-8") if DEMO_ACCOUNTS_FILE.exists() else ""
    print(f"""
mend is running.
  Demo shop with the chat widget:   {base}/              (as a signed-in customer: {base}/?as=cust-1001)
  Agent console:                    {base}/console
  Trainer page:                     {base}/trainer
  Staff logins ({DEMO_ACCOUNTS_FILE.relative_to(DEMO_ACCOUNTS_FILE.parents[1])}; more with: python -m bot accounts create NAME --role agent):
{"".join("    " + line + chr(10) for line in accounts.splitlines() if line and not line.startswith("#"))}
  Rasa (loopback only, for scripts): {services.rasa_url}/webhooks/rest/webhook
    (its HTTP API needs ?token=$MEND_RASA_TOKEN: eval "$(.venv/bin/python -m bot secrets)")
  A service that dies is restarted (var/log/supervisor.log).
  Logs: var/log/    Case database: var/mend.db    Stop: Ctrl-C
""", flush=True)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)  # the terminal closed: stop the services too, never orphan them
    _supervisor_log(services.log_dir / "supervisor.log")
    supervisor = services.supervise()
    try:
        while not stopping:
            supervisor.join(0.5)
            if not supervisor.is_alive() and not stopping:
                print("mend: the supervisor stopped unexpectedly; stopping Mend", file=sys.stderr)
                return 1
    finally:
        try:
            print("mend: stopping...", flush=True)
        except OSError:  # `make run | tee log` and Ctrl-C: the pipe is gone, the services must stop anyway
            pass
        services.stop()
    return 0


def start_timeout(default: float = 240.0) -> float:
    """How long the services may take to answer at start (env MEND_START_TIMEOUT_SECONDS)."""
    raw = os.environ.get("MEND_START_TIMEOUT_SECONDS", "").strip()
    try:
        return max(10.0, float(raw)) if raw else default
    except ValueError:
        raise SystemExit(f"mend: MEND_START_TIMEOUT_SECONDS must be a number of seconds, not {raw!r}")


def _run_scaled(replicas: int) -> int:
    """``run --replicas N``: check the engines and ports, create and migrate, start, supervise until Ctrl-C."""
    from bot.gateway.config import load_config
    from bot.scaled import ScaledLayout, ScaledSettings, prepare, preflight, print_banner

    settings = ScaledSettings.from_env()
    layout = ScaledLayout(settings, replicas, gateway_port=load_config().port, gateway_host=load_config().host)
    preflight(layout)  # a ScaledError (SystemExit) prints its one line and exits 1
    prepare(settings)
    print(f"mend: starting {replicas} action servers, {replicas} Rasa servers and {replicas} gateways "
          f"(loading the model takes a minute or two)...", flush=True)
    for sig in (signal.SIGTERM, signal.SIGHUP):  # while the models load, these stop everything as Ctrl-C does
        signal.signal(sig, signal.default_int_handler)
    try:
        layout.start(timeout=start_timeout(300.0))  # stops what it started when interrupted or a process fails
    except KeyboardInterrupt:
        print("mend: interrupted while starting; stopped", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as error:
        print(f"mend: the scaled layout did not come up: {error} (see var/log/)", file=sys.stderr)
        return 1
    print_banner(layout)
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    _supervisor_log(layout.log_dir / "supervisor.log")
    supervisors = layout.supervise()
    try:
        while not stopping:
            supervisors[0].join(0.5)  # type: ignore[attr-defined]
            if not all(s.is_alive() for s in supervisors) and not stopping:  # type: ignore[attr-defined]
                print("mend: a supervisor stopped unexpectedly; stopping Mend", file=sys.stderr)
                return 1
    finally:
        try:
            print("mend: stopping...", flush=True)
        except OSError:
            pass
        layout.stop()
    return 0


def _replicas(args: Sequence[str]) -> int | None:
    """``run``'s own options: ``--replicas N`` (None: the single-process layout of ``make run``)."""
    run_args = argparse.ArgumentParser(prog="python -m bot run")
    run_args.add_argument("--replicas", type=int, default=None,
                          help="start the scaled layout with N of each process (PostgreSQL, Redis, RabbitMQ)")
    replicas = run_args.parse_args(list(args)).replicas
    if replicas is not None and not 1 <= replicas <= 32:
        run_args.error("--replicas takes a number from 1 to 32")
    return replicas


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["setup", "run", "gateway", "accounts", "replay", "train", "db", "evaluate",
                                            "secrets"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)
    if options.command == "secrets":
        _internal_tokens()
        for name in ("MEND_RASA_TOKEN", "MEND_ACTION_TOKEN"):
            print(f"export {name}={shlex.quote(os.environ[name])}")
        return 0
    if options.command in {"run", "replay"}:
        _internal_tokens()
    if options.command == "setup":
        from bot.setup import setup_all

        setup_all()
        return 0
    if options.command == "run":
        replicas = _replicas(options.args)
        return _run() if replicas is None else _run_scaled(replicas)
    if options.command == "gateway":
        from bot.gateway.server import serve

        gateway_args = argparse.ArgumentParser(prog="python -m bot gateway")
        gateway_args.add_argument("--port", type=int)
        serve(gateway_args.parse_args(options.args).port)
        return 0
    if options.command == "replay":
        from bot.replay.cli import main as replay_main

        return replay_main(options.args)
    if options.command == "accounts":
        from bot.gateway.accounts_cli import main as accounts_main

        return accounts_main(options.args)
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
    if "--suggestions" in options.args:
        from bot.assist.evaluate import main as suggestions_main
        return suggestions_main([a for a in options.args if a != "--suggestions"])
    from bot.nlu.evaluate import main as evaluate_main

    return evaluate_main(options.args)


if __name__ == "__main__":
    raise SystemExit(main())
