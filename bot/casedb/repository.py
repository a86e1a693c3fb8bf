"""Reads and writes of the case database, in the words of the recovery playbook.

Reads return plain snapshots (dataclasses) so callers never touch a closed session;
writes take a session so a caller can group them in one transaction.

A session whose ``info`` carries a recording repository (``RECORDER``, see bot/casedb/recording.py)
sends every write, and every read a pending write could change, to it instead: a preview of a
turn then reads the real data, records what it would write, and writes (and locks) nothing.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import wraps
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from sqlalchemy import func, update
from sqlalchemy.orm import Session, object_session

from bot.casedb.models import (
    Case,
    CaseContact,
    Compensation,
    Customer,
    FollowUp,
    Handoff,
    Order,
    Resolution,
    RootCauseTag,
)
from bot.settings import section

RECENT_CASE_DAYS = 60
# A case has at most one resolution in one of these states; "cancelled" (the customer changed it)
# and "failed" (the case was reopened because it did not work) are history.
ACTIVE_RESOLUTION_STATUSES = ("in_progress", "done")
RECORDER = "mend.casedb.recorder"  # the key of a preview session's recording repository in ``Session.info``

F = TypeVar("F", bound=Callable[..., Any])


def recordable(function: F) -> F:
    """Route the call to the session's recording repository when it has one (a preview), so the
    turn code and the throttle keep calling this module and a preview still cannot write.
    The real function stays reachable as ``__wrapped__`` (the recorder reads through it)."""
    name = function.__name__

    @wraps(function)
    def call(session: Any, *args: Any, **kwargs: Any) -> Any:
        info = getattr(session, "info", None)
        recorder = info.get(RECORDER) if info else None
        if recorder is not None:
            return getattr(recorder, name)(session, *args, **kwargs)
        return function(session, *args, **kwargs)

    return call  # type: ignore[return-value]


@dataclass
class ContactSnapshot:
    channel: str
    summary: str
    started_at: datetime
    handled_by: str
    conversation_id: Optional[str]


@dataclass
class OrderSnapshot:
    id: str
    item: str
    total: Decimal
    currency: str
    status: str
    placed_at: datetime
    payments: List[dict] = field(default_factory=list)
    shipments: List[dict] = field(default_factory=list)


@dataclass
class CaseSnapshot:
    id: str
    issue_type: str
    status: str
    summary: str
    order_id: Optional[str]
    opened_at: datetime
    resolved_at: Optional[datetime]
    contacts: List[ContactSnapshot] = field(default_factory=list)
    resolutions: List[dict] = field(default_factory=list)
    compensations: List[dict] = field(default_factory=list)
    follow_ups: List[dict] = field(default_factory=list)  # promised check-ins (case_follow_ups)


@dataclass
class CustomerHistory:
    """Everything the company knows about a customer, so the customer never re-explains."""

    customer_id: str
    name: str
    first_name: str
    email: str
    account_status: str
    account_status_detail: Optional[str]
    orders: List[OrderSnapshot] = field(default_factory=list)
    cases: List[CaseSnapshot] = field(default_factory=list)

    def order(self, order_id: Optional[str]) -> Optional[OrderSnapshot]:
        wanted = (order_id or "").strip().lstrip("#").upper()
        return next((o for o in self.orders if o.id.upper() == wanted), None)

    def case(self, case_id: Optional[str]) -> Optional[CaseSnapshot]:
        return next((c for c in self.cases if c.id == case_id), None)


def _order_snapshot(order: Order) -> OrderSnapshot:
    return OrderSnapshot(
        id=order.id, item=order.item, total=order.total, currency=order.currency, status=order.status,
        placed_at=order.placed_at,
        payments=[{"id": p.id, "amount": p.amount, "status": p.status, "charged_at": p.charged_at} for p in order.payments],
        shipments=[{
            "carrier": s.carrier, "tracking_number": s.tracking_number, "status": s.status,
            "status_detail": s.status_detail, "shipped_at": s.shipped_at, "promised_at": s.promised_at,
            "delivered_at": s.delivered_at,
        } for s in order.shipments],
    )


def _case_snapshot(case: Case) -> CaseSnapshot:
    return CaseSnapshot(
        id=case.id, issue_type=case.issue_type, status=case.status, summary=case.summary, order_id=case.order_id,
        opened_at=case.opened_at, resolved_at=case.resolved_at,
        contacts=[ContactSnapshot(c.channel, c.summary, c.started_at, c.handled_by, c.conversation_id) for c in case.contacts],
        resolutions=[{"id": r.id, "option_code": r.option_code, "description": r.description, "status": r.status,
                      "created_at": r.created_at} for r in case.resolutions],
        compensations=[{"kind": c.kind, "amount": c.amount, "reason": c.reason, "created_at": c.created_at}
                       for c in case.compensations],
        follow_ups=case_follow_ups(object_session(case), case.id) if object_session(case) is not None else [],
    )


@recordable
def customer_history(session: Session, customer_id: str) -> Optional[CustomerHistory]:
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    return CustomerHistory(
        customer_id=customer.id, name=customer.name, first_name=customer.first_name, email=customer.email,
        account_status=customer.account_status, account_status_detail=customer.account_status_detail,
        orders=[_order_snapshot(o) for o in customer.orders],
        cases=[_case_snapshot(c) for c in customer.cases],
    )


def customer_first_name(session: Session, customer_id: str) -> Optional[str]:
    """The first name of a known customer (None: unknown id), without loading their history."""
    customer = session.get(Customer, customer_id)
    return customer.first_name if customer is not None else None


def verify_customer(session: Session, email: str, order_id: str) -> Optional[str]:
    """The customer id when the email and order number belong together, else None (no hint which was wrong)."""
    email = (email or "").strip().lower()
    order_id = (order_id or "").strip().lstrip("#").upper()
    if not email or not order_id or len(email) > 320 or len(order_id) > 40:
        return None
    row = (
        session.query(Customer.id)
        .join(Order, Order.customer_id == Customer.id)
        .filter(func.lower(Customer.email) == email, func.upper(Order.id) == order_id)
        .first()
    )
    return row[0] if row else None


def _new_case_id(session: Session) -> str:
    while True:
        candidate = f"CASE-{secrets.randbelow(900000) + 100000}"
        if session.get(Case, candidate) is None:
            return candidate


@recordable
def open_case(session: Session, customer_id: str, issue_type: str, order_id: Optional[str], summary: str,
              now: Optional[datetime] = None) -> str:
    case = Case(id=_new_case_id(session), customer_id=customer_id, order_id=order_id, issue_type=issue_type,
                status="open", summary=summary[:2000], opened_at=now or datetime.utcnow())
    session.add(case)
    session.flush()
    return case.id


@recordable
def reopen_case(session: Session, case_id: str, reason: str) -> None:
    """The problem is back: the case is open again and the fix it had is recorded as failed, so the
    case may get a new resolution."""
    case = _hold_case(session, case_id)
    if case is None:
        return
    for resolution in _active_resolutions(session, case_id):
        resolution.status = "failed"
    if case.status != "open":
        case.status = "open"
        case.resolved_at = None
        case.summary = f"{case.summary} Reopened: {reason}"[:4000]
    session.flush()


@recordable
def record_contact(session: Session, case_id: str, conversation_id: str, summary: str, issue_type: Optional[str],
                   frustration_level: Optional[str], frustration_score: Optional[float], handled_by: str = "bot",
                   channel: str = "chat", now: Optional[datetime] = None) -> None:
    """One contact per conversation and case: later turns update it rather than adding rows."""
    now = now or datetime.utcnow()
    contact = (
        session.query(CaseContact)
        .filter(CaseContact.case_id == case_id, CaseContact.conversation_id == conversation_id)
        .first()
    )
    if contact is None:
        contact = CaseContact(case_id=case_id, conversation_id=conversation_id, channel=channel, started_at=now)
        session.add(contact)
    contact.summary = summary[:4000]
    contact.issue_type = issue_type
    contact.frustration_level = frustration_level
    contact.frustration_score = frustration_score
    contact.handled_by = handled_by
    contact.ended_at = now
    session.flush()


@recordable
def earlier_contacts(session: Session, case_id: str, conversation_id: str) -> int:
    """How many times the customer already contacted us about this case, in other conversations."""
    return (
        session.query(func.count(CaseContact.id))
        .filter(CaseContact.case_id == case_id,
                (CaseContact.conversation_id.is_(None)) | (CaseContact.conversation_id != conversation_id))
        .scalar()
    ) or 0


@dataclass
class ResolutionSnapshot:
    id: int
    case_id: str
    option_code: str
    description: str
    status: str
    chosen_by: str
    created_at: datetime


class ResolutionExists(Exception):
    """The case already has a resolution in progress or done: a second one needs a person."""

    def __init__(self, existing: ResolutionSnapshot) -> None:
        super().__init__(f"case {existing.case_id} already has resolution {existing.option_code} ({existing.status})")
        self.existing = existing


class CompensationRefused(Exception):
    """The amount is over what the case or the customer may still receive."""

    def __init__(self, amount: Decimal, room: Decimal) -> None:
        super().__init__(f"compensation of {amount} refused: only {room} left within the limits")
        self.amount, self.room = amount, room


def _resolution_snapshot(resolution: Resolution) -> ResolutionSnapshot:
    return ResolutionSnapshot(resolution.id, resolution.case_id, resolution.option_code, resolution.description,
                              resolution.status, resolution.chosen_by, resolution.created_at)


def _hold(session: Session, model: type, key: str, column: str) -> Optional[object]:
    """Lock one row until the transaction ends, so that check-then-write is atomic.

    PostgreSQL: SELECT ... FOR NO KEY UPDATE (a second writer waits; inserts that merely reference
    the row do not). SQLite ignores FOR UPDATE and its driver only begins a transaction at the first
    write, so a no-op UPDATE first takes the database's write lock: a concurrent writer waits and
    then reads what this transaction committed.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(model).where(model.id == key).values({column: getattr(model, column)})
                        .execution_options(synchronize_session=False))
    return (session.query(model).filter(model.id == key).with_for_update(key_share=True)
            .populate_existing().one_or_none())


def _hold_case(session: Session, case_id: str) -> Optional[Case]:
    return _hold(session, Case, case_id, "status")  # type: ignore[return-value]


def _active_resolutions(session: Session, case_id: str) -> List[Resolution]:
    return (session.query(Resolution)
            .filter(Resolution.case_id == case_id, Resolution.status.in_(ACTIVE_RESOLUTION_STATUSES))
            .order_by(Resolution.created_at, Resolution.id).populate_existing().all())


@recordable
def active_resolution(session: Session, case_id: str) -> Optional[ResolutionSnapshot]:
    """The case's resolution in progress or done, if any (a read: no lock)."""
    found = _active_resolutions(session, case_id)
    return _resolution_snapshot(found[-1]) if found else None


@recordable
def record_resolution(session: Session, case_id: str, option_code: str, description: str,
                      chosen_by: str = "customer", replaces: Optional[str] = None,
                      now: Optional[datetime] = None) -> ResolutionSnapshot:
    """Record the case's one active resolution.

    Raises ``ResolutionExists`` when the case already has one, unless the customer explicitly
    changed their mind about it (``replaces`` names its option): it is then recorded as cancelled.
    Safe against concurrent calls for the same case (the case row is locked first).
    """
    case = _hold_case(session, case_id)
    if case is None:
        raise ValueError(f"no case {case_id}")
    for existing in _active_resolutions(session, case_id):
        if replaces is not None and existing.option_code == replaces and existing.status == "in_progress":
            existing.status = "cancelled"
        else:
            raise ResolutionExists(_resolution_snapshot(existing))
    resolution = Resolution(case_id=case_id, option_code=option_code, description=description[:2000],
                            chosen_by=chosen_by, status="in_progress", created_at=now or datetime.utcnow())
    session.add(resolution)
    session.flush()
    return _resolution_snapshot(resolution)


@recordable
def next_follow_up_due(session: Session, case_id: str) -> Optional[datetime]:
    """When the case's next promised check-in is due (None: nothing pending)."""
    return (session.query(func.min(FollowUp.due_at))
            .filter(FollowUp.case_id == case_id, FollowUp.done.is_(False)).scalar())


@recordable
def compensation_total(session: Session, case_id: str) -> Decimal:
    total = session.query(func.coalesce(func.sum(Compensation.amount), 0)).filter(Compensation.case_id == case_id).scalar()
    return Decimal(str(total or 0))


@recordable
def customer_compensation_total(session: Session, customer_id: str, since: datetime) -> Decimal:
    """What a customer received over all their cases since a moment (the per-customer limit's window)."""
    total = (session.query(func.coalesce(func.sum(Compensation.amount), 0))
             .join(Case, Case.id == Compensation.case_id)
             .filter(Case.customer_id == customer_id, Compensation.created_at >= since).scalar())
    return Decimal(str(total or 0))


@dataclass
class CompensationRoom:
    case_granted: Decimal      # already granted on this case
    customer_granted: Decimal  # already granted to the customer within the window
    left: Decimal              # what may still be granted: the smaller of both limits' remainders

    @classmethod
    def within(cls, per_case: Decimal, per_customer: Decimal, case_granted: Decimal,
               customer_granted: Decimal) -> "CompensationRoom":
        """The room both limits leave (one formula for the real grant and for a preview)."""
        left = max(Decimal("0"), min(per_case - case_granted, per_customer - customer_granted))
        return cls(case_granted, customer_granted, left)


def compensation_limits(settings: Optional[dict] = None) -> Tuple[Decimal, Decimal, int]:
    """(max per case, max per customer, window in days) from the settings, with safe defaults:
    without a per-customer limit a customer gets no more than one case's worth in the window."""
    settings = settings if settings is not None else section("compensation")
    per_case = Decimal(str(settings.get("max_per_case", 0) or 0))
    per_customer = settings.get("max_per_customer")
    per_customer = per_case if per_customer is None else Decimal(str(per_customer))
    return per_case, per_customer, int(settings.get("customer_window_days", 90) or 0)


@recordable
def compensation_room(session: Session, case_id: str, settings: Optional[dict] = None,
                      now: Optional[datetime] = None) -> CompensationRoom:
    """Already granted and still allowed, per case and per customer. The case and its customer are
    held until the transaction ends, so the answer stays true until the grant is recorded."""
    per_case, per_customer, window_days = compensation_limits(settings)
    case = _hold_case(session, case_id)
    if case is not None:
        _hold(session, Customer, case.customer_id, "name")
    case_granted = compensation_total(session, case_id)
    since = (now or datetime.utcnow()) - timedelta(days=window_days)
    customer_granted = customer_compensation_total(session, case.customer_id, since) if case else Decimal("0")
    return CompensationRoom.within(per_case, per_customer, case_granted, customer_granted)


@recordable
def record_compensation(session: Session, case_id: str, kind: str, amount: Decimal, currency: str, reason: str,
                        granted_by: str = "bot", settings: Optional[dict] = None,
                        now: Optional[datetime] = None) -> None:
    """Record a grant within the limits per case and per customer (``compensation`` settings).

    Raises ``CompensationRefused`` for an amount over what is left. The case and its customer are
    locked first, so two grants at once (two conversations, two cases) cannot both pass the check.
    """
    amount = Decimal(str(amount))
    if amount <= 0:
        raise CompensationRefused(amount, Decimal("0"))
    if session.get(Case, case_id) is None:
        raise ValueError(f"no case {case_id}")
    room = compensation_room(session, case_id, settings, now)  # holds the case and its customer
    if amount > room.left:
        raise CompensationRefused(amount, room.left)
    session.add(Compensation(case_id=case_id, kind=kind, amount=amount, currency=currency, reason=reason[:2000],
                             granted_by=granted_by, created_at=now or datetime.utcnow()))
    session.flush()


@recordable
def tag_root_cause(session: Session, case_id: str, tag: str) -> None:
    exists = session.query(RootCauseTag.id).filter(RootCauseTag.case_id == case_id, RootCauseTag.tag == tag).first()
    if not exists:
        session.add(RootCauseTag(case_id=case_id, tag=tag[:80]))
        session.flush()


@recordable
def close_case(session: Session, case_id: str, now: Optional[datetime] = None) -> None:
    """The customer confirmed the fix: the case is resolved and its resolution done."""
    case = _hold_case(session, case_id)
    if case is not None:
        for resolution in _active_resolutions(session, case_id):
            resolution.status = "done"
        case.status = "resolved"
        case.resolved_at = now or datetime.utcnow()
        session.flush()


@recordable
def record_handoff(session: Session, conversation_id: str, reason: str, summary: str,
                   customer_id: Optional[str] = None, case_id: Optional[str] = None,
                   frustration_level: Optional[str] = None) -> int:
    """Queue the conversation for a person; a waiting handoff for the same conversation is updated, not duplicated."""
    handoff = (
        session.query(Handoff)
        .filter(Handoff.conversation_id == conversation_id, Handoff.status == "waiting")
        .first()
    )
    if handoff is None:
        handoff = Handoff(conversation_id=conversation_id, reason=reason, summary=summary[:4000],
                          customer_id=customer_id, case_id=case_id, frustration_level=frustration_level)
        session.add(handoff)
    else:
        handoff.summary = summary[:4000]
        handoff.frustration_level = frustration_level
        handoff.case_id = handoff.case_id or case_id
        handoff.customer_id = handoff.customer_id or customer_id
    session.flush()
    return handoff.id


# -- promised check-ins ---------------------------------------------------------------------
# A follow-up row goes: scheduled (done false, sent_at null) -> claimed by a gateway's follow-up job
# (attempts + 1, sent_at = the end of its lease) -> delivered into the conversation (done true,
# sent_at = when) -> answered (outcome "fixed" | "not_fixed"). Outcome "agent": a person had the
# conversation when it fell due, so it was shown to them instead of the bot talking over them.
# While not done, sent_at is the earliest time anyone may (re)try it: a lease while one job is
# delivering, a backoff after a failed attempt. ``attempts`` doubles as the claim's version number:
# only the job holding attempt N may finish or release it, so a check-in is delivered once.
FOLLOW_UP_OUTCOMES = ("fixed", "not_fixed", "agent")


@dataclass
class DueFollowUp:
    id: int
    case_id: str
    conversation_id: Optional[str]
    due_at: datetime
    note: str
    attempts: int


@recordable
def schedule_follow_up(session: Session, case_id: str, conversation_id: str, due_at: datetime, note: str) -> None:
    session.add(FollowUp(case_id=case_id, conversation_id=conversation_id, due_at=due_at, note=note[:2000]))
    session.flush()


def due_follow_ups(session: Session, now: Optional[datetime] = None, limit: int = 20) -> List[DueFollowUp]:
    """Check-ins that are due, not delivered, and not being delivered (or backing off) right now."""
    now = now or datetime.utcnow()
    rows = (session.query(FollowUp)
            .filter(FollowUp.done.is_(False), FollowUp.due_at <= now,
                    (FollowUp.sent_at.is_(None)) | (FollowUp.sent_at <= now))
            .order_by(FollowUp.due_at, FollowUp.id).limit(limit).all())
    return [DueFollowUp(r.id, r.case_id, r.conversation_id, r.due_at, r.note, r.attempts or 0) for r in rows]


@recordable
def claim_follow_up(session: Session, follow_up_id: int, attempts_seen: int, lease_until: datetime) -> bool:
    """Take a due check-in for one delivery attempt; exactly one of several concurrent jobs gets True."""
    claimed = (session.query(FollowUp)
               .filter(FollowUp.id == follow_up_id, FollowUp.done.is_(False), FollowUp.attempts == attempts_seen)
               .update({FollowUp.attempts: attempts_seen + 1, FollowUp.sent_at: lease_until},
                       synchronize_session=False))
    return claimed == 1


@recordable
def mark_follow_up_delivered(session: Session, follow_up_id: int, attempt: int, now: Optional[datetime] = None,
                             outcome: Optional[str] = None) -> bool:
    """Delivered by the job holding ``attempt`` (its claim's number); False: the claim was lost, roll back."""
    done = (session.query(FollowUp)
            .filter(FollowUp.id == follow_up_id, FollowUp.done.is_(False), FollowUp.attempts == attempt)
            .update({FollowUp.done: True, FollowUp.sent_at: now or datetime.utcnow(), FollowUp.outcome: outcome},
                    synchronize_session=False))
    return done == 1


@recordable
def retry_follow_up_later(session: Session, follow_up_id: int, attempt: int, retry_at: datetime) -> None:
    """A failed attempt (Rasa down...): nobody tries again before ``retry_at``; nothing is lost."""
    (session.query(FollowUp)
     .filter(FollowUp.id == follow_up_id, FollowUp.done.is_(False), FollowUp.attempts == attempt)
     .update({FollowUp.sent_at: retry_at}, synchronize_session=False))


@recordable
def complete_follow_ups(session: Session, case_id: str, now: Optional[datetime] = None) -> int:
    """A check-in just ran outside the job (an agent sent it): the case's due check-ins nobody is
    delivering right now are done, so the job does not ask again. One being delivered is left to its job."""
    now = now or datetime.utcnow()
    due = session.query(FollowUp).filter(FollowUp.case_id == case_id, FollowUp.done.is_(False),
                                         FollowUp.due_at <= now + timedelta(minutes=1),
                                         (FollowUp.sent_at.is_(None)) | (FollowUp.sent_at <= now)).all()
    for follow_up in due:
        follow_up.done = True
        follow_up.sent_at = now
    return len(due)


@recordable
def record_follow_up_outcome(session: Session, case_id: str, outcome: str) -> bool:
    """The customer's answer to the latest delivered, unanswered check-in of the case."""
    if outcome not in FOLLOW_UP_OUTCOMES:
        raise ValueError(f"unknown follow-up outcome {outcome!r}")
    latest = (session.query(FollowUp)
              .filter(FollowUp.case_id == case_id, FollowUp.done.is_(True), FollowUp.outcome.is_(None))
              .order_by(FollowUp.sent_at.desc(), FollowUp.id.desc()).first())
    if latest is None:
        return False
    latest.outcome = outcome
    session.flush()
    return True


@recordable
def case_follow_ups(session: Session, case_id: str) -> List[dict]:
    """The case's promised check-ins, oldest first (the console shows them with their state)."""
    rows = session.query(FollowUp).filter(FollowUp.case_id == case_id).order_by(FollowUp.due_at, FollowUp.id).all()
    return [{"id": r.id, "due_at": r.due_at, "note": r.note, "done": bool(r.done), "sent_at": r.sent_at,
             "outcome": r.outcome, "attempts": r.attempts or 0, "conversation_id": r.conversation_id} for r in rows]


# -- throttles: attempts counted across conversations and processes -------------------------
@recordable
def count_throttle_events(session: Session, kind: str, key: str, since: datetime) -> int:
    from bot.casedb.models import ThrottleEvent

    return (session.query(func.count(ThrottleEvent.id))
            .filter(ThrottleEvent.kind == kind, ThrottleEvent.key == key, ThrottleEvent.at >= since).scalar() or 0)


@recordable
def record_throttle_event(session: Session, kind: str, key: str, now: Optional[datetime] = None) -> None:
    from bot.casedb.models import ThrottleEvent

    session.add(ThrottleEvent(kind=kind, key=key[:128], at=now or datetime.utcnow()))
    session.flush()


@recordable
def prune_throttle_events(session: Session, older_than: datetime) -> int:
    """Forget attempts older than every window (they no longer count for anything)."""
    from bot.casedb.models import ThrottleEvent

    return session.query(ThrottleEvent).filter(ThrottleEvent.at < older_than).delete(synchronize_session=False)
