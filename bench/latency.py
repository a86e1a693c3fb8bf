"""Latency benchmark: Mend beside the stock ``rasa init`` bot, driven by the same harness.

Usage (from the project root; ``make bench`` runs the defaults):

    .venv/bin/python bench/latency.py [--phases 1:0,20:0,20:3000] [--conversations N]
                                      [--skip-stock] [--train-time] [--json PATH]

Each conversation is one coroutine that sends its messages one after another through Rasa's REST
channel (a fresh uuid sender per conversation); at concurrency c at most c conversations run at once.
Latency is measured per message (request sent -> JSON reply read).

A phase is ``concurrency:think_ms``. With think time 0 every conversation fires its next message the
moment the reply arrives, so c requests are always in flight: a saturation test. With think time T a
customer reads and types for T ms (drawn uniformly from 0.5T..1.5T, seeded) between messages, and the
conversations start spread over the first T ms: c customers chatting at once, as on a website. The
default runs 1:0, 20:0 and 20:3000 (3 s is quicker than people type: a conservative load). Everything runs on 127.0.0.1,
on ports of its own (Mend 5105 / actions 5155, stock 5205), with a temporary case database and a
temporary tracker store, so a running ``make run`` (5005/5055, var/mend.db) is not disturbed.

The exit code is 0 whenever the measurement completed, whether or not the targets hold;
it is non-zero only when the harness itself failed (a server did not start, every request failed...).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import aiohttp

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

LOOPBACK = "127.0.0.1"
MEND_PORT, MEND_ACTIONS_PORT, STOCK_PORT = 5105, 5155, 5205
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
STOCK_DIR = BENCH_DIR / "stock_bot"
LOG_DIR = BENCH_DIR / "log"
REQUEST_TIMEOUT_S = 60.0
MAX_CONVERSATIONS = 2000
MAX_CONCURRENCY = 200
TARGET_RATIO, TARGET_P95_MS, TARGET_CONCURRENCY = 1.5, 150.0, 20
DEFAULT_PHASES = "1:0,20:0,20:3000"
RANDOM_SEED = 20261126


def choose(option: str) -> str:
    return '/choose_option{"option":"' + option + '"}'


# A full Mend conversation per demo customer: complaint (DB lookup, recovery options), choice of an
# option (resolution written to the case DB), confirmation, closing the loop.
MEND_SCRIPTS: List[Dict[str, Any]] = [
    {"name": "dana-delivery", "customer_id": "cust-1001",
     "messages": ["where are my headphones? this is the second time I ask", choose("reship_express"),
                  "yes that works", "thanks"]},
    {"name": "sam-billing", "customer_id": "cust-1002",
     "messages": ["I was charged twice", choose("refund_duplicate"), "yes", "bye"]},
    {"name": "priya-product", "customer_id": "cust-1003",
     "messages": ["the replacement blender leaks too", choose("refund_keep"), "yes", "thanks"]},
    {"name": "lee-account", "customer_id": "cust-1004",
     "messages": ["my account is locked", choose("unlock_link"), "yes", "bye"]},
]

# The stock moodbot knows greet, mood_great, mood_unhappy, affirm, deny, goodbye, bot_challenge.
STOCK_SCRIPTS: List[Dict[str, Any]] = [
    {"name": "sad-helped", "customer_id": None, "messages": ["hello", "I am sad", "yes", "bye"]},
    {"name": "great", "customer_id": None, "messages": ["hi there", "I am feeling great", "perfect", "goodbye"]},
    {"name": "unhappy", "customer_id": None, "messages": ["hey", "I am very unhappy", "yes it did", "see you later"]},
    {"name": "sad-notfixed", "customer_id": None, "messages": ["good morning", "I am sad", "no", "bye"]},
]


# ----------------------------------------------------------------------------------------- harness

@dataclass
class RunResult:
    bot: str
    concurrency: int
    conversations: int
    think_ms: int = 0
    latencies_ms: List[float] = field(default_factory=list)
    errors: int = 0
    empty_replies: int = 0
    wall_s: float = 0.0
    error_samples: List[str] = field(default_factory=list)
    empty_samples: List[str] = field(default_factory=list)
    substituted_options: int = 0
    substitution_samples: List[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return len(self.latencies_ms)

    def summary(self) -> Dict[str, Any]:
        return {
            "bot": self.bot, "concurrency": self.concurrency, "think_ms": self.think_ms,
            "conversations": self.conversations,
            "messages_ok": self.messages, "errors": self.errors, "empty_replies": self.empty_replies,
            "p50_ms": percentile(self.latencies_ms, 50), "p95_ms": percentile(self.latencies_ms, 95),
            "p99_ms": percentile(self.latencies_ms, 99),
            "mean_ms": (sum(self.latencies_ms) / len(self.latencies_ms)) if self.latencies_ms else None,
            "max_ms": max(self.latencies_ms) if self.latencies_ms else None,
            "msg_per_s": (self.messages / self.wall_s) if self.wall_s > 0 else None,
            "wall_s": self.wall_s, "error_samples": self.error_samples[:5],
            "empty_samples": self.empty_samples[:5], "substituted_options": self.substituted_options,
            "substitution_samples": sorted(set(self.substitution_samples))[:8],
        }


def percentile(values: Sequence[float], pct: float) -> Optional[float]:
    """Linear-interpolated percentile (the same definition as numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def send(session: aiohttp.ClientSession, url: str, sender: str, text: str,
               customer_id: Optional[str]) -> List[Dict[str, Any]]:
    payload: Dict[str, Any] = {"sender": sender, "message": text}
    if customer_id:
        payload["metadata"] = {"customer_id": customer_id}
    async with session.post(url, json=payload) as response:
        body = await response.text()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]}")
    replies = json.loads(body)
    if not isinstance(replies, list):
        raise RuntimeError(f"unexpected reply: {body[:200]}")
    return replies


def reply_text(replies: List[Dict[str, Any]]) -> str:
    parts = []
    for reply in replies:
        text = reply.get("text") or ""
        if reply.get("buttons"):
            text += " [" + " | ".join(b.get("title", "?") for b in reply["buttons"]) + "]"
        parts.append(text or json.dumps(reply)[:120])
    return " / ".join(parts)


async def conversation(session: aiohttp.ClientSession, url: str, script: Dict[str, Any], think_s: float,
                       result: Optional[RunResult], transcript: Optional[List[Dict[str, Any]]] = None,
                       rng: Optional[random.Random] = None) -> None:
    sender = f"bench-{script['name']}-{uuid.uuid4().hex}"
    offered: List[str] = []
    for index, text in enumerate(script["messages"]):
        if index and think_s:
            await asyncio.sleep(think_s * (rng.uniform(0.5, 1.5) if rng else 1.0))
        if text.startswith("/choose_option") and offered and text not in offered:
            # Tap a button the bot really offered, as a customer would: the scripted option is not
            # among them (the bot read the complaint differently), so take the first one offered.
            if result is not None:
                result.substituted_options += 1
                result.substitution_samples.append(f"{script['name']}: {text} not offered; took {offered[0]}")
            if transcript is not None:
                transcript.append({"script": script["name"], "note": f"{text} not offered; took {offered[0]}"})
            text = offered[0]
        started = time.perf_counter()
        try:
            replies = await send(session, url, sender, text, script.get("customer_id"))
        except Exception as error:  # noqa: BLE001 - every failure is counted, the run goes on
            if result is None:
                raise
            result.errors += 1
            result.error_samples.append(f"{script['name']} #{index} {text!r}: {type(error).__name__}: {error}"[:300])
            continue
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        offered = [button.get("payload", "") for reply in replies for button in reply.get("buttons") or []]
        if transcript is not None:
            transcript.append({"script": script["name"], "user": text, "bot": reply_text(replies),
                               "ms": round(elapsed_ms, 1)})
        if result is not None:
            result.latencies_ms.append(elapsed_ms)
            if not replies:
                result.empty_replies += 1
                result.empty_samples.append(f"{script['name']} #{index} {text!r}")


def new_session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=max(concurrency, 1) + 4, limit_per_host=max(concurrency, 1) + 4)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))


async def warm_up(base_url: str, scripts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One full conversation per script, sequentially, not counted; returns the transcript."""
    url = f"{base_url}/webhooks/rest/webhook"
    transcript: List[Dict[str, Any]] = []
    async with new_session(1) as session:
        for script in scripts:
            await conversation(session, url, script, 0.0, None, transcript)
    return transcript


async def measure(bot: str, base_url: str, scripts: List[Dict[str, Any]], concurrency: int,
                  conversations: int, think_s: float) -> RunResult:
    url = f"{base_url}/webhooks/rest/webhook"
    result = RunResult(bot=bot, concurrency=concurrency, conversations=conversations,
                       think_ms=int(round(think_s * 1000)))
    gate = asyncio.Semaphore(concurrency)
    rng = random.Random(RANDOM_SEED)  # the same arrivals and pauses for both bots

    async with new_session(concurrency) as session:
        async def one(index: int) -> None:
            async with gate:
                if think_s and index < concurrency:
                    await asyncio.sleep(rng.uniform(0.0, think_s))  # customers do not all arrive at once
                await conversation(session, url, scripts[index % len(scripts)], think_s, result, rng=rng)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(conversations)))
        result.wall_s = time.perf_counter() - started
    return result


def default_conversations(concurrency: int, think_ms: int = 0) -> int:
    """Enough messages for a stable p95: the tail of a run with think time is a few bursts."""
    if concurrency <= 1:
        return 30
    return max(12, (8 if think_ms else 2) * concurrency)


def run_bot(bot: str, base_url: str, scripts: List[Dict[str, Any]], args: argparse.Namespace) -> Dict[str, Any]:
    print(f"[{bot}] warm-up: {len(scripts)} conversation(s), not counted", flush=True)
    transcript = asyncio.run(warm_up(base_url, scripts))
    empty = [t for t in transcript if "user" in t and not t["bot"]]
    notes = [t for t in transcript if "note" in t]
    for note in notes:
        print(f"[{bot}] warm-up note: {note['script']}: {note['note']}", flush=True)
    if empty:
        print(f"[{bot}] WARNING: {len(empty)} warm-up message(s) got no reply: "
              + "; ".join(f"{t['script']}: {t['user']!r}" for t in empty), flush=True)
    if args.show_replies:
        for turn in transcript:
            if "user" in turn:
                print(f"    {turn['script']:>14} | {turn['user'][:45]:<45} | {turn['ms']:>7.0f} ms -> {turn['bot'][:300]}")
    runs = []
    for concurrency, think_ms in args.phases:
        count = args.conversations or default_conversations(concurrency, think_ms)
        print(f"[{bot}] concurrency {concurrency}: {count} conversations x {len(scripts[0]['messages'])} "
              f"messages, think {think_ms} ms", flush=True)
        result = asyncio.run(measure(bot, base_url, scripts, concurrency, count, think_ms / 1000.0))
        summary = result.summary()
        print(f"[{bot}]   done in {result.wall_s:.1f}s: p95 {fmt(summary['p95_ms'])} ms, "
              f"{result.errors} errors, {result.empty_replies} empty replies", flush=True)
        for sample in result.error_samples[:3]:
            print(f"[{bot}]   error: {sample}", flush=True)
        for sample in result.empty_samples[:3]:
            print(f"[{bot}]   empty reply: {sample}", flush=True)
        if result.substituted_options:
            print(f"[{bot}]   {result.substituted_options} scripted option(s) were not offered; tapped the first "
                  f"offered button instead ({'; '.join(summary['substitution_samples'][:4])})", flush=True)
        runs.append(summary)
    return {"warmup_transcript": transcript, "runs": runs}


# ----------------------------------------------------------------------------------------- the bots

def run_mend(args: argparse.Namespace, workdir: Path) -> Dict[str, Any]:
    from bot.services import Services

    db_url = f"sqlite:///{workdir / 'mend-bench.db'}"
    os.environ["MEND_DATABASE_URL"] = db_url
    from bot.setup import ensure_database

    ensure_database(db_url)
    model = PROJECT_ROOT / "models" / "mend.tar.gz"
    if not model.exists():
        raise SystemExit(f"bench: {model} is missing; run `make setup` (or `python -m bot train`) first")
    services = Services(model=model, rasa_port=MEND_PORT, actions_port=MEND_ACTIONS_PORT,
                        tracker_db=workdir / "tracker-bench.db", env={"MEND_DATABASE_URL": db_url},
                        log_dir=LOG_DIR)
    print(f"[mend] starting the action server (:{MEND_ACTIONS_PORT}) and Rasa (:{MEND_PORT}); "
          f"case DB {db_url}; logs in {LOG_DIR.relative_to(PROJECT_ROOT)}/", flush=True)
    started = time.monotonic()
    try:
        services.start(timeout=300)
        startup_s = time.monotonic() - started
        print(f"[mend] ready after {startup_s:.0f}s", flush=True)
        report = run_bot("mend", services.rasa_url, MEND_SCRIPTS, args)
        report["startup_s"] = startup_s
        return report
    finally:
        services.stop()


def rasa_command() -> List[str]:
    rasa = Path(sys.executable).parent / "rasa"
    return [str(rasa)] if rasa.exists() else [sys.executable, "-m", "rasa"]


def stock_env() -> Dict[str, str]:
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", SANIC_HOST=LOOPBACK)
    env.pop("MEND_DATABASE_URL", None)
    return env


def stock_model() -> Optional[Path]:
    models = sorted((STOCK_DIR / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def build_stock_bot() -> Optional[float]:
    """Create and train the stock `rasa init` project once; return the seconds it took (None: cached)."""
    if stock_model() is not None:
        print(f"[stock] reusing the trained stock bot in {STOCK_DIR.relative_to(PROJECT_ROOT)}", flush=True)
        return None
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix="stock-build-", dir=BENCH_DIR))
    print(f"[stock] creating and training the stock bot with `rasa init --no-prompt` (takes a few minutes)",
          flush=True)
    started = time.monotonic()
    try:
        with open(LOG_DIR / "stock-init.log", "w") as log:
            result = subprocess.run(rasa_command() + ["init", "--no-prompt", "--init-dir", str(build)],
                                    cwd=build, env=stock_env(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, timeout=1200)
        if result.returncode != 0 or not list((build / "models").glob("*.tar.gz")):
            raise RuntimeError(f"`rasa init` failed (exit {result.returncode}); see var/bench/log/stock-init.log")
        elapsed = time.monotonic() - started
        if STOCK_DIR.exists():
            shutil.rmtree(STOCK_DIR)
        build.rename(STOCK_DIR)
        print(f"[stock] built in {elapsed:.0f}s", flush=True)
        return elapsed
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)


def wait_for_status(url: str, process: subprocess.Popen, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stock Rasa server exited with code {process.returncode}; "
                               f"see var/bench/log/stock-rasa-{STOCK_PORT}.log")
        try:
            with urllib.request.urlopen(f"{url}/status", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url}/status did not answer within {timeout:.0f}s")


def stop_process_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def run_stock(args: argparse.Namespace) -> Dict[str, Any]:
    build_s = build_stock_bot()
    model = stock_model()
    assert model is not None
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    url = f"http://{LOOPBACK}:{STOCK_PORT}"
    print(f"[stock] starting Rasa (:{STOCK_PORT}) with {model.relative_to(STOCK_DIR)}", flush=True)
    started = time.monotonic()
    log = open(LOG_DIR / f"stock-rasa-{STOCK_PORT}.log", "w")
    process = subprocess.Popen(
        rasa_command() + ["run", "--enable-api", "-i", LOOPBACK, "-p", str(STOCK_PORT),
                          "--model", str(model.relative_to(STOCK_DIR))],
        cwd=STOCK_DIR, env=stock_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    try:
        wait_for_status(url, process, timeout=300)
        startup_s = time.monotonic() - started
        print(f"[stock] ready after {startup_s:.0f}s", flush=True)
        report = run_bot("stock", url, STOCK_SCRIPTS, args)
        report.update(startup_s=startup_s, build_s=build_s)
        return report
    finally:
        stop_process_group(process)
        log.close()


def measure_training() -> float:
    print("[train] training Mend from scratch (`python -m bot train`, empty Rasa cache); this takes minutes",
          flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mend-train-cache-") as cache:
        # An empty cache directory: Rasa would otherwise reuse trained components and time nothing.
        result = subprocess.run([sys.executable, "-m", "bot", "train"], cwd=PROJECT_ROOT, timeout=3600,
                                env=dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), RASA_CACHE_DIRECTORY=cache))
    if result.returncode != 0:
        raise RuntimeError(f"`python -m bot train` failed with exit code {result.returncode}")
    elapsed = time.monotonic() - started
    print(f"[train] trained in {elapsed:.0f}s", flush=True)
    return elapsed


# ----------------------------------------------------------------------------------------- report

def fmt(value: Optional[float], digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(results: Dict[str, Any], args: argparse.Namespace) -> Dict[str, Any]:
    rows = [run for bot in ("mend", "stock") if bot in results for run in results[bot]["runs"]]
    print()
    print("Per-message latency (ms), through the REST channel on 127.0.0.1")
    header = f"{'bot':<6} {'conc':>4} {'think':>6} {'convs':>5} {'msgs':>5} {'p50':>8} {'p95':>8} {'p99':>8} " \
             f"{'max':>8} {'msg/s':>7} {'errors':>6} {'empty':>5}"
    print(header)
    print("-" * len(header))
    for run in rows:
        print(f"{run['bot']:<6} {run['concurrency']:>4} {run['think_ms']:>6} {run['conversations']:>5} "
              f"{run['messages_ok']:>5} {fmt(run['p50_ms'], 1):>8} {fmt(run['p95_ms'], 1):>8} "
              f"{fmt(run['p99_ms'], 1):>8} {fmt(run['max_ms'], 1):>8} {fmt(run['msg_per_s'], 1):>7} "
              f"{run['errors']:>6} {run['empty_replies']:>5}")
    extras = []
    for bot in ("mend", "stock"):
        if bot in results and results[bot].get("startup_s") is not None:
            extras.append(f"{bot} startup {results[bot]['startup_s']:.0f}s")
    if results.get("stock", {}).get("build_s"):
        extras.append(f"stock init+train {results['stock']['build_s']:.0f}s")
    if results.get("train_s") is not None:
        extras.append(f"mend training {results['train_s']:.0f}s")
    if extras:
        print("(" + "; ".join(extras) + ")")

    verdict: Dict[str, Any] = {"ratios_p95": {}, "target_concurrency": TARGET_CONCURRENCY, "phases": {}}
    mend_runs = {(run["concurrency"], run["think_ms"]): run for run in results.get("mend", {}).get("runs", [])}
    stock_runs = {(run["concurrency"], run["think_ms"]): run for run in results.get("stock", {}).get("runs", [])}
    print()
    if stock_runs and mend_runs:
        print("p95 ratio Mend/stock:")
        for phase, run in mend_runs.items():
            stock = stock_runs.get(phase)
            if stock and run["p95_ms"] is not None and stock["p95_ms"]:
                ratio = run["p95_ms"] / stock["p95_ms"]
                verdict["ratios_p95"][phase_name(phase)] = ratio
                print(f"  {phase_name(phase):>18}: {run['p95_ms']:.1f} / {stock['p95_ms']:.1f} = {ratio:.2f}x")
    print(f"Targets at {TARGET_CONCURRENCY} concurrent: p95 <= {TARGET_RATIO}x stock AND p95 < {TARGET_P95_MS:.0f} ms")
    target_phases = [phase for phase in mend_runs if phase[0] == TARGET_CONCURRENCY]
    if not target_phases:
        print(f"  not measured (Mend was not run at concurrency {TARGET_CONCURRENCY})")
    for phase in target_phases:
        verdict["phases"][phase_name(phase)] = check_targets(mend_runs[phase], stock_runs.get(phase))
    return verdict


def phase_name(phase: Tuple[int, int]) -> str:
    return f"c={phase[0]}, think {phase[1]} ms"


def check_targets(mend: Dict[str, Any], stock: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    name = phase_name((mend["concurrency"], mend["think_ms"]))
    if mend["p95_ms"] is None:
        print(f"  {name}: no successful request")
        return {"targets_met": None}
    p95 = mend["p95_ms"]
    absolute_ok = p95 < TARGET_P95_MS
    line = f"  {name}: p95 {p95:.1f} ms < {TARGET_P95_MS:.0f}: {'PASS' if absolute_ok else 'FAIL'}"
    outcome: Dict[str, Any] = {"absolute_ok": absolute_ok, "relative_ok": None, "targets_met": None}
    if stock is None or not stock["p95_ms"]:
        line += f"; <= {TARGET_RATIO}x stock: not measured"
    else:
        ratio = p95 / stock["p95_ms"]
        outcome["relative_ok"] = ratio <= TARGET_RATIO
        outcome["targets_met"] = absolute_ok and outcome["relative_ok"]
        line += (f"; {ratio:.2f}x stock <= {TARGET_RATIO}x: {'PASS' if outcome['relative_ok'] else 'FAIL'}"
                 f" => {'HOLD' if outcome['targets_met'] else 'MISSED'}")
    errors = mend["errors"] + (stock["errors"] if stock else 0)
    if errors:
        line += f" (note: {errors} request error(s); latencies cover successful requests only)"
    print(line)
    return outcome


# ----------------------------------------------------------------------------------------- main

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default=None,
                        help=f"comma-separated concurrency:think_ms phases (default {DEFAULT_PHASES})")
    parser.add_argument("--conversations", type=int, default=None,
                        help="conversations per phase (default 30 at concurrency 1, 2x concurrency without "
                             "think time, 8x with)")
    parser.add_argument("--skip-stock", action="store_true", help="do not build or measure the stock bot")
    parser.add_argument("--skip-mend", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train-time", action="store_true",
                        help="first retrain Mend (`python -m bot train`) and report how long it took")
    parser.add_argument("--show-replies", action="store_true", help="print the warm-up transcripts")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    try:
        phases = [tuple(int(value) for value in part.split(":")) for part in
                  (args.phases or DEFAULT_PHASES).split(",") if part.strip()]
    except ValueError:
        parser.error("--phases takes concurrency:think_ms pairs, e.g. 1:0,20:3000")
    if not phases or any(len(phase) != 2 for phase in phases):
        parser.error("--phases takes concurrency:think_ms pairs, e.g. 1:0,20:3000")
    if any(not 1 <= c <= MAX_CONCURRENCY or not 0 <= t <= 60000 for c, t in phases):
        parser.error(f"concurrency must be between 1 and {MAX_CONCURRENCY}, think time between 0 and 60000 ms")
    args.phases = phases
    if args.conversations is not None and not 1 <= args.conversations <= MAX_CONVERSATIONS:
        parser.error(f"--conversations must be between 1 and {MAX_CONVERSATIONS}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    results: Dict[str, Any] = {"config": {"phases": args.phases, "conversations": args.conversations,
                                          "cpu_count": os.cpu_count()}}
    workdir = Path(tempfile.mkdtemp(prefix="mend-bench-"))
    try:
        if args.train_time:
            results["train_s"] = measure_training()
        if not args.skip_mend:
            results["mend"] = run_mend(args, workdir)
        if not args.skip_stock:
            results["stock"] = run_stock(args)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - a harness failure: say what and exit non-zero
        print(f"bench: harness failure: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results["verdict"] = print_report(results, args)
    # The full results (with the warm-up transcripts) always go to var/bench/latest.json as well.
    for path in filter(None, [args.json, BENCH_DIR / "latest.json"]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    if args.json:
        print(f"\nresults written to {args.json}")
    measured = [run for bot in ("mend", "stock") if bot in results for run in results[bot]["runs"]]
    if measured and all(run["messages_ok"] == 0 for run in measured):
        print("bench: every request failed; see var/bench/log/", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
