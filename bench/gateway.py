"""Gateway benchmark: customer message -> suggestions at the agent's console, and 200 idle widgets.

Usage (from the project root; ``make bench`` runs it after bench/latency.py):

    .venv/bin/python bench/gateway.py [--conversations 20] [--messages 6] [--think-ms 2000] [--idle 200] [--json PATH]

What it does, all on 127.0.0.1 with its own ports (Rasa 5106, actions 5156, gateway 5180), its own case
database and tracker store, so a running ``make run`` is not disturbed:

1. Suggestions latency. ``--conversations`` anonymous widgets each ask for a person; one agent logs in,
   opens the console socket and takes them all over. Then every conversation sends ``--messages``
   customer messages, one at a time with ``--think-ms`` between them (20 conversations at 2 s think
   time are 20 customers typing at the same time). Measured per message: the widget sends ->
   the console's ``suggestions`` event for that conversation arrives (gateway stores the message,
   Rasa parses it, the policy predicts, the top three are previewed on the case database).
   Target: p95 under 300 ms with 20 active conversations.
2. Idle widgets. ``--idle`` widgets connect and stay open; the gateway's resident memory is read
   from /proc before and after, and the suggestions run of step 1 is repeated with them connected
   (throughput = messages fully processed per second).

The exit code is 0 whenever the measurement completed, whether or not the target holds.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import aiohttp

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench.latency import percentile  # noqa: E402

RASA_PORT, ACTIONS_PORT, GATEWAY_PORT = 5106, 5156, 5180
LOG_DIR = PROJECT_ROOT / "var" / "bench" / "log"
TARGET_P95_MS = 300.0
CUSTOMER_LINES = [
    "ok so what happens with my refund now?",
    "this is taking forever, I have been waiting for days!!",
    "can you at least tell me when it will arrive",
    "fine. please send a replacement",
    "thanks, appreciate it",
    "and what about the money you charged me twice?",
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


async def suggestions_run(base: str, agent: Any, conversations: int, messages: int, think_ms: int,
                          http: aiohttp.ClientSession) -> Dict[str, Any]:
    from bot.gateway.client import Widget

    widgets: List[Widget] = []
    for _ in range(conversations):
        widget = Widget(base, http)
        await widget.connect(origin=base)
        widgets.append(widget)
    for widget in widgets:  # a person is asked for, then the agent has every conversation
        await widget.send("I want to talk to a person please")
    for widget in widgets:
        await widget.until(lambda e: e.get("type") == "message" and e["message"]["sender"] == "bot", timeout=120)
        status, answer = await agent.post(f"/api/conversations/{widget.conversation_id}/take")
        if status != 200:
            raise SystemExit(f"bench: take-over failed: {status} {answer}")
    pending: Dict[str, asyncio.Future] = {}

    async def listen() -> None:
        while True:
            event = await agent.socket.receive_json()
            if event.get("type") == "suggestions" and event["conversation_id"] in pending:
                future = pending.pop(event["conversation_id"])
                if not future.done():
                    future.set_result(event)

    listener = asyncio.ensure_future(listen())
    latencies: List[float] = []
    errors = 0

    async def customer(widget: Widget) -> None:
        nonlocal errors
        await asyncio.sleep(random.uniform(0, think_ms / 1000.0))  # customers do not type in lockstep
        for n in range(messages):
            future = asyncio.get_running_loop().create_future()
            pending[widget.conversation_id] = future
            started = time.perf_counter()
            await widget.send(CUSTOMER_LINES[n % len(CUSTOMER_LINES)])
            try:
                event = await asyncio.wait_for(future, 60)
                latencies.append((time.perf_counter() - started) * 1000.0)
                if not event["suggestions"]:
                    errors += 1
            except asyncio.TimeoutError:
                errors += 1
            await asyncio.sleep(think_ms / 1000.0 * random.uniform(0.5, 1.5))

    drains = [asyncio.ensure_future(w.settle(3600)) for w in widgets]  # keep widget sockets read
    started = time.perf_counter()
    await asyncio.gather(*(customer(w) for w in widgets))
    wall = time.perf_counter() - started
    listener.cancel()
    for task in drains:
        task.cancel()
    for widget in widgets:
        await widget.close()
    return {"conversations": conversations, "messages": len(latencies), "errors": errors, "think_ms": think_ms,
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99), "max_ms": max(latencies) if latencies else None,
            "throughput_msg_s": len(latencies) / wall if wall else None}


async def idle_widgets(base: str, count: int, http: aiohttp.ClientSession) -> List[Any]:
    from bot.gateway.client import Widget

    widgets = []
    for n in range(0, count, 50):
        batch = [Widget(base, http) for _ in range(min(50, count - n))]
        await asyncio.gather(*(w.connect(origin=base) for w in batch))
        widgets.extend(batch)
    return widgets


async def measure(args: argparse.Namespace, gateway_pid: int) -> Dict[str, Any]:
    from bot.gateway.client import Staff

    base = f"http://127.0.0.1:{GATEWAY_PORT}"
    agent = Staff(base)
    if await agent.login("bench", "bench-password-123") != 302:
        raise SystemExit("bench: agent login failed")
    await agent.open_console()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        print(f"[gateway] warm-up (2 conversations)", flush=True)
        await suggestions_run(base, agent, 2, 2, 200, http)
        print(f"[gateway] suggestions latency: {args.conversations} conversations x {args.messages} messages, "
              f"think {args.think_ms} ms", flush=True)
        active = await suggestions_run(base, agent, args.conversations, args.messages, args.think_ms, http)
        rss_before = rss_mb(gateway_pid)
        print(f"[gateway] connecting {args.idle} idle widgets", flush=True)
        started = time.perf_counter()
        idle = await idle_widgets(base, args.idle, http)
        connect_s = time.perf_counter() - started
        rss_after = rss_mb(gateway_pid)
        print(f"[gateway] same run with {args.idle} idle widgets connected", flush=True)
        with_idle = await suggestions_run(base, agent, args.conversations, args.messages, args.think_ms, http)
        alive = sum(1 for w in idle if not w.socket.closed)
        for widget in idle:
            await widget.close()
    await agent.close()
    return {"active": active, "idle": {"widgets": args.idle, "still_connected": alive, "connect_s": connect_s,
                                       "rss_before_mb": rss_before, "rss_after_mb": rss_after,
                                       "kb_per_widget": (rss_after - rss_before) * 1024 / max(args.idle, 1)},
            "active_with_idle": with_idle}


def run_before(args: argparse.Namespace) -> Dict[str, Any]:
    """The same measurement on the code at ``args.before``: its own worktree, ports and database."""
    import shutil

    from bot.setup import MODEL

    tree = Path(tempfile.mkdtemp(prefix="mend-bench-before-")) / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), args.before], cwd=PROJECT_ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    try:
        (tree / "models").mkdir(exist_ok=True)
        shutil.copy2(MODEL, tree / "models" / MODEL.name)
        # The blank spaCy pipeline the model names (var/spacy/, made by setup) is not in git.
        shutil.copytree(PROJECT_ROOT / "var" / "spacy", tree / "var" / "spacy")
        out = tree / "before.json"
        print(f"[gateway] measuring {args.before} first (worktree {tree})", flush=True)
        subprocess.run([sys.executable, str(tree / "bench" / "gateway.py"), "--conversations", str(args.conversations),
                        "--messages", str(args.messages), "--think-ms", str(args.think_ms), "--idle", "0",
                        "--json", str(out)], cwd=tree, check=True)
        return json.loads(out.read_text())
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=PROJECT_ROOT, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--messages", type=int, default=6)
    parser.add_argument("--think-ms", type=int, default=2000)
    parser.add_argument("--idle", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--before", metavar="GIT_REF",
                        help="first run this benchmark as it was at GIT_REF (a git worktree, the same trained model), "
                             "then the current code, and print both")
    args = parser.parse_args()
    before = run_before(args) if args.before else None
    from bot.casedb.engine import session_scope
    from bot.gateway.accounts import create_account
    from bot.services import Services, wait_for
    from bot.setup import MODEL, ensure_database

    if not MODEL.exists():
        raise SystemExit("bench: no trained model; run `make setup` first")
    workdir = Path(tempfile.mkdtemp(prefix="mend-gateway-bench-"))
    db_url = f"sqlite:///{workdir / 'mend.db'}"
    ensure_database(db_url)
    with session_scope(db_url) as session:
        create_account(session, "bench", "bench-password-123", "agent", "Bench Agent")
    settings = workdir / "settings.yml"  # the shipped settings with the per-session rate limit out of the way
    import yaml

    from bot.settings import DEFAULT_FILE
    data = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    data["gateway"]["rate_limit"] = {"burst": 1000, "per_minute": 100000}
    # 200 idle widgets come from one address: lift the per-address limit on new chats for the benchmark.
    data["gateway"].setdefault("abuse", {})["new_conversations_per_hour"] = 100000
    settings.write_text(yaml.safe_dump(data), encoding="utf-8")
    env = {"MEND_DATABASE_URL": db_url, "MEND_SETTINGS_FILE": str(settings),
           "MEND_CUSTOMER_TOKEN_SECRET": "bench-customer-secret-0123456789-0123456789",
           "MEND_SESSION_SECRET": "bench-session-secret-0123456789-0123456789", "MEND_LOG_LEVEL": "WARNING"}
    services = Services(rasa_port=RASA_PORT, actions_port=ACTIONS_PORT, tracker_db=workdir / "tracker.db",
                        env=env, log_dir=LOG_DIR, gateway_port=GATEWAY_PORT)
    print(f"[gateway] starting Rasa (:{RASA_PORT}), actions (:{ACTIONS_PORT}), gateway (:{GATEWAY_PORT}); "
          f"logs in {LOG_DIR.relative_to(PROJECT_ROOT)}/", flush=True)
    services.start(timeout=300)
    try:
        wait_for(f"{services.gateway_url}/healthz", 30)
        report = asyncio.run(measure(args, services.processes[-1].pid))
    finally:
        services.stop()
    active, idle, with_idle = report["active"], report["idle"], report["active_with_idle"]

    def line(name: str, run: Dict[str, Any]) -> str:
        return (f"  {name:34} n={run['messages']:4d}  p50 {run['p50_ms']:7.1f} ms  p95 {run['p95_ms']:7.1f} ms  "
                f"p99 {run['p99_ms']:7.1f} ms  {run['throughput_msg_s']:5.2f} msg/s  errors {run['errors']}")

    print("\nGateway: customer message -> top-3 suggestions at the agent console")
    print(line(f"{active['conversations']} active conversations", active))
    if before is not None:
        print(line(f"same, code at {args.before}", before["active"]))
    print(line(f"same, {idle['widgets']} idle widgets connected", with_idle))
    print(f"\nIdle widgets: {idle['still_connected']}/{idle['widgets']} still connected; connected in "
          f"{idle['connect_s']:.1f} s; gateway RSS {idle['rss_before_mb']:.1f} MB -> {idle['rss_after_mb']:.1f} MB "
          f"({idle['kb_per_widget']:.1f} KB per widget)")
    verdict = "MET" if active["p95_ms"] is not None and active["p95_ms"] < TARGET_P95_MS else "MISSED"
    print(f"\nTarget p95 < {TARGET_P95_MS:.0f} ms with {active['conversations']} active conversations: {verdict}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
