"""Check a load run against what was stored: every acknowledged customer message stored exactly once,
in order within its conversation, and answered.

The load generator (bench/load/locustfile.py) writes one JSON line per event to a results file per
process: ``{"kind": "sent", "conversation_id", "client_id", "seq"}`` before a message goes on the wire,
``{"kind": "ack", "conversation_id", "client_id", "id"}`` when the gateway acknowledged it (the
gateway stores before it acks). This module reads those files and the gateway's ``chat_messages``
table (and, when given, Rasa's tracker store) and counts the violations.

It imports SQLAlchemy only (no Locust), so the project's virtualenv and its tests can use it.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from sqlalchemy import create_engine, text

ANSWERING_SENDERS = ("bot", "agent", "system")
PERSON_STATUSES = ("waiting", "agent")


@dataclass
class SentMessage:
    """What the load generator knows about one customer message it sent."""

    conversation_id: str
    client_id: str
    seq: int                      # send order within the conversation (1, 2, ...)
    acked_id: Optional[int] = None  # the stored id the gateway acknowledged, if it did


@dataclass
class InvariantReport:
    """Counts of each violation; the ``examples`` name a few offenders so a failure can be looked up."""

    conversations: int = 0
    sent: int = 0
    acked: int = 0
    stored: int = 0               # distinct sent messages found in chat_messages
    lost: int = 0                 # acknowledged, but not stored
    duplicated: int = 0           # extra rows for one (conversation_id, client_id)
    out_of_order: int = 0         # stored with a smaller id than a message sent before it in its conversation
    unanswered: int = 0           # stored, but no bot/agent/system message after it in its conversation
    unanswered_with_person: int = 0  # ... of which the conversation waits for or is held by a person at the end
    unacked_stored: int = 0       # never acknowledged (socket dropped, run ended) but stored anyway: not a loss
    unacked_not_stored: int = 0   # never acknowledged and not stored: the widget would have resent it
    ack_id_mismatch: int = 0      # the acknowledged id is not the id of the stored row
    tracker_checked: bool = False
    tracker_missing: int = 0      # stored customer messages Rasa's tracker never got as a user event
    tracker_duplicated: int = 0   # extra user events in the tracker for one stored customer message
    examples: Dict[str, List[str]] = field(default_factory=dict)

    def note(self, kind: str, example: str, keep: int = 5) -> None:
        items = self.examples.setdefault(kind, [])
        if len(items) < keep:
            items.append(example)

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def read_results(paths: Iterable[Path]) -> List[SentMessage]:
    """The messages the load generator sent, from its JSON-lines results files (any order, any process)."""
    sent: Dict[Tuple[str, str], SentMessage] = {}
    acks: Dict[Tuple[str, str], int] = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a killed process
                key = (str(row.get("conversation_id")), str(row.get("client_id")))
                if row.get("kind") == "sent":
                    sent.setdefault(key, SentMessage(key[0], key[1], int(row.get("seq") or 0)))
                elif row.get("kind") == "ack" and row.get("id") is not None:
                    acks.setdefault(key, int(row["id"]))
    for key, message_id in acks.items():
        if key in sent:
            sent[key].acked_id = message_id
    return list(sent.values())


def _stored_rows(database_url: str, conversation_ids: List[str]) -> Tuple[Dict[str, List[Tuple[int, Optional[str], str, str]]], Dict[str, str]]:
    """Messages ``(id, client_id, sender, text)`` by conversation, in id order, and each conversation's status."""
    engine = create_engine(database_url)
    wanted = set(conversation_ids)
    rows: Dict[str, List[Tuple[int, Optional[str], str, str]]] = defaultdict(list)
    statuses: Dict[str, str] = {}
    try:
        with engine.connect() as connection:
            chunk = 500
            ids = sorted(wanted)
            for start in range(0, len(ids), chunk):
                part = ids[start:start + chunk]
                params = {f"c{n}": value for n, value in enumerate(part)}
                placeholders = ", ".join(f":c{n}" for n in range(len(part)))
                for row in connection.execute(text(
                        "SELECT id, conversation_id, client_id, sender, COALESCE(payload, text) FROM chat_messages "
                        f"WHERE conversation_id IN ({placeholders}) ORDER BY id"), params):
                    rows[row[1]].append((int(row[0]), row[2], row[3], row[4] or ""))
                for row in connection.execute(text(
                        f"SELECT id, status FROM chat_conversations WHERE id IN ({placeholders})"), params):
                    statuses[row[0]] = row[1]
    finally:
        engine.dispose()
    return rows, statuses


def _tracker_user_texts(tracker_url: str, conversation_ids: List[str]) -> Dict[str, Counter]:
    """User-event texts per conversation in Rasa's SQL tracker store (table ``events``)."""
    engine = create_engine(tracker_url)
    wanted = set(conversation_ids)
    texts: Dict[str, Counter] = defaultdict(Counter)
    try:
        with engine.connect() as connection:
            for sender_id, data in connection.execute(text(
                    "SELECT sender_id, data FROM events WHERE type_name = 'user'")):
                if sender_id not in wanted:
                    continue
                try:
                    event = json.loads(data)
                except (TypeError, ValueError):
                    continue
                texts[sender_id][event.get("text") or ""] += 1
    finally:
        engine.dispose()
    return texts


def check(sent: List[SentMessage], database_url: str, tracker_url: Optional[str] = None) -> InvariantReport:
    """Count lost, duplicated, out-of-order and unanswered messages of this load, from the stored transcripts."""
    report = InvariantReport()
    by_conversation: Dict[str, List[SentMessage]] = defaultdict(list)
    for message in sent:
        by_conversation[message.conversation_id].append(message)
    report.conversations = len(by_conversation)
    report.sent = len(sent)
    report.acked = sum(1 for m in sent if m.acked_id is not None)
    if not sent:
        return report
    rows, statuses = _stored_rows(database_url, list(by_conversation))
    load_texts: Dict[str, Counter] = defaultdict(Counter)
    for conversation_id, messages in by_conversation.items():
        stored = rows.get(conversation_id, [])
        customer_ids: Dict[str, List[int]] = defaultdict(list)
        for message_id, client_id, sender, body in stored:
            if sender == "customer":
                load_texts[conversation_id][body] += 1
                if client_id:
                    customer_ids[client_id].append(message_id)
        last_answer = max((m[0] for m in stored if m[2] in ANSWERING_SENDERS), default=0)
        previous_id = 0
        for message in sorted(messages, key=lambda m: m.seq):
            ids = customer_ids.get(message.client_id, [])
            if not ids:
                if message.acked_id is not None:
                    report.lost += 1
                    report.note("lost", f"{conversation_id} {message.client_id}")
                else:
                    report.unacked_not_stored += 1
                continue
            report.stored += 1
            if message.acked_id is None:
                report.unacked_stored += 1
            elif message.acked_id not in ids:
                report.ack_id_mismatch += 1
                report.note("ack_id_mismatch", f"{conversation_id} {message.client_id} acked {message.acked_id}, "
                                               f"stored {ids}")
            if len(ids) > 1:
                report.duplicated += len(ids) - 1
                report.note("duplicated", f"{conversation_id} {message.client_id} ids {ids}")
            first = min(ids)
            if first < previous_id:
                report.out_of_order += 1
                report.note("out_of_order", f"{conversation_id} {message.client_id} (seq {message.seq}) id {first} "
                                            f"< {previous_id}")
            previous_id = max(previous_id, first)
            if last_answer <= first:
                report.unanswered += 1
                status = statuses.get(conversation_id, "?")
                if status in PERSON_STATUSES:
                    report.unanswered_with_person += 1
                report.note("unanswered", f"{conversation_id} {message.client_id} id {first} (status {status})")
    if tracker_url:
        report.tracker_checked = True
        tracker = _tracker_user_texts(tracker_url, list(by_conversation))
        for conversation_id, expected in load_texts.items():
            got = tracker.get(conversation_id, Counter())
            for body, count in expected.items():
                if got[body] < count:
                    report.tracker_missing += count - got[body]
                    report.note("tracker_missing", f"{conversation_id} {body!r}")
                elif got[body] > count:
                    report.tracker_duplicated += got[body] - count
                    report.note("tracker_duplicated", f"{conversation_id} {body!r} x{got[body]}")
    return report
