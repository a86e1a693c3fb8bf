"""Mend load test: Locust customers and agents against one or more gateways, then the invariants checked
from the stored transcripts.

Usage (from the project root; ``make load-test`` runs it with the defaults):

    .venv/bin/python bench/load/run.py [--users 30] [--spawn-rate 5] [--run-time 60s] [--agents 2]
        [--think-min 3] [--think-max 8] [--kill rasa:40 [--kill gateway@2:70]]
        [--replicas 2 [--compare-single]]
        [--gateways http://a:8080,http://b:8081 --database-url URL [--tracker-url URL] --staff user:pw,...]

Without ``--gateways`` it starts its own stack on 127.0.0.1 (Rasa 5805, actions 5855, gateway 5880 with
``--port-base 5800``): a fresh SQLite case database and tracker store in a temp folder, staff accounts
for the agents, the per-session rate limit and the per-address new-conversation limit lifted (every
simulated customer comes from 127.0.0.1), and the supervisor (``Services.supervise``) restarting what dies.
``--kill NAME[@REPLICA]:SECONDS`` kill -9s that process (gateway, rasa or actions) that many seconds into
the load.

With ``--replicas N`` it starts the scaled layout instead (bench/load/stacks.py ScaledStack: N gateways
from 5880, N Rasa servers from 5805, N action servers from 5855, on PostgreSQL databases ``mend_load`` and
``mend_load_tracker`` dropped and created for the run, Redis database 7 emptied, RabbitMQ queue
``mend_load_events``); ``--compare-single`` then runs the same load on the single-process stack and prints
the two side by side. For every stack it starts it samples the CPU time of each kind of process and of the
engines during the load and prints the capacity model (bench/load/capacity.py).

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

from bench.load.capacity import CapacityModel, CpuSampler  # noqa: E402
from bench.load.invariants import InvariantReport, check, read_results  # noqa: E402
from bench.load.stacks import OwnStack, ScaledStack, Stack, parse_target  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/7"  # a Redis database of its own: emptied before the run
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


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
    """``rasa:60`` or ``rasa@2:60``: that process (of that replica) killed 60 s into the load."""
    target, _, at = value.rpartition(":")
    try:
        parse_target(target)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--kill wants NAME[@REPLICA]:SECONDS; {error}") from None
    try:
        return target, parse_duration(at)
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
            events: List[str], title: str = "", kills: Optional[List[Tuple[str, float]]] = None) -> Dict[str, Any]:
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
        "users": args.users, "agents": args.agents, "duration_s": duration, "kills": kills or [],
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
    print("Mend load test" + (f": {title}" if title else "") + (f"  (kills: {', '.join(f'{n} at {a:.0f}s' for n, a in kills)})" if kills else ""))
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
    windows = bot_turns_over_time(rows)
    result["bot_turns_by_window"] = windows
    if windows:
        print("  bot turns by when the message was sent (the kills show here):")
        for window in windows:
            print(f"    {window['from_s']:>4.0f}-{window['to_s']:<4.0f}s  n={window['n']:<5} p50 {fmt(window['p50_ms'])} "
                  f" p95 {fmt(window['p95_ms'])}")
    for event in events:
        print("  " + event)
    print("=" * 78, flush=True)
    return result


def bot_turns_over_time(rows: List[Dict[str, Any]], width: float = 30.0) -> List[Dict[str, Any]]:
    """Bot-turn latency per ``width`` seconds of the load, by when the customer sent the message."""
    sent = {r["client_id"]: r["t"] for r in rows if r.get("kind") == "sent" and "t" in r}
    if not sent:
        return []
    start = min(sent.values())
    windows: Dict[int, List[float]] = {}
    for r in rows:
        if r.get("kind") == "turn" and r.get("by") == "bot" and r.get("client_id") in sent:
            windows.setdefault(int((sent[r["client_id"]] - start) // width), []).append(r["ms"])
    return [{"from_s": k * width, "to_s": (k + 1) * width, "n": len(v), "p50_ms": percentile(v, 50),
             "p95_ms": percentile(v, 95)} for k, v in sorted(windows.items())]


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
    parser.add_argument("--kill", type=parse_kill, action="append", default=[], metavar="NAME[@REPLICA]:SECONDS",
                        help="kill -9 gateway|rasa|actions (of replica N with @N) that many seconds into the load "
                             "(repeatable; a stack this script starts)")
    parser.add_argument("--replicas", type=int, help="start the scaled layout with N of each process instead "
                        "(PostgreSQL, Redis, RabbitMQ; databases mend_load and mend_load_tracker, dropped first)")
    parser.add_argument("--compare-single", action="store_true",
                        help="with --replicas: then run the same load on the single-process layout and print both")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES, help="the PostgreSQL server for --replicas")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help="a Redis database for --replicas (emptied!)")
    parser.add_argument("--amqp-url", default=DEFAULT_AMQP, help="RabbitMQ for --replicas")
    parser.add_argument("--capacity-for", type=int, default=50_000,
                        help="the capacity model's number of concurrent customers (default 50,000)")
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
    if args.replicas is not None and args.gateways:
        parser.error("--replicas starts its own scaled stack; --gateways drives one that runs already")
    if args.replicas is not None and not 1 <= args.replicas <= 8:
        parser.error("--replicas takes a number from 1 to 8")
    for target, _ in args.kill:
        if parse_target(target)[1] >= (args.replicas or 1):
            parser.error(f"--kill {target}: there are only {args.replicas or 1} replicas")
    out = args.out or PROJECT_ROOT / "var" / "load" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)

    if args.gateways:
        result = run_phase(args, None, out, staff, kills=[], title="running stack")
        results = {"running": result}
    else:
        phases: List[Tuple[str, Stack, list]] = []
        if args.replicas is not None:
            phases.append(("scaled", ScaledStack(args.port_base, args.agents, Path(tempfile.mkdtemp(prefix="mend-load-")),
                                                 args.replicas, args.postgres_url, args.redis_url, args.amqp_url),
                           args.kill))
        if args.replicas is None or args.compare_single:
            phases.append(("single", OwnStack(args.port_base + 200 if args.replicas else args.port_base, args.agents,
                                              Path(tempfile.mkdtemp(prefix="mend-load-"))),
                           [] if args.replicas is not None else args.kill))
        results = {}
        for name, stack, kills in phases:
            phase_out = out / name if len(phases) > 1 else out
            phase_out.mkdir(parents=True, exist_ok=True)
            title = (f"{args.replicas} replicas of each process (PostgreSQL, Redis, RabbitMQ)" if name == "scaled"
                     else "single process (one gateway, one Rasa, one action server; SQLite)")
            results[name] = run_phase(args, stack, phase_out, staff, kills, title)
    if len(results) > 1:
        side_by_side(results)
    (out / "summary.json").write_text(json.dumps(results if len(results) > 1 else next(iter(results.values())),
                                                 indent=2, default=str))
    if args.json:
        args.json.write_text((out / "summary.json").read_text())
    print(f"[load] summary: {out / 'summary.json'}", flush=True)
    return 0


def run_phase(args: argparse.Namespace, stack: Optional[Stack], out: Path, staff: List[Tuple[str, str]],
              kills: List[Tuple[str, float]], title: str) -> Dict[str, Any]:
    """Start ``stack`` (None: drive --gateways), run the load with ``kills``, check, print; the summary."""
    results_dir = out / "results"
    results_dir.mkdir(exist_ok=True)
    events: List[str] = []
    sampler: Optional[CpuSampler] = None
    try:
        if stack is None:
            gateways = [g.strip().rstrip("/") for g in args.gateways.split(",") if g.strip()]
            database_url, tracker_url = args.database_url, args.tracker_url
        else:
            stack.start()
            gateways, staff = stack.gateways, stack.staff
            database_url, tracker_url = stack.db_url, args.tracker_url or stack.tracker_url
        print(f"[load] {title}: {args.users} customers + {args.agents} agents on {', '.join(gateways)} for "
              f"{args.run_time:.0f} s; results in {out}", flush=True)
        stop = threading.Event()
        started = time.monotonic()
        killers: List[threading.Thread] = []
        if stack is not None:
            stack.started_at = started
            sampler = CpuSampler(stack.process_groups, lambda: set(stack.starting)).start()
            killers = [stack.kill_later(target, at, started, stop) for target, at in kills]
        code = run_locust(args, gateways, staff, out, results_dir)
        duration = time.monotonic() - started
        stop.set()
        cpu = sampler.stop() if sampler is not None else {}
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
        if stack is not None and hasattr(stack, "events_waiting"):
            try:
                stack.note(f"Rasa events left in RabbitMQ after the run: {stack.events_waiting()} "
                           f"(the gateways consume them for the consoles' activity lists)")
            except Exception as error:  # noqa: BLE001 - a figure missing, not a failed run
                stack.note(f"could not read the RabbitMQ queue's length: {error!r}")
        if stack is not None:
            events = stack.events
        files = sorted(results_dir.glob("customers-*.jsonl"))
        rows = read_jsonl(files)
        report = check(read_results(files), database_url, tracker_url) if database_url else None
        load_seconds = min(duration, args.run_time)
        result = summary(args, rows, locust_stats(out / "locust"), locust_failures(out / "locust"), report,
                         load_seconds, events if stack is not None else [], title, kills)
        if cpu:
            model = CapacityModel(cpu_seconds=cpu, messages=int(result["messages_acked"]), duration_s=load_seconds,
                                  concurrent_customers=args.users)
            for line in model.table(args.capacity_for):
                print(line)
            print("=" * 78, flush=True)
            result["capacity"] = model.as_dict(args.capacity_for)
        (out / "summary.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"[load] Locust log: {out / 'locust.log'}", flush=True)
        return result
    finally:
        if sampler is not None:
            sampler.stop()
        if stack is not None:
            stack.stop()


def side_by_side(results: Dict[str, Dict[str, Any]]) -> None:
    """The scaled run's per-turn figures beside the single-process run's, same load, same invocation."""
    print("\n" + "=" * 78)
    print("Per-turn latency, same load, this invocation")
    print(f"  {'layout':<10} {'turns':>6} {'p50':>9} {'p95':>9} {'p99':>9} {'bot p95':>9} {'msg/s':>7} "
          f"{'lost':>5} {'dup':>4} {'order':>5} {'errors':>6}")
    for name, r in results.items():
        inv = r.get("invariants") or {}
        print(f"  {name:<10} {r['turns']:>6} {fmt(r['turn_p50_ms'], ''):>9} {fmt(r['turn_p95_ms'], ''):>9} "
              f"{fmt(r['turn_p99_ms'], ''):>9} {fmt(r['bot_p95_ms'], ''):>9} {r['messages_per_s'] or 0:>7.2f} "
              f"{inv.get('lost', '-'):>5} {inv.get('duplicated', '-'):>4} {inv.get('out_of_order', '-'):>5} "
              f"{r['errors']:>6}")
    print("  (milliseconds)")
    print("=" * 78, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
