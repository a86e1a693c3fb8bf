"""The load test's invariant checker (bench/load/invariants.py) on small synthetic transcripts.

The checker is what turns a load run into "0 lost, 0 duplicated, 0 out of order, 0 unanswered": if it
missed a violation, the load test would report a clean run for a broken gateway. Each violation is
planted in a tiny SQLite database (no unique index, so a duplicate can be stored) and must be counted.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import List, Tuple

from bench.load.invariants import SentMessage, check, read_results

Row = Tuple[int, str, str, str, str]  # id, conversation_id, client_id, sender, text


def make_db(path: Path, messages: List[Row], statuses: dict, tracker: List[Tuple[str, str]] = ()) -> str:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE chat_conversations (id TEXT PRIMARY KEY, status TEXT)")
    db.execute("CREATE TABLE chat_messages (id INTEGER PRIMARY KEY, conversation_id TEXT, client_id TEXT, "
               "sender TEXT, text TEXT, payload TEXT)")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id TEXT, type_name TEXT, data TEXT)")
    db.executemany("INSERT INTO chat_conversations VALUES (?, ?)", list(statuses.items()))
    db.executemany("INSERT INTO chat_messages (id, conversation_id, client_id, sender, text) VALUES (?, ?, ?, ?, ?)",
                   messages)
    db.executemany("INSERT INTO events (sender_id, type_name, data) VALUES (?, 'user', ?)",
                   [(sender, json.dumps({"event": "user", "text": body})) for sender, body in tracker])
    db.commit()
    db.close()
    return f"sqlite:///{path}"


def clean_conversation() -> Tuple[List[Row], List[SentMessage]]:
    rows = [(1, "a", "a-1", "customer", "hi"), (2, "a", None, "bot", "hello"),
            (3, "a", "a-2", "customer", "parcel late"), (4, "a", None, "bot", "sorry"),
            (5, "b", "b-1", "customer", "human please"), (6, "b", None, "system", "a person will reply"),
            (7, "b", "b-2", "customer", "hello?"), (8, "b", None, "agent", "I'm here")]
    sent = [SentMessage("a", "a-1", 1, 1), SentMessage("a", "a-2", 2, 3),
            SentMessage("b", "b-1", 1, 5), SentMessage("b", "b-2", 2, 7)]
    return rows, sent


def test_a_clean_run_reports_zeros(tmp_path: Path) -> None:
    rows, sent = clean_conversation()
    url = make_db(tmp_path / "t.db", rows, {"a": "bot", "b": "agent"},
                  tracker=[("a", "hi"), ("a", "parcel late"), ("b", "human please"), ("b", "hello?")])
    report = check(sent, url, tracker_url=url)
    assert (report.lost, report.duplicated, report.out_of_order, report.unanswered) == (0, 0, 0, 0)
    assert (report.tracker_missing, report.tracker_duplicated, report.ack_id_mismatch) == (0, 0, 0)
    assert report.sent == report.acked == report.stored == 4 and report.conversations == 2


def test_a_message_stored_twice_is_a_duplicate(tmp_path: Path) -> None:
    rows, sent = clean_conversation()
    rows.append((9, "a", "a-2", "customer", "parcel late"))  # the resend stored again
    rows.append((10, "a", None, "bot", "sorry again"))
    report = check(sent, make_db(tmp_path / "t.db", rows, {"a": "bot", "b": "agent"}))
    assert report.duplicated == 1
    assert (report.lost, report.out_of_order, report.unanswered) == (0, 0, 0)
    assert "a a-2" in report.examples["duplicated"][0]


def test_a_message_stored_before_an_earlier_one_is_out_of_order(tmp_path: Path) -> None:
    rows = [(1, "a", "a-2", "customer", "second"), (2, "a", None, "bot", "ok"),
            (3, "a", "a-1", "customer", "first"), (4, "a", None, "bot", "ok")]
    sent = [SentMessage("a", "a-1", 1, 3), SentMessage("a", "a-2", 2, 1)]
    report = check(sent, make_db(tmp_path / "t.db", rows, {"a": "bot"}))
    assert report.out_of_order == 1
    assert (report.lost, report.duplicated, report.unanswered) == (0, 0, 0)


def test_a_message_without_any_answer_after_it_is_unanswered(tmp_path: Path) -> None:
    rows, sent = clean_conversation()
    rows.append((9, "b", "b-3", "customer", "still there?"))  # nobody answered after it
    sent.append(SentMessage("b", "b-3", 3, 9))
    report = check(sent, make_db(tmp_path / "t.db", rows, {"a": "bot", "b": "waiting"}))
    assert report.unanswered == 1 and report.unanswered_with_person == 1
    assert (report.lost, report.duplicated, report.out_of_order) == (0, 0, 0)


def test_an_acked_message_missing_from_the_store_is_lost_but_an_unacked_one_is_not(tmp_path: Path) -> None:
    rows, sent = clean_conversation()
    sent.append(SentMessage("a", "a-3", 3, 11))     # acked as id 11, never stored: lost
    sent.append(SentMessage("b", "b-3", 3, None))   # never acked, never stored: the widget resends it
    report = check(sent, make_db(tmp_path / "t.db", rows, {"a": "bot", "b": "agent"}))
    assert report.lost == 1 and report.unacked_not_stored == 1
    assert report.examples["lost"] == ["a a-3"]


def test_rasa_getting_a_message_twice_or_never_is_counted(tmp_path: Path) -> None:
    rows, sent = clean_conversation()
    url = make_db(tmp_path / "t.db", rows, {"a": "bot", "b": "agent"},
                  tracker=[("a", "hi"), ("a", "hi"), ("a", "parcel late"), ("b", "human please")])
    report = check(sent, url, tracker_url=url)
    assert report.tracker_duplicated == 1 and report.tracker_missing == 1


def test_results_files_of_several_processes_are_merged(tmp_path: Path) -> None:
    (tmp_path / "customers-1.jsonl").write_text(
        '{"kind":"sent","conversation_id":"a","client_id":"a-1","seq":1}\n'
        '{"kind":"ack","conversation_id":"a","client_id":"a-1","id":1}\n'
        '{"kind":"sent","conversation_id":"a","client_id":"a-2","seq":2}\n{"kind":"ack","conv', encoding="utf-8")
    (tmp_path / "customers-2.jsonl").write_text(
        '{"kind":"sent","conversation_id":"b","client_id":"b-1","seq":1}\n', encoding="utf-8")
    sent = {(m.conversation_id, m.client_id): m for m in read_results(sorted(tmp_path.glob("*.jsonl")))}
    assert set(sent) == {("a", "a-1"), ("a", "a-2"), ("b", "b-1")}
    assert sent[("a", "a-1")].acked_id == 1 and sent[("a", "a-2")].acked_id is None
    assert sent[("a", "a-2")].seq == 2
