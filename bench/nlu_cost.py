"""What the NLU costs: `/model/parse` latency of two models side by side, model size, server memory, training time.

Usage (from the project root; ``make bench`` runs the defaults):

    .venv/bin/python bench/nlu_cost.py [--before PATH | --before-rev REV] [--after PATH]
                                       [--requests 400] [--train-time] [--json PATH]

Issue 10's cost targets: `/model/parse` p95 of the new model at most 1.5 times today's, measured
before and after in ONE run; a full training under 5 minutes on this 2-core machine; the model's
size and the Rasa server's memory reported.

Before and after. ``--after`` (default models/mend.tar.gz) runs on the current tree's code.
``--before-rev`` (default 1211818, the commit issue 10 started from) names "today": its source is
exported with ``git archive`` (read-only for the repository) into var/bench/src-<rev>/, and the
before model runs on THAT code, since a model's custom components (bot.nlu.components...) are
whatever code the server imports, not what was trained. Without ``--before`` the before model is
var/bench/mend-<rev>.tar.gz, trained there once with ``python -m rasa train`` (an empty Rasa
cache) and reused by later runs. ``--before PATH`` uses a model file instead (still on the
revision's code; ``--before-code tree`` runs it on the current tree; ``--after-code rev`` runs the
after model on the revision's code, for an A/A check with the same file on both sides).

The run. One Rasa server per model (``python -m bot.rasa_server --enable-api``: ``rasa run`` with
its auth token from MEND_RASA_TOKEN, a random token per run) on 127.0.0.1:5805 and :5806, with an
endpoints file of their own (in-memory tracker, no action server: /model/parse needs neither),
so nothing of ``make run`` is touched. After both answer /status, every message of the mix is
parsed once by each (uncounted warm-up), then ``--requests`` messages drawn with a fixed seed from
the mix below are sent one at a time, interleaved: each message goes to both servers back to back,
with the order alternating (before-after, after-before...), so machine load and any order effect
hit both alike. Latency is per request (request sent -> JSON reply read, keep-alive connection).

The exit code is 0 whenever the measurement completed, whether or not the targets hold; it is
non-zero only when the harness failed (2: a server did not start, a training failed...; 3: every
request to a server failed; 130: interrupted). The servers are always stopped.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency import percentile, stop_process_group  # noqa: E402  (one definition of each)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
BEFORE_PORT, AFTER_PORT = 5805, 5806
BENCH_DIR = PROJECT_ROOT / "var" / "bench"
LOG_DIR = BENCH_DIR / "log"
DEFAULT_REV = "1211818"
DEFAULT_AFTER = PROJECT_ROOT / "models" / "mend.tar.gz"
DEFAULT_REQUESTS = 400
MAX_REQUESTS = 20000
RANDOM_SEED = 20261203
TARGET_P95_RATIO = 1.5
TARGET_TRAIN_S = 300.0
REQUEST_TIMEOUT_S = 120.0
HUGE_TIMEOUT_S = 600.0  # the 100 KB probe: minutes on 1211818's code (Dec 2026)
STARTUP_TIMEOUT_S = 900.0  # two servers loading at once on a loaded 2-core machine
TRAIN_TIMEOUT_S = 3600.0
HUGE_MESSAGE_CHARS = 100_000


def _pasted_thread(chars: int) -> str:
    """A long complaint of real words: someone pasting a whole e-mail thread into the chat."""
    paragraph = ("I am pasting the whole thread again because nobody seems to read it. On the 3rd I ordered the "
                 "standing desk, on the 5th you told me it had shipped, on the 9th the tracking still said label "
                 "created, on the 12th your colleague promised a call back that never came. ")
    return (paragraph * (chars // len(paragraph) + 1))[:chars]


def _pasted_dump(chars: int) -> str:
    """A 100 KB paste of one unbroken run (a crash dump in hex): huge, but a handful of tokens."""
    rng = random.Random(7)
    prefix = "the app crashed again, here is the log: "
    return prefix + "".join(rng.choice("0123456789abcdef") for _ in range(chars - len(prefix)))


# (kind, text, weight). Written for this benchmark: the kinds of text customers really send, from
# one word to a pasted thread; the weight is the relative chance a drawn request is this message.
MESSAGES: List[Tuple[str, str, float]] = [
    ("short", "hi", 1.0),
    ("short", "where is my order", 1.0),
    ("short", "refund please", 1.0),
    ("short", "card declined again", 1.0),
    ("short", "thanks, that works", 1.0),
    ("short", "still waiting", 1.0),
    ("short", "this is the third time I'm writing", 1.0),
    ("short", "cancel my subscription", 1.0),
    ("short", "app keeps crashing", 1.0),
    ("short", "ok", 1.0),
    ("short", "?", 1.0),
    ("long", "I ordered a pair of running shoes on the 2nd and the tracking page has said 'label created' for "
             "nine days now. Can someone tell me where they actually are?", 1.0),
    ("long", "My parcel came with the box torn open and one of the two mugs inside was in pieces.", 1.0),
    ("long", "I waited on hold for an hour and got cut off right when someone finally picked up.", 1.0),
    ("long", "Nobody has answered my emails for two weeks. I have sent four of them.", 1.0),
    ("long", "Someone got into my account last night and changed the password, and there's a purchase on it "
             "that I never made.", 1.0),
    ("long", "I have explained this exact problem to three different people already and I'm not doing it "
             "again. Read the notes on my case.", 1.0),
    ("long", "Oh great, another 'we're looking into it'. Very reassuring, thanks a lot.", 1.0),
    ("long", "You charged me twice for the same order, 49.99 each time, and the second charge is still on my "
             "statement a week later.", 1.0),
    ("long", "The blender you sent as a replacement leaks from the bottom exactly like the first one did.", 1.0),
    ("long", "Could you tell me how to change the delivery address on an order I placed this morning?", 1.0),
    ("long", "Hello, I'd like a refund for the jacket I returned on Monday; the courier confirmed it reached "
             "your warehouse.", 1.0),
    ("long", "The new card you mailed me arrived snapped in half inside the envelope.", 1.0),
    ("long", "I topped up 20 euros on my prepaid account and the balance didn't change, but the money has "
             "left my bank.", 1.0),
    ("long", "The export to PDF button does nothing at all, I've tried it in two different browsers.", 1.0),
    ("long", "not bad at all, thanks for sorting it out so quickly", 1.0),
    ("long", "Thank you so much for your assistance with the asset transfer yesterday!", 1.0),
    ("long", "So here is the story. I bought the washing machine in March, it was installed by your people in "
             "April, and since then it has stopped mid-cycle about once a week with water still in the drum. "
             "The engineer came in May, replaced a sensor, said it was fixed. It was not. He came back in June, "
             "replaced the same sensor. Same thing. Now I am told the warranty does not cover a third visit "
             "because the fault was 'already repaired twice'. I have two small kids and a broken machine full "
             "of water. What exactly do you suggest I do?", 1.0),
    ("code", "Order #A7-33912-XZ still not shipped, ref TKT-000481", 1.0),
    ("code", "Flight LHR to JFK on 14/03, booking ref QX8P2L, can I change my seat?", 1.0),
    ("code", "Error code E_CONN_RESET 0x80070005 every time I log in", 1.0),
    ("code", "IBAN DE89 3704 0044 0532 0130 00 was charged EUR 120.00 twice", 1.0),
    ("code", "my order 1029384756 never arrived", 1.0),
    ("code", "ASAP!!! ORDER 55123 WRONG SIZE", 1.0),
    ("code", "https://shop.example.com/account/orders/88231?tab=tracking&ref=mail shows nothing", 1.0),
    ("emoji", "\U0001F621\U0001F621\U0001F621", 1.0),
    ("emoji", "\U0001F44D", 1.0),
    ("emoji", "\U0001F64F\U0001F64F please help \U0001F4E6\u274C", 1.0),
    ("foreign", "Mi pedido no ha llegado y nadie me responde.", 1.0),
    ("foreign", "Ich wurde zweimal belastet, bitte erstatten Sie den Betrag.", 1.0),
    ("foreign", "Je n'arrive plus \u00e0 me connecter \u00e0 mon compte depuis hier.", 1.0),
    ("foreign", "\u6ce8\u6587\u3057\u305f\u5546\u54c1\u304c\u307e\u3060\u5c4a\u304d\u307e\u305b\u3093\u3002", 1.0),
    ("foreign", "\u041c\u043e\u0439 \u0437\u0430\u043a\u0430\u0437 \u043f\u0440\u0438\u0448\u0451\u043b "
                "\u043f\u043e\u0432\u0440\u0435\u0436\u0434\u0451\u043d\u043d\u044b\u043c.", 1.0),
    ("foreign", "\u0637\u0644\u0628\u064a \u0644\u0645 \u064a\u0635\u0644 \u0628\u0639\u062f", 1.0),
    ("edge", "", 1.0),
    ("edge", "   \n\t ", 1.0),
    ("edge", "\x00\x07hello\x1b[31m I want a refund\x7f", 1.0),
    ("edge", "a" * 3000, 0.5),
    # The longest text the gateway lets through to Rasa (max_message_chars, 2000), in words.
    ("paste", _pasted_thread(2000), 0.5),
]

# 100 KB messages are not in the drawn mix: only Rasa's loopback REST channel accepts one (the gateway
# refuses more than 2000 characters), and one that takes minutes would block the server's event loop and
# delay the messages after it. They are sent once to each server after the measured run, each timed alone.
HUGE_PROBE = ("huge", _pasted_dump(HUGE_MESSAGE_CHARS))
# 100 KB of real words is ~20,000 tokens; the DIET transformer's attention over them took 12-15 GB of
# RSS per server and got one OOM-killed on a 24 GB machine (Dec 2026). Opt-in only: --huge-words.
HUGE_WORDS_PROBE = ("huge-words", _pasted_thread(HUGE_MESSAGE_CHARS))


def draw_messages(count: int, seed: int = RANDOM_SEED) -> List[int]:
    """Indexes into MESSAGES, drawn by weight with a fixed seed: the same mix for both models, every run."""
    rng = random.Random(seed)
    return rng.choices(range(len(MESSAGES)), weights=[weight for _, _, weight in MESSAGES], k=count)


# ----------------------------------------------------------------------------------------- figures

def latency_summary(latencies: Sequence[float]) -> Dict[str, Optional[float]]:
    return {"p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "p99_ms": percentile(latencies, 99),
            "mean_ms": (sum(latencies) / len(latencies)) if latencies else None,
            "max_ms": max(latencies) if latencies else None}


def descendants(pid: int) -> List[int]:
    """The process and all its descendants, from /proc/<pid>/stat's parent ids."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # the command name may hold spaces or parentheses
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [pid]
    while queue and len(found) < 10000:
        current = queue.pop()
        found.append(current)
        queue.extend(children.get(current, []))
    return found


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_mb(pid: int) -> Dict[str, Any]:
    """Resident memory (VmRSS) of the server and its children, and the server's peak (VmHWM)."""
    pids = descendants(pid)
    return {"rss_mb": sum(status_kb(p, "VmRSS") for p in pids) / 1024.0,
            "peak_rss_mb": status_kb(pid, "VmHWM") / 1024.0, "processes": len(pids)}


# ----------------------------------------------------------------------------------------- code and models

def run_git(*args: str) -> str:
    """Read-only git queries on the project's repository."""
    return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], check=True, capture_output=True,
                          text=True, timeout=120).stdout.strip()


def resolve_rev(rev: str) -> str:
    try:
        return run_git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError:
        raise RuntimeError(f"{rev!r} is not a commit of this repository") from None


def child_env(code_dir: Path, **extra: str) -> Dict[str, str]:
    """Environment for a child that must import `bot` from code_dir only (and no telemetry)."""
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", SANIC_HOST=LOOPBACK,
               PYTHONPATH=str(code_dir))
    env.update(extra)
    return env


def export_revision(sha: str) -> Path:
    """The revision's files in var/bench/src-<sha7>/ (git archive: nothing in the repository changes), once."""
    target = BENCH_DIR / f"src-{sha[:7]}"
    if (target / ".complete").exists():
        return target
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    staging = Path(tempfile.mkdtemp(prefix=f"src-{sha[:7]}-", dir=BENCH_DIR))
    try:
        archive = staging / "rev.tar"
        with open(archive, "wb") as out:
            subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", "--format=tar", sha], stdout=out,
                           check=True, timeout=300)
        tree = staging / "tree"
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.10.12+: refuse links and paths out of the tree
                tar.extractall(tree, filter="data")
            else:
                tar.extractall(tree)
        archive.unlink()
        # The blank spaCy pipeline config.yml points at (var/spacy/...): built by the revision's own code.
        result = subprocess.run([sys.executable, "-c", "from bot.setup import ensure_spacy; ensure_spacy()"],
                                cwd=tree, env=child_env(tree), capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"building the spaCy pipeline at {sha[:7]} failed: {result.stderr[-500:]}")
        (tree / ".complete").write_text(sha + "\n")
        tree.rename(target)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def train(code_dir: Path, out_dir: Path, log_path: Path) -> Tuple[Path, float]:
    """A full training (NLU and core) of code_dir's data with an empty Rasa cache; (model, seconds)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mend-cost-cache-") as cache, open(log_path, "w") as log:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "rasa", "train", "--fixed-model-name", "mend", "--out", str(out_dir),
             "--config", "config.yml", "--domain", "domain.yml", "--data", "data"],
            cwd=code_dir, env=child_env(code_dir, RASA_CACHE_DIRECTORY=cache), stdout=log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=TRAIN_TIMEOUT_S)
        elapsed = time.monotonic() - started
    model = out_dir / "mend.tar.gz"
    if result.returncode != 0 or not model.exists():
        raise RuntimeError(f"`rasa train` in {code_dir} failed (exit {result.returncode}); see {log_path}")
    return model, elapsed


def before_model(sha: str, code_dir: Path) -> Tuple[Path, Optional[float]]:
    """var/bench/mend-<sha7>.tar.gz, trained from the revision on first use; (model, training seconds)."""
    model = BENCH_DIR / f"mend-{sha[:7]}.tar.gz"
    info = model.with_suffix("").with_suffix(".json")
    if model.exists():
        print(f"[before] reusing {rel(model)}", flush=True)
        try:
            return model, json.loads(info.read_text()).get("train_s")
        except (OSError, ValueError):
            return model, None
    print(f"[before] training the model of {sha[:7]} in {rel(code_dir)} (once; minutes)", flush=True)
    with tempfile.TemporaryDirectory(prefix="mend-cost-out-", dir=BENCH_DIR) as out:
        trained, elapsed = train(code_dir, Path(out), LOG_DIR / f"train-{sha[:7]}.log")
        shutil.move(str(trained), model)
    info.write_text(json.dumps({"rev": sha, "train_s": elapsed, "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                              time.gmtime())}))
    print(f"[before] trained in {elapsed:.0f}s -> {rel(model)}", flush=True)
    return model, elapsed


def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------------------- servers

LAUNCHER = ("import os, sys; from rasa.__main__ import main; "
            "sys.argv = ['rasa', 'run', *sys.argv[1:], '--auth-token', os.environ['MEND_RASA_TOKEN']]; main()")


@dataclass
class Server:
    """One Rasa server on loopback serving one model with one revision's code."""

    name: str
    model: Path
    code_dir: Path
    port: int
    token: str
    workdir: Path
    process: Optional[subprocess.Popen] = None
    latencies_ms: List[float] = field(default_factory=list)
    by_kind: Dict[str, List[float]] = field(default_factory=dict)
    errors: int = 0
    error_samples: List[str] = field(default_factory=list)
    startup_s: Optional[float] = None
    responsive: bool = True
    _connection: Optional[http.client.HTTPConnection] = None
    _log: Any = None

    def start(self) -> None:
        if port_in_use(self.port):
            raise RuntimeError(f"port {self.port} is already in use (another benchmark?); pick --{self.name}-port")
        endpoints = self.workdir / f"endpoints-{self.name}.yml"
        endpoints.write_text("# nlu_cost: /model/parse needs no action server; conversations stay in memory\n"
                             "lock_store:\n  type: in_memory\n")
        options = ["--enable-api", "-i", LOOPBACK, "-p", str(self.port), "--model", str(self.model.resolve()),
                   "--endpoints", str(endpoints)]
        if (self.code_dir / "bot" / "rasa_server.py").exists():
            command = [sys.executable, "-m", "bot.rasa_server", *options]  # how Mend runs Rasa
        else:
            command = [sys.executable, "-c", LAUNCHER, *options]  # an older revision: same, token kept off argv
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self._log = open(LOG_DIR / f"nlu-cost-{self.name}-{self.port}.log", "w")
        self.process = subprocess.Popen(command, cwd=self.code_dir,
                                        env=child_env(self.code_dir, MEND_RASA_TOKEN=self.token,
                                                      MEND_ACTION_TOKEN=secrets.token_urlsafe(16)),
                                        stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        self._started = time.monotonic()

    def url(self, path: str) -> str:
        return f"{path}?{urllib.parse.urlencode({'token': self.token})}"

    def ready(self) -> bool:
        """True once /status names a loaded model; raises if the server died."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.name} Rasa server exited with code {self.process.returncode}; "
                               f"see {rel(LOG_DIR)}/nlu-cost-{self.name}-{self.port}.log")
        try:
            status, body = self.request("GET", "/status", None, timeout=5)
        except (OSError, http.client.HTTPException):
            self.close_connection()
            return False
        try:
            loaded = status == 200 and bool(json.loads(body).get("model_id"))
        except (ValueError, AttributeError):
            loaded = False
        if loaded and self.startup_s is None:
            self.startup_s = time.monotonic() - self._started
            return True
        return False

    def request(self, method: str, path: str, payload: Optional[Dict[str, Any]],
                timeout: float = REQUEST_TIMEOUT_S) -> Tuple[int, bytes]:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout)
        self._connection.timeout = timeout
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self._connection.request(method, self.url(path), body=body, headers=headers)
        response = self._connection.getresponse()
        return response.status, response.read()

    def parse(self, kind: str, text: str, counted: bool, timeout: float = REQUEST_TIMEOUT_S,
              recover_s: float = HUGE_TIMEOUT_S) -> Optional[float]:
        """Parse one message; its latency in ms, or None when it failed (counted as an error).

        After a timeout the server is still busy with the message: wait up to recover_s until it answers
        /status again (self.responsive says whether it did), so the next message does not queue behind it.
        """
        started = time.perf_counter()
        try:
            status, body = self.request("POST", "/model/parse", {"text": text}, timeout=timeout)
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
            reply = json.loads(body)
            if not isinstance(reply, dict) or "intent" not in reply:
                raise RuntimeError(f"unexpected reply: {body[:200]!r}")
        except Exception as error:  # noqa: BLE001 - every failure is counted, the run goes on
            self.close_connection()
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the {self.name} Rasa server died (exit {self.process.returncode}; -9 is often "
                                   f"the kernel's OOM killer) while parsing a {kind} message of {len(text)} "
                                   f"characters") from error
            if counted:
                self.errors += 1
                self.error_samples.append(f"{kind} {text[:40]!r}: {type(error).__name__}: {error}"[:300])
            if isinstance(error, (TimeoutError, socket.timeout)):
                self.responsive = self.wait_idle(recover_s)
            return None
        if counted:
            self.latencies_ms.append(elapsed_ms)
            self.by_kind.setdefault(kind, []).append(elapsed_ms)
        return elapsed_ms

    def wait_idle(self, timeout: float = HUGE_TIMEOUT_S) -> bool:
        """Wait (bounded) until the server answers /status again; False if it never did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready():
                return True
            time.sleep(1.0)
        return False

    def close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def stop(self) -> None:
        self.close_connection()
        if self.process is not None:
            stop_process_group(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        return probe.connect_ex((LOOPBACK, port)) == 0


def wait_ready(servers: Sequence[Server], timeout: float = STARTUP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    pending = list(servers)
    while pending and time.monotonic() < deadline:
        pending = [server for server in pending if not server.ready()]
        if pending:
            time.sleep(1.0)
    if pending:
        raise TimeoutError(f"{', '.join(s.name for s in pending)} did not load its model within {timeout:.0f}s")


def huge_probe(servers: Sequence[Server], probes: Sequence[Tuple[str, str]], timeout: float) -> Dict[str, Any]:
    """Each 100 KB message once to each server, alone: seconds (None: failed or timed out) and RSS after."""
    report: Dict[str, Any] = {}
    for kind, text in probes:
        for server in servers:
            if not server.responsive:
                continue  # still busy with the previous probe
            print(f"[{server.name}] {kind}: one {len(text) // 1000} KB message (timeout {timeout:.0f}s)", flush=True)
            try:
                elapsed_ms = server.parse(kind, text, counted=False, timeout=timeout, recover_s=timeout)
                responsive = server.responsive
                died = None
            except RuntimeError as error:  # the server died on it (the OOM killer): a finding, not a failure
                elapsed_ms, responsive, died = None, False, str(error)
            report.setdefault(kind, {})[server.name] = {
                "seconds": None if elapsed_ms is None else elapsed_ms / 1000.0, "timeout_s": timeout,
                "responsive_after": responsive, "died": died, "memory_after": memory_mb(server.process.pid)}
            print(f"[{server.name}]   " + (died or (f"{elapsed_ms / 1000.0:.1f}s" if elapsed_ms is not None else
                                                   f"no answer within {timeout:.0f}s")) +
                  ("" if responsive or died else "; the server did not answer /status afterwards"), flush=True)
    return report


def interleaved_run(before: Server, after: Server, order: Sequence[int]) -> float:
    """Each drawn message to both servers back to back, alternating who goes first; returns wall seconds."""
    started = time.monotonic()
    for index, message in enumerate(order):
        kind, text, _ = MESSAGES[message]
        pair = (before, after) if index % 2 == 0 else (after, before)
        for server in pair:
            server.parse(kind, text, counted=True)
            if not server.responsive:
                raise RuntimeError(f"the {server.name} server still had not answered {HUGE_TIMEOUT_S:.0f}s after a "
                                   f"request timed out ({kind} message of {len(text)} characters)")
        if (index + 1) % 100 == 0:
            print(f"  {index + 1}/{len(order)} messages", flush=True)
    return time.monotonic() - started


# ----------------------------------------------------------------------------------------- report

def fmt(value: Optional[float], digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_report(results: Dict[str, Any]) -> Dict[str, Any]:
    models = results["models"]
    print()
    print(f"/model/parse latency (ms), {results['config']['requests']} requests per model, one at a time, "
          f"interleaved, on {LOOPBACK} ({results['config']['cpu_count']} CPUs)")
    header = (f"{'model':<7} {'MB':>6} {'ok':>5} {'err':>4} {'p50':>7} {'p95':>7} {'p99':>7} {'mean':>7} "
              f"{'max':>8} {'RSS warm':>9} {'RSS end':>8} {'peak':>7}  code")
    print(header)
    print("-" * len(header))
    for name in ("before", "after"):
        info = models[name]
        lat = info["latency"]
        print(f"{name:<7} {info['size_mb']:>6.1f} {info['ok']:>5} {info['errors']:>4} {fmt(lat['p50_ms']):>7} "
              f"{fmt(lat['p95_ms']):>7} {fmt(lat['p99_ms']):>7} {fmt(lat['mean_ms']):>7} {fmt(lat['max_ms']):>8} "
              f"{fmt(info['memory_warm']['rss_mb'], 0):>9} {fmt(info['memory_end']['rss_mb'], 0):>8} "
              f"{fmt(info['memory_end']['peak_rss_mb'], 0):>7}  {info['code']}")
    load = results.get("loadavg", {})
    if load:
        print(f"(run took {results['wall_s']:.0f}s; 1-minute load average {load['start'][0]:.1f} at the start, "
              f"{load['end'][0]:.1f} at the end: other work on the machine slows both sides alike)")
    print("(MB: model file; RSS warm/end: the server's resident memory in MB after warm-up and after the run, "
          "children included; peak: its VmHWM)")
    kinds = sorted({kind for name in ("before", "after") for kind in models[name]["by_kind"]})
    print("mean ms by kind:  " + "  ".join(
        f"{kind} {fmt(models['before']['by_kind'].get(kind, {}).get('mean_ms'), 0)}/"
        f"{fmt(models['after']['by_kind'].get(kind, {}).get('mean_ms'), 0)}" for kind in kinds)
          + "   (before/after)")
    for kind, sides in results.get("huge", {}).items():
        print(f"{kind} (100 KB, sent alone after the run): " + "; ".join(
            f"{name} " + ("DIED" if side["died"] else f"{side['seconds']:.1f}s" if side["seconds"] is not None else
                          f"no answer within {side['timeout_s']:.0f}s")
            + f", RSS after {side['memory_after']['rss_mb']:.0f} MB (peak {side['memory_after']['peak_rss_mb']:.0f})"
            + ("" if side["responsive_after"] else ", UNRESPONSIVE afterwards")
            for name, side in sides.items()))
    for name in ("before", "after"):
        for sample in models[name]["error_samples"][:3]:
            print(f"[{name}] error: {sample}")

    verdict: Dict[str, Any] = {}
    before_p95, after_p95 = models["before"]["latency"]["p95_ms"], models["after"]["latency"]["p95_ms"]
    print()
    if before_p95 and after_p95 is not None:
        ratio = after_p95 / before_p95
        verdict["p95_ratio"] = ratio
        verdict["p95_target_met"] = ratio <= TARGET_P95_RATIO
        print(f"p95 after/before: {after_p95:.1f} / {before_p95:.1f} = {ratio:.2f}x "
              f"(target <= {TARGET_P95_RATIO}x): {'MET' if ratio <= TARGET_P95_RATIO else 'NOT MET'}")
    else:
        verdict["p95_ratio"], verdict["p95_target_met"] = None, None
        print("p95 after/before: not measured (no successful request on one side)")
    if results.get("train_s") is not None:
        train_s = results["train_s"]
        verdict["train_target_met"] = train_s < TARGET_TRAIN_S
        print(f"full training (current tree, NLU and core, empty cache): {train_s:.0f}s "
              f"(target < {TARGET_TRAIN_S:.0f}s): {'MET' if train_s < TARGET_TRAIN_S else 'NOT MET'}; "
              f"model {results['train_model_mb']:.1f} MB; load average {results['train_loadavg_end'][1]:.1f} "
              f"over the last 5 minutes")
    elif results.get("train_error"):
        print(f"full training: FAILED ({results['train_error']})")
    else:
        print("full training: not timed (add --train-time)")
    if models["before"].get("train_s") is not None:
        print(f"(the before model was trained from {models['before']['rev'][:7]} in "
              f"{models['before']['train_s']:.0f}s)")
    return verdict


# ----------------------------------------------------------------------------------------- main

def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, default=None,
                        help="the before model file (default var/bench/mend-<rev>.tar.gz, trained from --before-rev "
                             "when missing)")
    parser.add_argument("--before-rev", default=DEFAULT_REV,
                        help=f"the revision that is 'today' (default {DEFAULT_REV}); the before server runs its code")
    parser.add_argument("--before-code", choices=("rev", "tree"), default="rev",
                        help="code the before server runs: the revision's (default) or the current tree's")
    parser.add_argument("--after", type=Path, default=DEFAULT_AFTER,
                        help="the after model file (default models/mend.tar.gz)")
    parser.add_argument("--after-code", choices=("tree", "rev"), default="tree",
                        help="code the after server runs: the current tree's (default) or --before-rev's")
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS,
                        help=f"messages sent to each model (default {DEFAULT_REQUESTS})")
    parser.add_argument("--seed", type=int, default=RANDOM_SEED, help="seed of the message draw")
    parser.add_argument("--before-port", type=int, default=BEFORE_PORT)
    parser.add_argument("--after-port", type=int, default=AFTER_PORT)
    parser.add_argument("--train-time", action="store_true",
                        help="first time a full training of the current tree (rasa train, empty cache, into a temp dir)")
    parser.add_argument("--skip-huge", action="store_true",
                        help="do not send the 100 KB message (a pasted hex dump) after the run")
    parser.add_argument("--huge-words", action="store_true",
                        help="also send a 100 KB message of real words (~20,000 tokens); needed 12-15 GB per server")
    parser.add_argument("--huge-timeout", type=float, default=HUGE_TIMEOUT_S,
                        help=f"seconds to wait for a 100 KB message (default {HUGE_TIMEOUT_S:.0f})")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if not 1 <= args.huge_timeout <= 3600:
        parser.error("--huge-timeout must be between 1 and 3600 seconds")
    if not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--requests must be between 1 and {MAX_REQUESTS}")
    if args.before_port == args.after_port or not all(1024 <= p <= 65535 for p in (args.before_port, args.after_port)):
        parser.error("--before-port and --after-port must be two different ports from 1024 to 65535")
    for option in ("before", "after"):
        path = getattr(args, option)
        if path is not None and not path.is_file():
            parser.error(f"--{option} {path}: no such model file"
                         + (" (run `make setup` first)" if option == "after" else ""))
    return args


def measure_training(results: Dict[str, Any]) -> None:
    """Time a full training of the current tree; a failure is recorded and the latency run goes on."""
    print("[train] full training of the current tree (`rasa train`, NLU and core, empty cache); minutes", flush=True)
    with tempfile.TemporaryDirectory(prefix="mend-cost-train-") as out:
        try:
            model, elapsed = train(PROJECT_ROOT, Path(out), LOG_DIR / "train-tree.log")
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            results["train_error"] = str(error)
            print(f"[train] FAILED: {error}", flush=True)
            return
        results["train_s"] = elapsed
        results["train_model_mb"] = model.stat().st_size / 1e6
        results["train_loadavg_end"] = os.getloadavg()
    print(f"[train] trained in {elapsed:.0f}s", flush=True)


def run(args: argparse.Namespace, results: Dict[str, Any], workdir: Path) -> List[Server]:
    if args.train_time:
        measure_training(results)
    sha = resolve_rev(args.before_rev)
    need_rev_code = args.before_code == "rev" or args.after_code == "rev" or args.before is None
    rev_dir = export_revision(sha) if need_rev_code else None
    train_s = None
    if args.before is None:
        assert rev_dir is not None
        before_path, train_s = before_model(sha, rev_dir)
    else:
        before_path = args.before
    code = {"rev": rev_dir, "tree": PROJECT_ROOT}
    token = secrets.token_urlsafe(24)
    servers = [Server("before", before_path, code[args.before_code], args.before_port, token, workdir),
               Server("after", args.after, code[args.after_code], args.after_port, token, workdir)]
    results["models"] = {}
    for server, code_name in zip(servers, (args.before_code, args.after_code)):
        results["models"][server.name] = {
            "path": str(server.model), "size_mb": server.model.stat().st_size / 1e6,
            "code": f"{sha[:7]} ({rel(server.code_dir)})" if code_name == "rev" else "current tree",
            "rev": sha, "port": server.port}
    results["models"]["before"]["train_s"] = train_s
    return servers


def measure(servers: List[Server], args: argparse.Namespace, results: Dict[str, Any]) -> None:
    before, after = servers
    for server in servers:
        print(f"[{server.name}] starting Rasa on {LOOPBACK}:{server.port} with {rel(server.model)} "
              f"({results['models'][server.name]['code']})", flush=True)
        server.start()
    wait_ready(servers)
    for server in servers:
        print(f"[{server.name}] ready after {server.startup_s:.0f}s", flush=True)
    print(f"warm-up: each of the {len(MESSAGES)} messages once per model (not counted)", flush=True)
    for index, (kind, text, _) in enumerate(MESSAGES):
        for server in (before, after) if index % 2 == 0 else (after, before):
            server.parse(kind, text, counted=False)
    warm = {server.name: memory_mb(server.process.pid) for server in servers}
    order = draw_messages(args.requests, args.seed)
    print(f"measuring: {len(order)} messages per model, interleaved", flush=True)
    load_start = os.getloadavg()
    wall_s = interleaved_run(before, after, order)
    results["loadavg"] = {"start": load_start, "end": os.getloadavg()}
    for server in servers:
        entry = results["models"][server.name]
        entry.update(ok=len(server.latencies_ms), errors=server.errors, error_samples=server.error_samples[:10],
                     latency=latency_summary(server.latencies_ms), startup_s=server.startup_s,
                     memory_warm=warm[server.name], memory_end=memory_mb(server.process.pid),
                     by_kind={kind: {"n": len(values), **latency_summary(values)}
                              for kind, values in sorted(server.by_kind.items())})
    results["wall_s"] = wall_s
    probes = ([] if args.skip_huge else [HUGE_PROBE]) + ([HUGE_WORDS_PROBE] if args.huge_words else [])
    if probes:
        results["huge"] = huge_probe(servers, probes, args.huge_timeout)


def _interrupted(signum: int, frame: Any) -> None:
    """SIGTERM ends the run like Ctrl-C: the servers are stopped on the way out."""
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    results: Dict[str, Any] = {"config": {
        "requests": args.requests, "seed": args.seed, "before_rev": args.before_rev, "before_code": args.before_code,
        "after_code": args.after_code, "cpu_count": os.cpu_count(), "messages_in_mix": len(MESSAGES),
        "huge_words": args.huge_words,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="nlu-cost-", dir=BENCH_DIR))
    servers: List[Server] = []
    previous_term = signal.signal(signal.SIGTERM, _interrupted)
    try:
        servers = run(args, results, workdir)
        measure(servers, args, results)
    except KeyboardInterrupt:
        print("nlu_cost: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - a harness failure: say what and exit non-zero
        print(f"nlu_cost: harness failure: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    finally:
        for server in servers:
            server.stop()
        signal.signal(signal.SIGTERM, previous_term)
        shutil.rmtree(workdir, ignore_errors=True)

    results["verdict"] = print_report(results)
    for path in filter(None, [args.json, BENCH_DIR / "nlu_cost-latest.json"]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    if args.json:
        print(f"\nfigures written to {args.json}")
    if any(results["models"][name]["ok"] == 0 for name in ("before", "after")):
        print(f"nlu_cost: every request to a server failed; see {rel(LOG_DIR)}/", file=sys.stderr)
        return 3
    if results.get("train_error"):
        return 2  # the training figure asked for is missing
    return 0


if __name__ == "__main__":
    sys.exit(main())
