"""A repository that reads the real case database and records its writes instead of making them.

A suggestion preview runs a custom action's recovery turn so the agent sees exactly what the bot
would say. The turn writes as it goes (a contact, a resolution, a grant, a follow-up...); rolling a
transaction back afterwards would still take the database's write lock (SQLite) or hold row locks
(PostgreSQL) for the length of the preview, and make a preview's correctness depend on a rollback.

Here the turn runs on a ``ReadOnlySession`` whose ``info`` carries a ``RecordingRepository``:
``bot.casedb.repository`` sends every write to it (``recordable``), where the write is appended to
``writes`` (what sending the suggestion would record) and kept in memory, so the reads the turn makes
afterwards (``active_resolution``, ``compensation_total``, ``next_follow_up_due``...) see it, as they
would in the real transaction. The session itself refuses anything but plain SELECTs: a write that
bypassed the repository fails loudly instead of reaching the database.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Dict, Iterator, List, Optional, Tuple

from sqlalchemy import func
from sqlalchemy.orm import Session

from bot.casedb import repository as repo
from bot.casedb.engine import get_engine
from bot.casedb.models import Case, CaseContact, FollowUp, Handoff, Resolution, RootCauseTag, ThrottleEvent


class WriteRefused(RuntimeError):
    """Something tried to write through a preview's read-only session instead of the recording repository."""


class ReadOnlySession(Session):
    """A session that only ever runs SELECTs without FOR UPDATE: no row, table or database lock is taken
    for writing, nothing is added, flushed or committed. Anything else raises ``WriteRefused``."""

    def _refuse(self, what: str) -> None:
        raise WriteRefused(f"a preview tried to {what} the case database; writes must go through "
                           "bot.casedb.repository so they are recorded")

    def add(self, instance: Any, _warn: bool = True) -> None:
        self._refuse("add a row to")

    def add_all(self, instances: Any) -> None:
        self._refuse("add rows to")

    def delete(self, instance: Any) -> None:
        self._refuse("delete a row from")

    def merge(self, instance: Any, *args: Any, **kwargs: Any) -> Any:
        self._refuse("merge a row into")

    def flush(self, objects: Any = None) -> None:
        self._refuse("flush to")

    def commit(self) -> None:
        self._refuse("commit to")

    def bulk_save_objects(self, *args: Any, **kwargs: Any) -> None:
        self._refuse("bulk-save to")

    def bulk_insert_mappings(self, *args: Any, **kwargs: Any) -> None:
        self._refuse("bulk-insert into")

    def bulk_update_mappings(self, *args: Any, **kwargs: Any) -> None:
        self._refuse("bulk-update")

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if not getattr(statement, "is_select", False):
            self._refuse(f"run {type(statement).__name__} on")
        if getattr(statement, "_for_update_arg", None) is not None:
            self._refuse("lock rows of")
        return super().execute(statement, *args, **kwargs)


@dataclass(frozen=True)
class RecordedWrite:
    """One write a turn would have made: ``kind`` is insert, update or delete; ``key`` names the row(s)
    an update or delete touches (an inserted row not yet in the database has a negative provisional id)."""

    kind: str
    table: str
    fields: Dict[str, Any]
    key: Dict[str, Any] = field(default_factory=dict)
    call: str = ""  # the repository function that would have written it

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.fields.items())
        where = ", ".join(f"{k}={v}" for k, v in self.key.items())
        return f"{self.kind} {self.table}" + (f" [{where}]" if where else "") + (f": {shown}" if shown else "")


def _columns(row: Any) -> Dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


class RecordingRepository:
    """The write functions of ``bot.casedb.repository`` (same names, same arguments, same results and
    exceptions), recorded in memory; and the reads whose answer a recorded write changes, answered
    from the database plus what was recorded. Reads go to the real database through the session."""

    def __init__(self) -> None:
        self.writes: List[RecordedWrite] = []
        self._new: Dict[str, List[Dict[str, Any]]] = {}  # table -> rows that would be inserted
        self._changed: Dict[Tuple[str, Any], Dict[str, Any]] = {}  # (table, id) -> new values of a stored row
        self._next_id = 0
        self._pruned_before: Optional[datetime] = None  # throttle events older than this would be deleted

    # -- the log and the overlay --------------------------------------------------------------
    def _insert(self, call: str, table: str, row: Dict[str, Any]) -> Dict[str, Any]:
        if "id" not in row:  # an autoincrement id the database would assign: a provisional one meanwhile
            self._next_id -= 1
            row = dict(row, id=self._next_id)
            fields = {k: v for k, v in row.items() if k != "id"}
        else:
            row, fields = dict(row), dict(row)
        self._new.setdefault(table, []).append(row)
        self.writes.append(RecordedWrite("insert", table, fields, {"id": row["id"]}, call))
        return row

    def _update(self, call: str, table: str, row: Dict[str, Any], **values: Any) -> None:
        """Change a row as seen by later reads: a pending row in place, a stored one in the overlay."""
        pending = next((r for r in self._new.get(table, []) if r is row or r["id"] == row["id"]), None)
        if pending is not None:
            pending.update(values)
        else:
            self._changed.setdefault((table, row["id"]), {}).update(values)
        row.update(values)
        self.writes.append(RecordedWrite("update", table, dict(values), {"id": row["id"]}, call))

    def _stored(self, table: str, row: Any) -> Dict[str, Any]:
        values = _columns(row)
        values.update(self._changed.get((table, values["id"]), {}))
        return values

    def _case(self, session: Session, case_id: str) -> Optional[Dict[str, Any]]:
        new = next((r for r in self._new.get("cases", []) if r["id"] == case_id), None)
        if new is not None:
            return new
        stored = session.get(Case, case_id)
        return self._stored("cases", stored) if stored is not None else None

    def _resolutions(self, session: Session, case_id: str) -> List[Dict[str, Any]]:
        stored = [self._stored("resolutions", r) for r in
                  session.query(Resolution).filter(Resolution.case_id == case_id).all()]
        rows = stored + [r for r in self._new.get("resolutions", []) if r["case_id"] == case_id]
        # As the database would order them: a new row's id comes after every stored one.
        return sorted(rows, key=lambda r: (r["created_at"], r["id"] < 0, abs(r["id"])))

    def _active(self, session: Session, case_id: str) -> List[Dict[str, Any]]:
        return [r for r in self._resolutions(session, case_id) if r["status"] in repo.ACTIVE_RESOLUTION_STATUSES]

    @staticmethod
    def _snapshot(row: Dict[str, Any]) -> repo.ResolutionSnapshot:
        return repo.ResolutionSnapshot(row["id"], row["case_id"], row["option_code"], row["description"],
                                       row["status"], row["chosen_by"], row["created_at"])

    def _follow_ups(self, session: Session, case_id: str) -> List[Dict[str, Any]]:
        stored = [self._stored("follow_ups", r) for r in session.query(FollowUp).filter(FollowUp.case_id == case_id)]
        rows = stored + [r for r in self._new.get("follow_ups", []) if r["case_id"] == case_id]
        return sorted(rows, key=lambda r: (r["due_at"], r["id"] < 0, abs(r["id"])))

    def _follow_up(self, session: Session, follow_up_id: int) -> Optional[Dict[str, Any]]:
        new = next((r for r in self._new.get("follow_ups", []) if r["id"] == follow_up_id), None)
        if new is not None:
            return new
        stored = session.get(FollowUp, follow_up_id)
        return self._stored("follow_ups", stored) if stored is not None else None

    # -- cases and contacts ----------------------------------------------------------------------
    def customer_history(self, session: Session, customer_id: str) -> Optional[repo.CustomerHistory]:
        history = repo.customer_history.__wrapped__(session, customer_id)
        if history is None:
            return None
        history = copy.deepcopy(history)
        for snapshot in history.cases:
            case = self._case(session, snapshot.id)
            if case is not None:
                snapshot.status, snapshot.resolved_at, snapshot.summary = (case["status"], case["resolved_at"],
                                                                           case["summary"])
            self._fill(session, snapshot)
        new_cases = [c for c in self._new.get("cases", []) if c["customer_id"] == customer_id]
        for case in new_cases:
            snapshot = repo.CaseSnapshot(case["id"], case["issue_type"], case["status"], case["summary"],
                                         case["order_id"], case["opened_at"], case.get("resolved_at"))
            self._fill(session, snapshot)
            history.cases.append(snapshot)
        history.cases.sort(key=lambda c: c.opened_at, reverse=True)
        return history

    def _fill(self, session: Session, snapshot: repo.CaseSnapshot) -> None:
        """A case snapshot's contacts, resolutions, grants and check-ins with the recorded writes."""
        contacts = [self._stored("case_contacts", r) for r in
                    session.query(CaseContact).filter(CaseContact.case_id == snapshot.id)]
        contacts += [r for r in self._new.get("case_contacts", []) if r["case_id"] == snapshot.id]
        contacts.sort(key=lambda r: (r["started_at"], r["id"] < 0, abs(r["id"])))
        snapshot.contacts = [repo.ContactSnapshot(r["channel"], r["summary"], r["started_at"], r["handled_by"],
                                                  r["conversation_id"]) for r in contacts]
        snapshot.resolutions = [{k: r[k] for k in ("id", "option_code", "description", "status", "created_at")}
                                for r in self._resolutions(session, snapshot.id)]
        snapshot.compensations += [{k: r[k] for k in ("kind", "amount", "reason", "created_at")}
                                   for r in self._new.get("compensations", []) if r["case_id"] == snapshot.id]
        snapshot.follow_ups = self.case_follow_ups(session, snapshot.id)

    def open_case(self, session: Session, customer_id: str, issue_type: str, order_id: Optional[str], summary: str,
                  now: Optional[datetime] = None) -> str:
        taken = {c["id"] for c in self._new.get("cases", [])}
        case_id = repo._new_case_id(session)
        while case_id in taken:
            case_id = repo._new_case_id(session)
        self._insert("open_case", "cases", dict(
            id=case_id, customer_id=customer_id, order_id=order_id, issue_type=issue_type, status="open",
            summary=summary[:2000], opened_at=now or datetime.utcnow(), resolved_at=None))
        return case_id

    def reopen_case(self, session: Session, case_id: str, reason: str) -> None:
        case = self._case(session, case_id)
        if case is None:
            return
        for resolution in self._active(session, case_id):
            self._update("reopen_case", "resolutions", resolution, status="failed")
        if case["status"] != "open":
            self._update("reopen_case", "cases", case, status="open", resolved_at=None,
                         summary=f"{case['summary']} Reopened: {reason}"[:4000])

    def record_contact(self, session: Session, case_id: str, conversation_id: str, summary: str,
                       issue_type: Optional[str], frustration_level: Optional[str], frustration_score: Optional[float],
                       handled_by: str = "bot", channel: str = "chat", now: Optional[datetime] = None) -> None:
        now = now or datetime.utcnow()
        values = dict(summary=summary[:4000], issue_type=issue_type, frustration_level=frustration_level,
                      frustration_score=frustration_score, handled_by=handled_by, ended_at=now)
        contact = next((r for r in self._new.get("case_contacts", [])
                        if r["case_id"] == case_id and r["conversation_id"] == conversation_id), None)
        if contact is None:
            stored = (session.query(CaseContact)
                      .filter(CaseContact.case_id == case_id, CaseContact.conversation_id == conversation_id).first())
            contact = self._stored("case_contacts", stored) if stored is not None else None
        if contact is None:
            self._insert("record_contact", "case_contacts", dict(
                case_id=case_id, conversation_id=conversation_id, channel=channel, started_at=now, **values))
        else:
            self._update("record_contact", "case_contacts", contact, **values)

    def earlier_contacts(self, session: Session, case_id: str, conversation_id: str) -> int:
        stored = repo.earlier_contacts.__wrapped__(session, case_id, conversation_id)
        return stored + sum(1 for r in self._new.get("case_contacts", []) if r["case_id"] == case_id
                            and (r["conversation_id"] is None or r["conversation_id"] != conversation_id))

    # -- resolutions and compensation --------------------------------------------------------------
    def active_resolution(self, session: Session, case_id: str) -> Optional[repo.ResolutionSnapshot]:
        found = self._active(session, case_id)
        return self._snapshot(found[-1]) if found else None

    def record_resolution(self, session: Session, case_id: str, option_code: str, description: str,
                          chosen_by: str = "customer", replaces: Optional[str] = None,
                          now: Optional[datetime] = None) -> repo.ResolutionSnapshot:
        if self._case(session, case_id) is None:
            raise ValueError(f"no case {case_id}")
        for existing in self._active(session, case_id):
            if replaces is not None and existing["option_code"] == replaces and existing["status"] == "in_progress":
                self._update("record_resolution", "resolutions", existing, status="cancelled")
            else:
                raise repo.ResolutionExists(self._snapshot(existing))
        row = self._insert("record_resolution", "resolutions", dict(
            case_id=case_id, option_code=option_code, description=description[:2000], chosen_by=chosen_by,
            status="in_progress", created_at=now or datetime.utcnow()))
        return self._snapshot(row)

    def compensation_total(self, session: Session, case_id: str) -> Decimal:
        stored = repo.compensation_total.__wrapped__(session, case_id)
        return stored + sum((r["amount"] for r in self._new.get("compensations", []) if r["case_id"] == case_id),
                            Decimal("0"))

    def customer_compensation_total(self, session: Session, customer_id: str, since: datetime) -> Decimal:
        stored = repo.customer_compensation_total.__wrapped__(session, customer_id, since)
        pending = Decimal("0")
        for row in self._new.get("compensations", []):
            case = self._case(session, row["case_id"])
            if case is not None and case["customer_id"] == customer_id and row["created_at"] >= since:
                pending += row["amount"]
        return stored + pending

    def compensation_room(self, session: Session, case_id: str, settings: Optional[dict] = None,
                          now: Optional[datetime] = None) -> repo.CompensationRoom:
        """The real function's answer, without holding the case and customer rows (nothing is granted)."""
        per_case, per_customer, window_days = repo.compensation_limits(settings)
        case = self._case(session, case_id)
        case_granted = self.compensation_total(session, case_id)
        since = (now or datetime.utcnow()) - timedelta(days=window_days)
        customer_granted = (self.customer_compensation_total(session, case["customer_id"], since)
                            if case is not None else Decimal("0"))
        return repo.CompensationRoom.within(per_case, per_customer, case_granted, customer_granted)

    def record_compensation(self, session: Session, case_id: str, kind: str, amount: Decimal, currency: str,
                            reason: str, granted_by: str = "bot", settings: Optional[dict] = None,
                            now: Optional[datetime] = None) -> None:
        amount = Decimal(str(amount))
        if amount <= 0:
            raise repo.CompensationRefused(amount, Decimal("0"))
        if self._case(session, case_id) is None:
            raise ValueError(f"no case {case_id}")
        room = self.compensation_room(session, case_id, settings, now)
        if amount > room.left:
            raise repo.CompensationRefused(amount, room.left)
        self._insert("record_compensation", "compensations", dict(
            case_id=case_id, kind=kind, amount=amount, currency=currency, reason=reason[:2000], granted_by=granted_by,
            created_at=now or datetime.utcnow()))

    def tag_root_cause(self, session: Session, case_id: str, tag: str) -> None:
        if any(r["case_id"] == case_id and r["tag"] == tag for r in self._new.get("root_cause_tags", [])):
            return
        if session.query(RootCauseTag.id).filter(RootCauseTag.case_id == case_id, RootCauseTag.tag == tag).first():
            return
        self._insert("tag_root_cause", "root_cause_tags", dict(case_id=case_id, tag=tag[:80]))

    def close_case(self, session: Session, case_id: str, now: Optional[datetime] = None) -> None:
        case = self._case(session, case_id)
        if case is None:
            return
        for resolution in self._active(session, case_id):
            self._update("close_case", "resolutions", resolution, status="done")
        self._update("close_case", "cases", case, status="resolved", resolved_at=now or datetime.utcnow())

    def record_handoff(self, session: Session, conversation_id: str, reason: str, summary: str,
                       customer_id: Optional[str] = None, case_id: Optional[str] = None,
                       frustration_level: Optional[str] = None) -> int:
        handoff = next((r for r in self._new.get("handoffs", [])
                        if r["conversation_id"] == conversation_id and r["status"] == "waiting"), None)
        if handoff is None:
            stored = (session.query(Handoff)
                      .filter(Handoff.conversation_id == conversation_id, Handoff.status == "waiting").first())
            handoff = self._stored("handoffs", stored) if stored is not None else None
        if handoff is None:
            handoff = self._insert("record_handoff", "handoffs", dict(
                conversation_id=conversation_id, reason=reason, summary=summary[:4000], customer_id=customer_id,
                case_id=case_id, frustration_level=frustration_level, status="waiting",
                created_at=datetime.utcnow()))
        else:
            self._update("record_handoff", "handoffs", handoff, summary=summary[:4000],
                         frustration_level=frustration_level, case_id=handoff["case_id"] or case_id,
                         customer_id=handoff["customer_id"] or customer_id)
        return int(handoff["id"])

    # -- promised check-ins ----------------------------------------------------------------------
    def schedule_follow_up(self, session: Session, case_id: str, conversation_id: str, due_at: datetime,
                           note: str) -> None:
        self._insert("schedule_follow_up", "follow_ups", dict(
            case_id=case_id, conversation_id=conversation_id, due_at=due_at, note=note[:2000], done=False,
            sent_at=None, outcome=None, attempts=0, created_at=datetime.utcnow()))

    def case_follow_ups(self, session: Session, case_id: str) -> List[dict]:
        return [{"id": r["id"], "due_at": r["due_at"], "note": r["note"], "done": bool(r["done"]),
                 "sent_at": r["sent_at"], "outcome": r["outcome"], "attempts": r["attempts"] or 0,
                 "conversation_id": r["conversation_id"]} for r in self._follow_ups(session, case_id)]

    def next_follow_up_due(self, session: Session, case_id: str) -> Optional[datetime]:
        return min((r["due_at"] for r in self._follow_ups(session, case_id) if not r["done"]), default=None)

    def _claimed(self, session: Session, follow_up_id: int, attempt: int) -> Optional[Dict[str, Any]]:
        row = self._follow_up(session, follow_up_id)
        return row if row is not None and not row["done"] and (row["attempts"] or 0) == attempt else None

    def claim_follow_up(self, session: Session, follow_up_id: int, attempts_seen: int, lease_until: datetime) -> bool:
        row = self._claimed(session, follow_up_id, attempts_seen)
        if row is not None:
            self._update("claim_follow_up", "follow_ups", row, attempts=attempts_seen + 1, sent_at=lease_until)
        return row is not None

    def mark_follow_up_delivered(self, session: Session, follow_up_id: int, attempt: int,
                                 now: Optional[datetime] = None, outcome: Optional[str] = None) -> bool:
        row = self._claimed(session, follow_up_id, attempt)
        if row is not None:
            self._update("mark_follow_up_delivered", "follow_ups", row, done=True, sent_at=now or datetime.utcnow(),
                         outcome=outcome)
        return row is not None

    def retry_follow_up_later(self, session: Session, follow_up_id: int, attempt: int, retry_at: datetime) -> None:
        row = self._claimed(session, follow_up_id, attempt)
        if row is not None:
            self._update("retry_follow_up_later", "follow_ups", row, sent_at=retry_at)

    def complete_follow_ups(self, session: Session, case_id: str, now: Optional[datetime] = None) -> int:
        now = now or datetime.utcnow()
        due = [r for r in self._follow_ups(session, case_id) if not r["done"]
               and r["due_at"] <= now + timedelta(minutes=1) and (r["sent_at"] is None or r["sent_at"] <= now)]
        for row in due:
            self._update("complete_follow_ups", "follow_ups", row, done=True, sent_at=now)
        return len(due)

    def record_follow_up_outcome(self, session: Session, case_id: str, outcome: str) -> bool:
        if outcome not in repo.FOLLOW_UP_OUTCOMES:
            raise ValueError(f"unknown follow-up outcome {outcome!r}")
        answered = [r for r in self._follow_ups(session, case_id) if r["done"] and r["outcome"] is None]
        if not answered:
            return False
        # Latest delivery first; a row without a delivery time last (as SQLite orders NULLs descending).
        latest = max(answered, key=lambda r: (r["sent_at"] is not None, r["sent_at"] or datetime.min,
                                              r["id"] > 0, r["id"] if r["id"] > 0 else -r["id"]))
        self._update("record_follow_up_outcome", "follow_ups", latest, outcome=outcome)
        return True

    # -- throttles ---------------------------------------------------------------------------------
    def count_throttle_events(self, session: Session, kind: str, key: str, since: datetime) -> int:
        if self._pruned_before is not None and self._pruned_before > since:
            since = self._pruned_before  # older events would have been deleted
        stored = repo.count_throttle_events.__wrapped__(session, kind, key, since)
        return stored + sum(1 for r in self._new.get("throttle_events", [])
                            if r["kind"] == kind and r["key"] == key and r["at"] >= since)

    def record_throttle_event(self, session: Session, kind: str, key: str, now: Optional[datetime] = None) -> None:
        self._insert("record_throttle_event", "throttle_events", dict(kind=kind, key=key[:128],
                                                                      at=now or datetime.utcnow()))

    def prune_throttle_events(self, session: Session, older_than: datetime) -> int:
        since = self._pruned_before
        query = session.query(func.count(ThrottleEvent.id)).filter(ThrottleEvent.at < older_than)
        if since is not None:
            query = query.filter(ThrottleEvent.at >= since)
        stored = query.scalar() or 0
        pending = self._new.get("throttle_events", [])
        kept = [r for r in pending if r["at"] >= older_than]
        gone = stored + len(pending) - len(kept)
        self._new["throttle_events"] = kept
        self._pruned_before = max(older_than, since) if since is not None else older_than
        if gone:
            self.writes.append(RecordedWrite("delete", "throttle_events", {}, {"at_before": older_than},
                                             "prune_throttle_events"))
        return gone


@contextmanager
def recording_session(database_url: Optional[str] = None,
                      recorder: Optional[RecordingRepository] = None) -> Iterator[Tuple[Session, RecordingRepository]]:
    """A read-only session on the case database whose repository writes are recorded by ``recorder``.

    Nothing is ever flushed, locked or committed; on the way out the session is checked to be clean
    (an ORM object changed in place would be a write the recording missed) and closed.
    """
    recorder = recorder if recorder is not None else RecordingRepository()
    session = ReadOnlySession(bind=get_engine(database_url), future=True, autoflush=False,
                              info={repo.RECORDER: recorder})
    try:
        yield session, recorder
        if session.new or session.dirty or session.deleted:
            raise WriteRefused("a preview changed rows of the case database in place instead of through "
                               "bot.casedb.repository")
    finally:
        session.rollback()  # ends the read transaction (PostgreSQL); there is nothing to undo
        session.close()
