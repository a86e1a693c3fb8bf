"""Mend load test: Locust customers and agents against one or more gateways, then the invariants checked
from the stored transcripts.

Usage (from the project root; ``make load-test`` runs it with the defaults):

    .venv/bin/python bench/load/run.py [--users 30] [--spawn-rate 5] [--run-time 60s] [--agents 2]
        [--think-min 3] [--think-max 8] [--kill rasa:40 [--kill gateway:70]]
        [--gateways http://a:8080,http://b:8081 --database-url URL [--tracker-url URL] --staff user:pw,...]

Without ``--gateways`` it starts its own stack on 127.0.0.1 (Rasa 5805, actions 5855, gateway 5880 with
``--port-base 5800``): a fresh SQLite case database and tracker store in a temp folder, staff accounts
for the agents, the per-session rate limit and the per-address new-conversation limit lifted (every
simulated customer comes from 127.0.0.1), and the supervisor (``Services.supervise``) restarting what dies.
``--kill NAME:SECONDS`` kill -9s that process (gateway, rasa or actions) that many seconds into the load.

With ``--gateways`` it drives an already running stack (customers and agents spread over the list) and
reads its transcripts from ``--database-url`` (and Rasa's tracker store from ``--tracker-url``).

It runs in the project's virtualenv (it needs bot/ and SQLAlchemy); Locust runs as a subprocess from its
own virtualenv (``--locust``, default .venv-load/bin/locust), since Locust's dependencies clash with Rasa's.
The exit code is 0 whenever the measurement completed: the invariants are reported, not asserted.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.load.invariants import InvariantReport, check, read_results  # noqa: E402

HERE = Path(__file__).resolve().parent
KILLABLE = ("gateway", "rasa", "actions")


def parse_duration(value: str) -> float:
    """Locust's run-time syntax (90, 90s, 2m, 1h30m) in seconds."""
    total, number = 0.0, ""
    for char in value.strip():
        if char.isdigit() or char == ".":
            number += char
        elif char in "smh" and number:
            total += float(number) * {"s": 1, "m": 60, "h": 3600}[char]
            number = ""
        else:
            raise argparse.ArgumentTypeError(f"not a duration: {value!r} (e.g. 60s, 2m, 1h30m)")
    return total + (float(number) if number else 0.0)


def parse_kill(value: str) -> Tuple[str, float]:
    name, _, at = value.partition(":")
    if name not in KILLABLE or not at:
        raise argparse.ArgumentTypeError(f"--kill wants NAME:SECONDS with NAME one of {', '.join(KILLABLE)}; "
                                         f"got {value!r}")
    try:
        return name, parse_duration(at)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"--kill {value!r}: {at!r} is not a number of seconds") from None


def percentile(values: List[float], p: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100.0
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def read_jsonl(paths: List[Path]) -> List[Dict[str, Any]]:
    rows = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def locust_stats(prefix: Path) -> Dict[str, Dict[str, str]]:
    """Locust's ``--csv`` stats rows by name (``Aggregated`` included)."""
    path = Path(str(prefix) + "_stats.csv")
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {f"{row['Type']} {row['Name']}".strip(): row for row in csv.DictReader(handle)}


def locust_failures(prefix: Path) -> List[Dict[str, str]]:
    path = Path(str(prefix) + "_failures.csv")
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class OwnStack:
    """Rasa, actions and gateway on their own ports, a temp database, staff accounts, lifted rate limits."""

    def __init__(self, port_base: int, agents: int, workdir: Path) -> None:
        self.port_base = port_base
        self.agents = agents
        self.workdir = workdir
        self.services: Any = None
        self.events: List[str] = []
        self.started_at = time.monotonic()

    def start(self) -> None:
        import yaml

        from bot.casedb.engine import session_scope
        from bot.gateway.accounts import create_account
        from bot.services import Services
        from bot.settings import DEFAULT_FILE
        from bot.setup import MODEL, ensure_database
        from bot.supervisor import SupervisorSettings

        if not MODEL.exists():
            raise SystemExit("load: no trained model at models/mend.tar.gz; run `make setup` first")
        model = self.workdir / "mend.tar.gz"  # a copy: a training run replacing the model does not touch ours
        shutil.copy2(MODEL, model)
        self.db_url = f"sqlite:///{self.workdir / 'mend.db'}"
        self.tracker_db = self.workdir / "tracker.db"
        ensure_database(self.db_url)
        self.staff = [(f"load-agent-{n}", f"load-agent-password-{n}-0123") for n in range(1, max(self.agents, 1) + 1)]
        with session_scope(self.db_url) as session:
            for username, password in self.staff:
                create_account(session, username, password, "agent", f"Load Agent {username.rsplit('-', 1)[1]}")
        data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
        data["gateway"]["rate_limit"] = {"burst": 1000, "per_minute": 100000}
        abuse = data["gateway"].setdefault("abuse", {})
        abuse["new_conversations_per_hour"] = 1000000  # every simulated customer comes from 127.0.0.1
        abuse.setdefault("login", {}).update(per_address=1000, global_per_minute=1000)
        settings = self.workdir / "settings.yml"
        settings.write_text(yaml.safe_dump(data), encoding="utf-8")
        env = {"MEND_DATABASE_URL": self.db_url, "MEND_SETTINGS_FILE": str(settings),
               "MEND_CUSTOMER_TOKEN_SECRET": "load-customer-secret-0123456789-0123456789",
               "MEND_SESSION_SECRET": "load-session-secret-0123456789-0123456789", "MEND_LOG_LEVEL": "WARNING"}
        self.services = Services(model=model, rasa_port=self.port_base + 5, actions_port=self.port_base + 55,
                                 gateway_port=self.port_base + 80, tracker_db=self.tracker_db, env=env,
                                 log_dir=self.workdir / "log")
        print(f"[load] starting actions (:{self.services.actions_port}), Rasa (:{self.services.rasa_port}), "
              f"gateway (:{self.services.gateway_port}); work dir {self.workdir}", flush=True)
        started = time.monotonic()
        self.services.start(timeout=600)
        print(f"[load] stack up in {time.monotonic() - started:.0f} s", flush=True)
        self.services.supervise(SupervisorSettings(max_restarts=10, backoff_initial_seconds=1.0),
                                report=lambda level, message: self.note(f"supervisor: {message}"))

    def note(self, message: str) -> None:
        line = f"[load] t={time.monotonic() - self.started_at:6.1f}s {message}"
        self.events.append(line)
        print(line, flush=True)

    @property
    def gateways(self) -> List[str]:
        return [self.services.gateway_url]

    @property
    def tracker_url(self) -> str:
        return f"sqlite:///{self.tracker_db}"

    def kill_later(self, name: str, at: float, load_started: float, stop: threading.Event) -> threading.Thread:
        """kill -9 ``name`` ``at`` seconds into the load; note when it answers again (the supervisor restarts it)."""
        from bot.services import wait_for

        def run() -> None:
            if stop.wait(max(0.0, load_started + at - time.monotonic())):
                return
            old = self.services.pid(name)
            self.services.kill(name, signal.SIGKILL)
            killed = time.monotonic()
            self.note(f"killed {name} (pid {old}) with SIGKILL at {killed - load_started:.0f} s into the load")
            deadline = killed + 600
            while time.monotonic() < deadline:  # watched past the end of the load: the time to recover counts
                try:
                    if self.services.pid(name) != old:
                        wait_for(self.services.health_url(name), max(1.0, deadline - time.monotonic()))
                        self.note(f"{name} answers again {time.monotonic() - killed:.0f} s after the kill "
                                  f"(pid {self.services.pid(name)})")
                        return
                except Exception:
                    pass
                time.sleep(0.5)
            self.note(f"{name} did not come back within the run")

        thread = threading.Thread(target=run, name=f"kill-{name}", daemon=True)
        thread.start()
        return thread

    def wait_healthy(self, timeout: float) -> float:
        """Wait until every service answers (a killed one is back); the seconds it took."""
        from bot.services import wait_for

        started = time.monotonic()
        for name in self.services.names():
            try:
                wait_for(self.services.health_url(name), max(1.0, timeout - (time.monotonic() - started)))
            except Exception as error:
                self.note(f"{name} still does not answer after the load: {error}")
        return time.monotonic() - started

    def stop(self) -> None:
        if self.services is not None:
            self.services.stop()


def run_locust(args: argparse.Namespace, gateways: List[str], staff: List[Tuple[str, str]], out: Path,
               results_dir: Path) -> int:
    classes = ["Customer"] + (["Agent"] if args.agents > 0 else [])
    command = [args.locust, "-f", str(HERE / "locustfile.py"), "--headless", "--users", str(args.users + args.agents),
               "--spawn-rate", str(args.spawn_rate), "--run-time", f"{int(args.run_time)}s", "--host", gateways[0],
               "--csv", str(out / "locust"), "--only-summary", "--loglevel", "WARNING", *classes]
    if args.processes > 1:
        command[1:1] = ["--processes", str(args.processes)]
    env = dict(os.environ, LOAD_GATEWAYS=",".join(gateways), LOAD_THINK_MIN=str(args.think_min),
               LOAD_THINK_MAX=str(args.think_max), LOAD_REPLY_TIMEOUT=str(args.reply_timeout),
               LOAD_AGENTS=str(args.agents), LOAD_STAFF=",".join(f"{u}:{p}" for u, p in staff),
               LOAD_RESULTS_DIR=str(results_dir))
    with open(out / "locust.log", "wb") as log:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            return process.wait(timeout=args.run_time + 120)
        except subprocess.TimeoutExpired:
            print("[load] locust did not stop at the end of its run time: interrupting it", flush=True)
            process.send_signal(signal.SIGINT)
            try:
                return process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait()


def fmt(value: Optional[float], unit: str = " ms") -> str:
    return "-" if value is None else f"{value:,.0f}{unit}"


def summary(args: argparse.Namespace, rows: List[Dict[str, Any]], stats: Dict[str, Dict[str, str]],
            failures: List[Dict[str, str]], report: Optional[InvariantReport], duration: float,
            events: List[str]) -> Dict[str, Any]:
    turns = [r for r in rows if r.get("kind") == "turn"]
    by_bot = [r["ms"] for r in turns if r.get("by") == "bot"]
    by_person = [r["ms"] for r in turns if r.get("by") in ("agent", "system")]
    all_ms = [r["ms"] for r in turns]
    acked = sum(1 for r in rows if r.get("kind") == "ack")
    ack_ms = [r["ms"] for r in rows if r.get("kind") == "ack" and "ms" in r]
    sent = sum(1 for r in rows if r.get("kind") == "sent")
    timeouts = sum(1 for r in rows if r.get("kind") == "timeout")
    locust_turn = stats.get("WS turn", {})
    aggregated = stats.get("Aggregated", {})
    result = {
        "users": args.users, "agents": args.agents, "duration_s": duration, "kills": args.kill,
        "messages_sent": sent, "messages_acked": acked, "messages_per_s": acked / duration if duration else None,
        "turns": len(turns), "turn_p50_ms": percentile(all_ms, 50), "turn_p95_ms": percentile(all_ms, 95),
        "turn_p99_ms": percentile(all_ms, 99),
        "bot_turns": len(by_bot), "bot_p50_ms": percentile(by_bot, 50), "bot_p95_ms": percentile(by_bot, 95),
        "bot_p99_ms": percentile(by_bot, 99),
        "person_turns": len(by_person), "person_p50_ms": percentile(by_person, 50),
        "person_p95_ms": percentile(by_person, 95),
        "ack_p50_ms": percentile(ack_ms, 50), "ack_p95_ms": percentile(ack_ms, 95),
        "reply_timeouts": timeouts,
        "locust_turn": {k: locust_turn.get(k) for k in ("Request Count", "Failure Count", "50%", "95%", "99%",
                                                        "Requests/s")},
        "errors": int(aggregated.get("Failure Count") or 0),
        "failures": [{k: f.get(k) for k in ("Method", "Name", "Error", "Occurrences")} for f in failures],
        "invariants": report.as_dict() if report is not None else None,
        "events": events,
    }
    width = 44
    print("\n" + "=" * 78)
    print("Mend load test" + (f"  (kills: {', '.join(f'{n} at {a:.0f}s' for n, a in args.kill)})" if args.kill else ""))
    print("=" * 78)

    def line(label: str, value: str) -> None:
        print(f"  {label:<{width}} {value}")

    line("simulated customers / agents", f"{args.users} / {args.agents}")
    line("load duration", f"{duration:.0f} s (think {args.think_min:g}-{args.think_max:g} s)")
    line("customer messages sent / acked", f"{sent} / {acked}")
    line("messages per second (acked)", f"{result['messages_per_s']:.2f}" if duration else "-")
    line("ack (message stored) p50 / p95", f"{fmt(result['ack_p50_ms'])} / {fmt(result['ack_p95_ms'])}")
    line("turns answered", f"{len(turns)} ({len(by_bot)} by the bot, {len(by_person)} by a person/system)")
    line("per-turn latency, all turns p50 / p95 / p99",
         f"{fmt(result['turn_p50_ms'])} / {fmt(result['turn_p95_ms'])} / {fmt(result['turn_p99_ms'])}")
    line("  bot turns p50 / p95 / p99",
         f"{fmt(result['bot_p50_ms'])} / {fmt(result['bot_p95_ms'])} / {fmt(result['bot_p99_ms'])}")
    line("  person/system turns p50 / p95",
         f"{fmt(result['person_p50_ms'])} / {fmt(result['person_p95_ms'])}")
    if locust_turn:
        line("Locust 'WS turn' p50 / p95 / p99 (bucketed)",
             f"{locust_turn.get('50%')} / {locust_turn.get('95%')} / {locust_turn.get('99%')} ms, "
             f"{float(locust_turn.get('Requests/s') or 0):.2f} turns/s")
    line("errors (Locust failures, all kinds)", f"{result['errors']} (of which reply timeouts {timeouts})")
    for failure in failures[:6]:
        print(f"      {failure.get('Occurrences'):>5} x {failure.get('Method')} {failure.get('Name')}: "
              f"{(failure.get('Error') or '')[:90]}")
    if report is None:
        line("invariants", "NOT CHECKED (no --database-url)")
    else:
        line("conversations checked", str(report.conversations))
        line("LOST (acked, not stored)", str(report.lost))
        line("DUPLICATED (same client_id stored twice)", str(report.duplicated))
        line("OUT OF ORDER (within a conversation)", str(report.out_of_order))
        line("UNANSWERED (no bot/agent/system message after)",
             f"{report.unanswered} (of which {report.unanswered_with_person} waiting for / held by a person)")
        line("sent, never acked: stored / not stored", f"{report.unacked_stored} / {report.unacked_not_stored}")
        line("ack id != stored id", str(report.ack_id_mismatch))
        if report.tracker_checked:
            line("Rasa tracker: missing / duplicated user events",
                 f"{report.tracker_missing} / {report.tracker_duplicated}")
        for kind, examples in report.examples.items():
            print(f"      e.g. {kind}: {'; '.join(examples[:3])}")
    for event in events:
        print("  " + event)
    print("=" * 78, flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=30, help="simulated customers (default 30)")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="customers started per second (default 5)")
    parser.add_argument("--run-time", type=parse_duration, default=60.0, help="load duration, e.g. 60s, 2m")
    parser.add_argument("--agents", type=int, default=2, help="agents on consoles (default 2; 0 = none)")
    parser.add_argument("--think-min", type=float, default=3.0, help="customer think time, seconds (default 3)")
    parser.add_argument("--think-max", type=float, default=8.0, help="(default 8)")
    parser.add_argument("--reply-timeout", type=float, default=90.0,
                        help="seconds a customer waits for a reply before leaving (default 90)")
    parser.add_argument("--kill", type=parse_kill, action="append", default=[], metavar="NAME:SECONDS",
                        help="kill -9 gateway|rasa|actions that many seconds into the load (repeatable; own stack)")
    parser.add_argument("--gateways", help="comma-separated base URLs of running gateways (default: start a stack)")
    parser.add_argument("--database-url", help="the gateways' database, to check the transcripts (with --gateways)")
    parser.add_argument("--tracker-url", help="Rasa's SQL tracker store, to check each message reached Rasa once")
    parser.add_argument("--staff", default="", help="user:password,... console accounts for --agents (with --gateways)")
    parser.add_argument("--port-base", type=int, default=5800, help="own stack's ports: +5 Rasa, +55 actions, +80 gateway")
    parser.add_argument("--processes", type=int, default=1, help="Locust processes (each writes its own results file)")
    parser.add_argument("--drain", type=float, default=20.0,
                        help="seconds to let in-flight turns finish after the load before checking (default 20)")
    parser.add_argument("--locust", default=str(PROJECT_ROOT / ".venv-load" / "bin" / "locust"),
                        help="the locust executable (its own virtualenv; `make load-test` creates it)")
    parser.add_argument("--out", type=Path, help="results folder (default var/load/<timestamp>)")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args()
    if args.users < 1 or args.agents < 0 or args.spawn_rate <= 0 or args.run_time <= 0:
        parser.error("--users must be >= 1, --agents >= 0, --spawn-rate and --run-time > 0")
    if args.think_min < 0 or args.think_max < args.think_min:
        parser.error("--think-min must be >= 0 and <= --think-max")
    if not Path(args.locust).exists() and shutil.which(args.locust) is None:
        parser.error(f"locust not found at {args.locust}; `make load-test` creates .venv-load from "
                     f"bench/load/requirements.txt")
    if args.gateways and args.kill:
        parser.error("--kill needs the stack this script starts (it has no handle on processes behind --gateways)")
    staff = [tuple(p.split(":", 1)) for p in args.staff.split(",") if ":" in p]
    if args.gateways and args.agents and not staff:
        parser.error("--agents with --gateways needs --staff user:password,... (console accounts)")
    out = args.out or PROJECT_ROOT / "var" / "load" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    results_dir = out / "results"
    results_dir.mkdir(exist_ok=True)

    stack: Optional[OwnStack] = None
    events: List[str] = []
    try:
        if args.gateways:
            gateways = [g.strip().rstrip("/") for g in args.gateways.split(",") if g.strip()]
            database_url, tracker_url = args.database_url, args.tracker_url
        else:
            stack = OwnStack(args.port_base, args.agents, Path(tempfile.mkdtemp(prefix="mend-load-")))
            stack.start()
            gateways, staff = stack.gateways, stack.staff
            database_url, tracker_url = stack.db_url, args.tracker_url or stack.tracker_url
        print(f"[load] {args.users} customers + {args.agents} agents on {', '.join(gateways)} for "
              f"{args.run_time:.0f} s; results in {out}", flush=True)
        stop = threading.Event()
        started = time.monotonic()
        if stack is not None:
            stack.started_at = started
            killers = [stack.kill_later(name, at, started, stop) for name, at in args.kill]
        code = run_locust(args, gateways, staff, out, results_dir)
        duration = time.monotonic() - started
        stop.set()
        if code not in (0, 1):  # 1: Locust's "some requests failed"
            print(f"[load] locust exited with {code}; see {out / 'locust.log'}", flush=True)
        if stack is not None:
            for killer in killers:
                killer.join(timeout=600)
            waited = stack.wait_healthy(600)
            if waited > 1:
                stack.note(f"after the load, waited {waited:.0f} s for every service to answer again")
        print(f"[load] load done ({duration:.0f} s); {args.drain:.0f} s for in-flight turns to finish", flush=True)
        time.sleep(args.drain)
        if stack is not None:
            events = stack.events
        files = sorted(results_dir.glob("customers-*.jsonl"))
        rows = read_jsonl(files)
        report = check(read_results(files), database_url, tracker_url) if database_url else None
        result = summary(args, rows, locust_stats(out / "locust"), locust_failures(out / "locust"), report,
                         min(duration, args.run_time), events)
        (out / "summary.json").write_text(json.dumps(result, indent=2, default=str))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"[load] summary: {out / 'summary.json'}; Locust log: {out / 'locust.log'}", flush=True)
    finally:
        if stack is not None:
            stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
