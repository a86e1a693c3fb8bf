"""Locust load for Mend: customers on the widget WebSocket and agents on the console.

Run it through bench/load/run.py (which starts a stack, or points at running gateways, and checks the
stored transcripts afterwards). Configured by environment variables, so every Locust process
(``--processes N``) reads the same settings:

  LOAD_GATEWAYS            comma-separated gateway base URLs; customers and agents are spread over them
  LOAD_THINK_MIN/MAX       customer think time between messages, seconds (default 3 and 8)
  LOAD_REPLY_TIMEOUT       seconds a customer waits for a reply before giving up on the conversation (90)
  LOAD_AGENTS              agent users (Locust ``fixed_count``; 0: run.py starts only Customer)
  LOAD_STAFF               "user:password,user:password" console accounts, one per agent (reused round-robin)
  LOAD_AGENT_THINK_MIN/MAX an agent's typing time before a reply, seconds (default 2 and 5)
  LOAD_AGENT_MAX_HELD      conversations one agent holds at once (default 4)
  LOAD_AGENT_REPLIES       replies an agent sends in a conversation before handing it back to the bot (2)
  LOAD_RESULTS_DIR         where each process writes customers-<pid>.jsonl (default var/load)

Per turn (a customer message sent -> the first bot, agent or system message after it) a Locust request
event ``WS turn`` is fired, so Locust's own table shows p50/p95/p99, requests/s and failures; the
results file also records who answered, for run.py's breakdown and the invariant check.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import gevent
import requests
import websocket
from gevent.queue import Empty, Queue
from locust import User, between, constant, task

GATEWAYS = [u.strip().rstrip("/") for u in os.environ.get("LOAD_GATEWAYS", "http://127.0.0.1:5880").split(",")
            if u.strip()]
THINK_MIN = float(os.environ.get("LOAD_THINK_MIN", "3"))
THINK_MAX = float(os.environ.get("LOAD_THINK_MAX", "8"))
REPLY_TIMEOUT = float(os.environ.get("LOAD_REPLY_TIMEOUT", "90"))
AGENTS = int(os.environ.get("LOAD_AGENTS", "2"))
STAFF = [tuple(pair.split(":", 1)) for pair in os.environ.get("LOAD_STAFF", "").split(",") if ":" in pair]
AGENT_THINK_MIN = float(os.environ.get("LOAD_AGENT_THINK_MIN", "2"))
AGENT_THINK_MAX = float(os.environ.get("LOAD_AGENT_THINK_MAX", "5"))
AGENT_MAX_HELD = int(os.environ.get("LOAD_AGENT_MAX_HELD", "4"))
AGENT_REPLIES = int(os.environ.get("LOAD_AGENT_REPLIES", "2"))
RESULTS_DIR = Path(os.environ.get("LOAD_RESULTS_DIR", "var/load"))
RECONNECT_GIVE_UP = float(os.environ.get("LOAD_RECONNECT_GIVE_UP", "180"))
ANSWERING = ("bot", "agent", "system")

# Short complaint conversations; about a third ask for a person at some point.
SCRIPTS: List[List[str]] = [
    ["hi, my parcel still hasn't arrived", "it was supposed to come last week",
     "my email is dana@example.com, order A1001", "ok, thanks"],
    ["I was charged twice for my order!!", "my email is sam@example.com and the order is B2002",
     "I want my money back", "thanks"],
    ["the blender I got is broken", "it stopped working after two days", "can I get a replacement?",
     "ok thank you"],
    ["I can't log into my account", "I reset the password twice already", "still nothing, this is annoying"],
    ["where is my order?", "it's been ten days", "can I just speak to a human please, this isn't working",
     "hello? is anyone there?", "ok thanks for the help"],
    ["This is the third time I'm contacting you about my refund", "I want to talk to a HUMAN. Not a stupid bot.",
     "the refund for order C3003", "fine, thanks"],
    ["Could I speak to a person please?", "it's about a damaged delivery", "the box was crushed", "thanks"],
    ["your app keeps crashing when I pay", "I tried three times", "whatever, bye"],
    ["my package was delivered to the wrong address", "I never got it",
     "my email is priya@example.com, order C3003", "please send a replacement", "thanks"],
    ["the item is not what I ordered", "I want a refund", "connect me to customer support please",
     "the order is A1001", "thank you"],
]
AGENT_LINES = [
    "Hi, I'm sorry about this. I'm looking at your order now.",
    "Thanks for your patience. I've checked it and I'm sorting it out for you.",
    "I understand, that's frustrating. I've escalated it and you'll get an update today.",
    "Thanks for waiting. I've issued the fix; you'll get a confirmation email shortly.",
]

_results_lock = threading.Lock()
_results_handle = None
_ids = itertools.count(1)


def record(row: Dict[str, Any]) -> None:
    """One JSON line in this process's results file (flushed: a killed run keeps what it wrote)."""
    global _results_handle
    with _results_lock:
        if _results_handle is None:
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            _results_handle = open(RESULTS_DIR / f"customers-{os.getpid()}.jsonl", "a", encoding="utf-8")
        _results_handle.write(json.dumps(row, separators=(",", ":")) + "\n")
        _results_handle.flush()


def ws_url(base: str, path: str) -> str:
    return ("wss://" + base[len("https://"):] if base.startswith("https://")
            else "ws://" + base[len("http://"):]) + path


class Socket:
    """A WebSocket read by its own greenlet into a queue (so protocol pings are answered during think time)."""

    def __init__(self, url: str, headers: List[str]) -> None:
        self.ws = websocket.create_connection(url, header=headers, timeout=15)
        self.ws.settimeout(None)
        self.inbox: Queue = Queue()
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        try:
            while True:
                data = self.ws.recv()
                if not data:
                    break
                try:
                    self.inbox.put(json.loads(data))
                except ValueError:
                    continue
        except Exception:  # closed, reset, killed gateway
            pass
        self.inbox.put({"type": "_closed"})

    def send(self, frame: Dict[str, Any]) -> bool:
        try:
            self.ws.send(json.dumps(frame))
            return True
        except Exception:
            return False

    def get(self, timeout: float) -> Optional[Dict[str, Any]]:
        try:
            return self.inbox.get(timeout=max(timeout, 0.0))
        except Empty:
            return None

    def close(self) -> None:
        """Send the close frame and drop the connection without waiting for the server's answer (a slow gateway
        must not make Locust's stop take minutes: users are stopped one after the other)."""
        self.reader.kill(block=False)
        try:
            self.ws.send_close()
        except Exception:
            pass
        try:
            self.ws.shutdown()
        except Exception:
            pass


class Customer(User):
    """A customer: opens the widget, types a short complaint conversation, waits for each reply, thinks."""

    weight = 1
    wait_time = between(THINK_MIN, THINK_MAX)  # before the next customer (conversation) on this user

    def on_start(self) -> None:
        number = next(_ids)
        self.uid = f"L{os.getpid()}-{number}-{uuid.uuid4().hex[:6]}"
        self.home = number % len(GATEWAYS)
        self.socket: Optional[Socket] = None
        self.conversation_id: Optional[str] = None
        self.resume: Optional[str] = None
        self.pending: Dict[str, Dict[str, Any]] = {}
        self.early: List[Dict[str, Any]] = []
        self.conversations = 0

    def on_stop(self) -> None:
        self._close()

    def _close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def _fire(self, name: str, started: float, error: Optional[str] = None) -> None:
        self.environment.events.request.fire(
            request_type="WS", name=name, response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0, exception=Exception(error) if error else None, context={})

    def _connect(self, gateway_index: int, resume: Optional[str]) -> Dict[str, Any]:
        base = GATEWAYS[gateway_index % len(GATEWAYS)]
        socket = Socket(ws_url(base, "/ws/widget"), [f"Origin: {base}"])
        socket.send({"type": "hello", "token": None, "resume": resume})
        first = socket.get(30)
        if first is None or first.get("type") != "welcome":
            socket.close()
            raise ConnectionError(f"no welcome from {base}: {first}")
        self.socket = socket
        self.gateway = base
        return first

    def _open(self) -> bool:
        started = time.perf_counter()
        try:
            welcome = self._connect(self.home, None)
        except Exception as error:
            self._fire("open", started, f"{type(error).__name__}: {error}")
            return False
        self._fire("open", started)
        self.conversation_id = welcome["conversation_id"]
        self.resume = welcome.get("resume")
        self.pending.clear()
        self.early = []
        return True

    def _reconnect(self) -> Optional[Dict[str, Any]]:
        """Like the widget: back off, say hello with the resume token (any gateway), resend what is unacked."""
        self._close()
        started = time.perf_counter()
        delay, attempt = 0.5, 0
        while time.perf_counter() - started < RECONNECT_GIVE_UP:
            try:
                welcome = self._connect(self.home + attempt, self.resume)
            except Exception:
                attempt += 1
                gevent.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, 8.0)
                continue
            if welcome.get("conversation_id") != self.conversation_id:
                self._fire("reconnect", started, "resumed a different conversation")
                record({"kind": "resume_mismatch", "conversation_id": self.conversation_id,
                        "got": welcome.get("conversation_id")})
                return None
            self.resume = welcome.get("resume") or self.resume
            for frame in list(self.pending.values()):
                self.socket.send(frame)
            self._fire("reconnect", started)
            return welcome
        self._fire("reconnect", started, f"no gateway answered within {RECONNECT_GIVE_UP:.0f}s")
        return None

    def _drained_closed(self) -> bool:
        """Read what arrived during the think time (a new resume token, late answers); True if the socket closed."""
        while True:
            event = self.socket.get(0)
            if event is None:
                return False
            if event.get("type") == "resume":
                self.resume = event.get("resume") or self.resume
            elif event.get("type") == "_closed":
                return True

    def _turn(self, seq: int, text: str) -> bool:
        """Send one message and wait for the first answer after it; False when the customer gives up."""
        client_id = f"{self.uid}-{self.conversations}-{seq}"
        frame = {"type": "message", "client_id": client_id, "text": text}
        record({"kind": "sent", "conversation_id": self.conversation_id, "client_id": client_id, "seq": seq,
                "gateway": self.gateway, "t": time.time()})
        self.pending[client_id] = frame
        started = time.perf_counter()
        deadline = started + REPLY_TIMEOUT
        acked_id: Optional[int] = None
        buffered: List[Dict[str, Any]] = []  # answers seen before our ack
        resend_at: Optional[float] = None
        if self._drained_closed() or not self.socket.send(frame):
            if self._reconnect() is None:
                self._fire("turn", started, "connection lost")
                return False
        while True:
            now = time.perf_counter()
            if now >= deadline:
                self._fire("turn", started, f"no reply within {REPLY_TIMEOUT:.0f}s"
                           + ("" if acked_id is not None else " (not acked)"))
                record({"kind": "timeout", "conversation_id": self.conversation_id, "client_id": client_id})
                return False
            if resend_at is not None and now >= resend_at:
                resend_at = None
                for pending in list(self.pending.values()):
                    self.socket.send(pending)
            wait = deadline - now if resend_at is None else min(deadline, resend_at) - now
            event = self.socket.get(wait)
            if event is None:
                continue
            kind = event.get("type")
            answer: Optional[Dict[str, Any]] = None
            if kind == "_closed":
                welcome = self._reconnect()
                if welcome is None:
                    self._fire("turn", started, "connection lost")
                    return False
                for message in welcome.get("history") or []:  # what happened while we were away
                    if message.get("client_id") == client_id and acked_id is None:
                        acked_id = int(message["id"])
                        self.pending.pop(client_id, None)
                        record({"kind": "ack", "conversation_id": self.conversation_id, "client_id": client_id,
                                "id": acked_id, "via": "history"})
                    elif message.get("sender") in ANSWERING:
                        buffered.append(message)
            elif kind == "resume":  # a guest verified in the chat: the widget keeps this token instead
                self.resume = event.get("resume") or self.resume
            elif kind == "ack" and event.get("client_id") in self.pending:
                self.pending.pop(event["client_id"], None)
                if event.get("client_id") == client_id and acked_id is None:
                    acked_id = int(event["id"])
                    record({"kind": "ack", "conversation_id": self.conversation_id, "client_id": client_id,
                            "id": acked_id, "ms": (time.perf_counter() - started) * 1000.0})
            elif kind == "error":
                if event.get("code") == "not_stored":
                    resend_at = time.perf_counter() + float(event.get("retry_ms") or 2000) / 1000.0
                elif event.get("client_id") == client_id:
                    self.pending.pop(client_id, None)
                    self._fire("turn", started, f"error {event.get('code')}: {event.get('message')}")
                    return False
            elif kind == "message" and (event.get("message") or {}).get("sender") in ANSWERING:
                buffered.append(event["message"])
            if acked_id is not None:
                answer = next((m for m in buffered if int(m.get("id") or 0) > acked_id), None)
            if answer is not None:
                elapsed = (time.perf_counter() - started) * 1000.0
                self._fire("turn", started)
                record({"kind": "turn", "conversation_id": self.conversation_id, "client_id": client_id,
                        "ms": elapsed, "by": answer.get("sender")})
                return True

    @task
    def conversation(self) -> None:
        """One customer's conversation: a few messages, each after the previous reply and some thinking."""
        if not self._open():
            return
        self.conversations += 1
        script = random.choice(SCRIPTS)
        try:
            gevent.sleep(random.uniform(0, THINK_MAX))  # typing the first message too (spreads a ramp)
            for seq, line in enumerate(script, 1):
                if not self._turn(seq, line):
                    break
                if seq < len(script):
                    gevent.sleep(random.uniform(THINK_MIN, THINK_MAX))
        finally:
            self._close()


class Agent(User):
    """An agent on the console: takes waiting conversations, answers each customer message, hands back."""

    fixed_count = AGENTS
    weight = 1
    wait_time = constant(0.5)
    _numbers = itertools.count(0)

    def on_start(self) -> None:
        number = next(Agent._numbers)
        if not STAFF:
            raise RuntimeError("LOAD_STAFF is empty: give the agents console accounts (user:password,...)")
        self.username, self.password = STAFF[number % len(STAFF)]
        self.base = GATEWAYS[number % len(GATEWAYS)]
        self.http = requests.Session()
        self.socket: Optional[Socket] = None
        self.waiting: List[Dict[str, Any]] = []
        self.held: Dict[str, Dict[str, Any]] = {}  # conversation id -> state
        self.seen: set = set()
        self.tried: Dict[str, float] = {}
        self._login()

    def on_stop(self) -> None:
        if self.socket is not None:
            self.socket.close()

    def _fire(self, name: str, started: float, error: Optional[str] = None) -> None:
        self.environment.events.request.fire(
            request_type="agent", name=name, response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0, exception=Exception(error) if error else None, context={})

    def _login(self) -> None:
        started = time.perf_counter()
        try:
            response = self.http.post(self.base + "/login", data={"username": self.username,
                                                                 "password": self.password},
                                      allow_redirects=False, timeout=30)
            if response.status_code != 302:
                raise RuntimeError(f"login answered {response.status_code}")
            cookie = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
            self.socket = Socket(ws_url(self.base, "/ws/console"), [f"Origin: {self.base}", f"Cookie: {cookie}"])
        except Exception as error:
            self.socket = None
            self._fire("login", started, f"{type(error).__name__}: {error}")
            return
        self._fire("login", started)

    def _post(self, name: str, path: str, body: Optional[Dict[str, Any]] = None) -> Optional[requests.Response]:
        started = time.perf_counter()
        try:
            response = self.http.post(self.base + path, json=body or {}, headers={"Origin": self.base}, timeout=60)
        except Exception as error:
            self._fire(name, started, f"{type(error).__name__}: {error}")
            return None
        if response.status_code == 409:  # another agent was quicker: not an error of the system
            self._fire(name + " (conflict)", started)
        elif response.status_code >= 400:
            self._fire(name, started, f"{response.status_code} {response.text[:120]}")
        else:
            self._fire(name, started)
        return response

    def _events(self) -> None:
        while self.socket is not None:
            event = self.socket.get(0)
            if event is None:
                return
            kind = event.get("type")
            if kind == "_closed":
                self.socket.close()
                self.socket = None
                gevent.sleep(1)
                return  # work() logs in again and opens a new socket
            if kind == "queue":
                self.waiting = list((event.get("queue") or {}).get("waiting") or [])
            elif kind == "message":
                conversation_id = event.get("conversation_id")
                message = event.get("message") or {}
                state = self.held.get(conversation_id)
                if state is None:
                    continue
                if message.get("sender") == "customer" and int(message.get("id") or 0) > state["answered"]:
                    state["last_customer"] = max(state["last_customer"], int(message["id"]))
                    state["touched"] = time.monotonic()
                    state.setdefault("due", time.monotonic() + random.uniform(AGENT_THINK_MIN, AGENT_THINK_MAX))

    def _take(self, summary: Dict[str, Any]) -> None:
        conversation_id = summary["conversation_id"]
        self.tried[conversation_id] = time.monotonic()
        response = self._post("take", f"/api/conversations/{conversation_id}/take")
        if response is None or response.status_code != 200:
            return
        state = {"answered": 0, "last_customer": 0, "replies": 0, "touched": time.monotonic()}
        try:
            detail = self.http.get(self.base + f"/api/conversations/{conversation_id}", timeout=60).json()
            for message in detail.get("messages") or []:
                if message.get("sender") == "customer":
                    state["last_customer"] = int(message["id"])
                elif message.get("sender") in ("agent", "bot"):
                    state["answered"] = int(message["id"])
        except Exception:
            pass
        if state["last_customer"] > state["answered"]:
            state["due"] = time.monotonic() + random.uniform(AGENT_THINK_MIN, AGENT_THINK_MAX)
        self.held[conversation_id] = state

    def _hand_back(self, conversation_id: str) -> None:
        self.held.pop(conversation_id, None)
        self._post("handback", f"/api/conversations/{conversation_id}/handback")

    @task
    def work(self) -> None:
        """One look at the console: new events, a reply that is due, a conversation to take or hand back."""
        if self.socket is None:
            self._login()
            if self.socket is None:
                gevent.sleep(random.uniform(2, 4))  # the gateway is down: do not hammer it
            return
        self._events()
        now = time.monotonic()
        for conversation_id, state in list(self.held.items()):
            if state.get("due") is not None and now >= state["due"] and state["last_customer"] > state["answered"]:
                response = self._post("reply", f"/api/conversations/{conversation_id}/send",
                                      {"text": random.choice(AGENT_LINES)})
                state.pop("due", None)
                if response is not None and response.status_code == 200:
                    state["answered"] = state["last_customer"]
                    state["replies"] += 1
                    state["touched"] = now
                    if state["replies"] >= AGENT_REPLIES:
                        self._hand_back(conversation_id)
                elif response is not None and response.status_code in (404, 409):
                    self.held.pop(conversation_id, None)  # reassigned or gone
            elif state["last_customer"] <= state["answered"] and now - state["touched"] > 30:
                self._hand_back(conversation_id)  # the customer has gone quiet
        if len(self.held) < AGENT_MAX_HELD:
            for summary in self.waiting:
                conversation_id = summary.get("conversation_id")
                if conversation_id and conversation_id not in self.held \
                        and now - self.tried.get(conversation_id, -1e9) > 10:
                    self._take(summary)
                    break
