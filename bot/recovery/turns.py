"""One function per kind of customer turn: the recovery playbook as code over the case database.

Each takes the conversation (``TurnInput``) and an open database session and returns a
``TurnReply``. Database errors propagate: the action layer turns them into a graceful
reply with the offer of a person.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, Dict, List, Optional

from sqlalchemy.orm import Session

from bot.casedb import repository as repo
from bot.recovery.compensation import Grant, compensation_for
from bot.recovery.conversation import TurnInput, TurnReply
from bot.recovery.explain import ISSUE_NOUNS, acknowledgement, explanation, money, resolution_status
from bot.recovery.frustration import conversation_frustration
from bot.recovery.options import CATALOGUE, options_for, pick_option
from bot.recovery.playbook import add_steps
from bot.recovery.situation import find_situation
from bot.settings import section

COMPLAINT_TYPES = ("delivery", "billing", "product", "account", "technical", "service")


# -- every message: who is this, how upset, what about --------------------------------------
def track(turn: TurnInput, session: Optional[Session]) -> Dict[str, Any]:
    """Slots refreshed after every customer message (run as a custom slot mapping)."""
    slots: Dict[str, Any] = {}
    claimed = str(turn.metadata.get("customer_id") or "").strip()[:40] if isinstance(turn.metadata, dict) else ""
    if claimed and claimed != turn.slot("customer_id"):
        if session is None:
            # The gateway vouched for this id; with the case system down we cannot show data anyway.
            slots.update(customer_id=claimed, verified=True)
        else:
            first_name = repo.customer_first_name(session, claimed)
            if first_name is not None:
                slots.update(customer_id=claimed, customer_name=first_name, verified=True)
    issue = None
    if turn.intent and turn.intent.startswith("complain_"):
        # The intent says it is a complaint; the blended issue-type model says about what.
        issue = turn.issue_type if turn.issue_type in COMPLAINT_TYPES else turn.intent[len("complain_"):]
    if issue in COMPLAINT_TYPES and _may_set_issue(turn, issue):
        slots["issue_type"] = issue
    case_id = turn.slot("case_id")
    earlier = turn.slot("case_earlier_contacts")  # counted once, when the case was found
    if earlier is None:
        earlier = repo.earlier_contacts(session, case_id, turn.conversation_id) if (case_id and session is not None) else 0
    mood = conversation_frustration(turn.message_frustration, earlier_contacts=earlier,
                                    failed_turns=turn.failed_turns, resolved=bool(turn.slot("resolution")))
    slots.update(frustration_score=mood.score, frustration_level=mood.level, frustration_trend=mood.trend[-20:],
                 angry_streak=float(mood.angry_streak), failed_turns=float(turn.failed_turns))
    return slots


def _may_set_issue(turn: TurnInput, issue: str) -> bool:
    """Once a case is open, one stray message ("<img ...> is anyone there?" read as technical)
    must not turn a delivery conversation into a technical one; a confident new complaint may."""
    current = turn.slot("issue_type")
    if issue == current or current not in COMPLAINT_TYPES or not turn.slot("case_id"):
        return True
    return turn.issue_confidence >= float(section("issue_type").get("switch_min_confidence", 0.85))


def _stays_angry(turn: TurnInput) -> bool:
    return turn.slot("angry_streak", 0) >= int(section("handoff").get("angry_turns_in_a_row", 2))


# -- complaints -------------------------------------------------------------------------------
def handle_complaint(turn: TurnInput, session: Session) -> TurnReply:
    issue = turn.slot("issue_type") or "other"
    if turn.slot("handed_off"):
        return waiting_for_agent(turn, session)
    if not turn.slot("verified"):
        return _ask_to_verify(turn, issue)
    if _stays_angry(turn) and turn.slot("case_id"):
        return handoff(turn, session, reason="frustration")
    return recover(turn, session, issue)


def _ask_to_verify(turn: TurnInput, issue: str) -> TurnReply:
    reply = TurnReply()
    noun = ISSUE_NOUNS.get(issue, "your request")
    if issue in COMPLAINT_TYPES:
        reply.say(f"I understand: this is about {noun}.")
        reply.respond("utter_apologize")
    reply.respond("utter_ask_verification")
    reply.slots.update(pending_question="verify",
                       playbook_steps=add_steps(turn.slot("playbook_steps"), "acknowledge",
                                                *(["apologize"] if issue in COMPLAINT_TYPES else [])),
                       playbook_step="acknowledge")
    return reply


def recover(turn: TurnInput, session: Session, issue: str) -> TurnReply:
    """Acknowledge with what we know, apologise, explain from the facts, offer options."""
    reply = TurnReply()
    customer_id = turn.slot("customer_id")
    history = repo.customer_history(session, customer_id)
    if history is None:
        return _ask_to_verify(turn, issue)
    situation = find_situation(history, issue, turn.conversation_id, order_id=turn.order_id() or turn.slot("order_id"),
                               case_id=turn.case_id() or _conversation_case(turn, history, issue), now=turn.now)
    if situation.issue_type not in COMPLAINT_TYPES:
        reply.say(f"Thanks, {history.first_name}. What went wrong? Tell me in a sentence and I'll take it from there.")
        reply.slots.update(pending_question=None)
        return reply
    summary = (turn.text or ISSUE_NOUNS[situation.issue_type]).strip()[:300]
    if situation.case is None:
        case_id = repo.open_case(session, customer_id, situation.issue_type, situation.order.id if situation.order else None,
                                 summary, now=turn.now)
    else:
        case_id = situation.case.id
        if situation.reopened:
            repo.reopen_case(session, case_id, f"customer reports the problem again: {summary}")
        else:
            standing = repo.active_resolution(session, case_id)
            if standing is not None:  # writing again about a case already resolved: its resolution, not a new one
                reply = _resolution_stands(turn, session, standing,
                                           greeting=f"Thanks, {history.first_name}. I have the history here, "
                                                    "no need to explain again. ")
                reply.slots.update(issue_type=situation.issue_type,
                                   playbook_steps=add_steps(turn.slot("playbook_steps"), "acknowledge", "keep_informed"),
                                   order_id=situation.order.id if situation.order else turn.slot("order_id"),
                                   case_earlier_contacts=float(repo.earlier_contacts(session, case_id,
                                                                                     turn.conversation_id)))
                return reply
    repo.record_contact(session, case_id, turn.conversation_id, f"Chat: {summary}", situation.issue_type,
                        turn.slot("frustration_level"), turn.slot("frustration_score"), now=turn.now)
    options = options_for(situation)
    reply.say(acknowledgement(situation, turn.now))
    reply.respond("utter_apologize")
    reply.say(explanation(situation, turn.now))
    reply.say("Here is what I can do right now. Which would you prefer?",
              buttons=[{"title": o.title, "payload": f'/choose_option{{"option":"{o.code}"}}'} for o in options])
    reply.slots.update(
        issue_type=situation.issue_type, case_id=case_id, order_id=situation.order.id if situation.order else None,
        case_earlier_contacts=float(repo.earlier_contacts(session, case_id, turn.conversation_id)),
        offered_options=[o.code for o in options], repeat_failure=situation.repeat_failure,
        pending_question="choose_option", playbook_step="resolve_options",
        playbook_steps=add_steps(turn.slot("playbook_steps"), "acknowledge", "apologize", "explain", "resolve_options"),
    )
    return reply


def _conversation_case(turn: TurnInput, history: repo.CustomerHistory, issue: str) -> Optional[str]:
    """The case this conversation is about, unless the customer now complains about another kind of
    problem: that gets its own case (and its own resolution), not the first case's."""
    case = history.case(turn.slot("case_id"))
    if case is None or (issue in COMPLAINT_TYPES and case.issue_type != issue):
        return None
    return case.id


# -- identity ---------------------------------------------------------------------------------
def verify(turn: TurnInput, session: Session) -> TurnReply:
    """Email plus order number, both matching, before any customer data is shown."""
    if turn.slot("handed_off"):
        return waiting_for_agent(turn, session)
    if turn.slot("verified"):
        issue = turn.slot("issue_type")
        if issue in COMPLAINT_TYPES and (turn.order_id() or turn.case_id()):
            return recover(turn, session, issue)
        return TurnReply().say("Thanks, noted. What went wrong? Tell me and I'll look into it.")
    email = turn.email() or turn.slot("claimed_email")
    order_id = turn.order_id() or turn.slot("claimed_order_id")
    reply = TurnReply()
    if not email or not order_id:
        missing = "the order number" if email else ("the email address on your account" if order_id else
                                                    "the email address on your account and an order number")
        reply.say(f"Thanks. To find your case I still need {missing}.")
        reply.slots.update(claimed_email=email, claimed_order_id=order_id, pending_question="verify")
        return reply
    from bot.gateway import throttle  # limits across conversations: per email and per client address

    email_key = throttle.email_key(email)
    address_key = throttle.message_client_key(turn.metadata)
    locked = throttle.verification_locked(session, email_key, address_key)
    customer_id = repo.verify_customer(session, email, order_id)  # looked up either way: the same answer time
    if locked or customer_id is None:
        throttle.verification_failed(session, email_key, address_key)
        attempts = int(turn.slot("verification_attempts", 0)) + 1
        reply.slots.update(verification_attempts=float(attempts), claimed_email=None, claimed_order_id=None)
        if locked:  # the same words whichever half was wrong, or even if both were right
            reply.say(throttle.VERIFY_LOCKED)
            reply.respond("utter_offer_human")
            reply.slots["pending_question"] = "offer_human"
        elif attempts >= int(section("handoff").get("verification_attempts", 3)):
            reply.say("I still can't match those details, and I don't want to keep you going round in circles.")
            reply.respond("utter_offer_human")
            reply.slots["pending_question"] = "offer_human"
        else:
            reply.say("I couldn't match that email address and order number. Could you check both and send them "
                      "again? The order number is in your confirmation email.")
            reply.slots["pending_question"] = "verify"
        return reply
    history = repo.customer_history(session, customer_id)
    turn.slots.update(customer_id=customer_id, verified=True, order_id=order_id.upper())
    issue = turn.slot("issue_type")
    if issue in COMPLAINT_TYPES:
        reply = recover(turn, session, issue)
    else:
        reply.say(f"Thanks, {history.first_name}, you're verified. What went wrong with order {order_id.upper()}?")
    reply.slots.update(customer_id=customer_id, customer_name=history.first_name, verified=True,
                       claimed_email=None, claimed_order_id=None)
    reply.slots.setdefault("order_id", order_id.upper())
    return reply


# -- resolution, compensation, keeping informed -----------------------------------------------
def apply_resolution(turn: TurnInput, session: Session) -> TurnReply:
    """Record the chosen option, compensation within the limits and the follow-up.

    A case has one resolution: asked again (the same conversation or another, in words or with an old
    button) the customer gets the one they have and the offer of a person. The one exception is an
    explicit change: the customer turned down the resolution just agreed here and picked another of
    the options offered then; the first is recorded as cancelled and no new compensation is granted.
    """
    if turn.slot("handed_off"):
        return waiting_for_agent(turn, session)
    offered = list(turn.slot("offered_options", []) or [])
    case_id = turn.slot("case_id")
    reply = TurnReply()
    if not case_id or not turn.slot("verified"):
        return reply.say("Before I can change anything, tell me what went wrong and I'll look up your case.")
    standing = repo.active_resolution(session, case_id)
    replaced = standing if _changes_resolution(turn, standing) else None  # the explicit change flow
    changing = replaced is not None
    if standing is not None and not changing:
        return _resolution_stands(turn, session, standing)
    option = pick_option(offered, turn.text, turn.entity("option"))
    if option is None:
        if not offered:
            return reply.say("I haven't offered anything yet. Tell me what went wrong and I'll find options.")
        return reply.say("Which of these would you like?", buttons=[
            {"title": CATALOGUE[c].title, "payload": f'/choose_option{{"option":"{c}"}}'} for c in offered])
    history = repo.customer_history(session, turn.slot("customer_id"))
    case = history.case(case_id) if history else None
    order = history.order(case.order_id) if (history and case and case.order_id) else None
    try:  # locks the case: a concurrent second choice waits here, then finds this one
        repo.record_resolution(session, case_id, option.code, option.promise,
                               replaces=replaced.option_code if replaced else None, now=turn.now)
    except repo.ResolutionExists as clash:
        return _resolution_stands(turn, session, clash.existing)
    grant = _grant_compensation(turn, session, case_id, case, order) if not changing else None
    granted = grant is not None and grant.granted
    repo.tag_root_cause(session, case_id, option.root_cause)
    follow = section("follow_up")
    promise_hours = int(follow.get("update_promise_hours", 24))
    reminder_minutes = float(follow.get("reminder_minutes", 1440))
    if not changing or repo.next_follow_up_due(session, case_id) is None:  # a change keeps the check-in promised
        repo.schedule_follow_up(session, case_id, turn.conversation_id, turn.now + timedelta(minutes=reminder_minutes),
                                f"Check that '{option.title}' worked.")
        reply.reminder_minutes = reminder_minutes
    before = (CATALOGUE[replaced.option_code].title if replaced.option_code in CATALOGUE else replaced.option_code) \
        if replaced else None
    verb = f"changed from '{before}' to" if replaced else "chose"
    repo.record_contact(session, case_id, turn.conversation_id, f"Chat: customer {verb} '{option.title}'.",
                        turn.slot("issue_type"), turn.slot("frustration_level"), turn.slot("frustration_score"),
                        now=turn.now)
    if replaced:
        reply.say(f"All right: I've cancelled \"{before}\".")
    reply.say(f"Done: {option.promise}")
    if granted:
        reply.say(f"And because this should not have happened, I've added {grant.describe()}.")
    reply.say(f"Your reference is {case_id}. I'm your point of contact for it: you'll hear from us within "
              f"{promise_hours} hours, and I'll check back here myself. Does that work for you?")
    slots: Dict[str, Any] = dict(
        resolution=option.code, reference=case_id, offered_options=[c for c in offered if c != option.code],
        pending_question="confirm_resolution", playbook_step="keep_informed",
        playbook_steps=add_steps(turn.slot("playbook_steps"), *(["compensate"] if granted else []),
                                 "keep_informed", "learn"),
    )
    if not changing:
        slots["compensation"] = f"{grant.kind}:{grant.amount}" if granted else None
    reply.slots.update(slots)
    return reply


def _changes_resolution(turn: TurnInput, standing: Optional[repo.ResolutionSnapshot]) -> bool:
    """The customer said the resolution just agreed in this conversation doesn't work for them and
    was offered the other options ("I'm sorry it doesn't. Would one of these suit you better?")."""
    return (standing is not None and standing.status == "in_progress"
            and turn.slot("pending_question") == "choose_option" and turn.slot("resolution") == standing.option_code)


def _grant_compensation(turn: TurnInput, session: Session, case_id: str, case: Optional[repo.CaseSnapshot],
                        order: Optional[repo.OrderSnapshot]) -> Optional[Grant]:
    """Compensation within the limits per case and per customer; recorded, or none."""
    room = repo.compensation_room(session, case_id, now=turn.now)  # holds the case and the customer
    grant = compensation_for(
        turn.slot("issue_type") or (case.issue_type if case else "other"), bool(turn.slot("repeat_failure")),
        turn.slot("frustration_level") or "calm", order.total if order else None, room.case_granted,
        customer_already_granted=room.customer_granted)
    if grant.granted:
        try:
            repo.record_compensation(session, case_id, grant.kind, grant.amount, grant.currency, grant.reason,
                                     now=turn.now)
        except repo.CompensationRefused:
            return None
    return grant


def _resolution_stands(turn: TurnInput, session: Session, standing: repo.ResolutionSnapshot,
                       greeting: str = "") -> TurnReply:
    """The case's resolution, its status and what happens next; nothing new is granted. A different
    resolution needs a colleague, so the customer is offered one."""
    case_id = standing.case_id
    option = CATALOGUE.get(standing.option_code)
    promise_hours = int(section("follow_up").get("update_promise_hours", 24))
    granted = repo.compensation_total(session, case_id)
    currency = str(section("compensation").get("currency", "USD"))
    credit = f"the {money(granted, currency)} credit we added" if granted > 0 else ""
    text = resolution_status(case_id, option.title if option else standing.option_code, standing.description,
                             standing.status, standing.created_at, standing.created_at + timedelta(hours=promise_hours),
                             repo.next_follow_up_due(session, case_id), credit, now=turn.now)
    what = option.title if option else standing.option_code
    asked = (turn.text or "").strip()[:200]
    repo.record_contact(session, case_id, turn.conversation_id,
                        f"Chat: resolution '{what}' ({standing.status}); customer asked again"
                        + (f" (\"{asked}\")" if asked else "") + ": told it stands, offered a person.",
                        turn.slot("issue_type"), turn.slot("frustration_level"), turn.slot("frustration_score"),
                        now=turn.now)
    reply = TurnReply().say(greeting + text)
    reply.say("I can't add a second resolution or more compensation myself: changing what we agreed needs a "
              "colleague.")
    reply.respond("utter_offer_human")
    reply.slots.update(case_id=case_id, resolution=standing.option_code, reference=case_id, offered_options=[],
                       pending_question="offer_human", playbook_step="keep_informed",
                       playbook_steps=add_steps(turn.slot("playbook_steps"), "keep_informed"))
    return reply


def answer_confirmation(turn: TurnInput, session: Session) -> TurnReply:
    """A yes or no means what the last question asked."""
    pending = turn.slot("pending_question")
    yes = turn.intent == "affirm"
    if turn.slot("handed_off"):
        return waiting_for_agent(turn, session)
    if pending == "offer_human":
        return handoff(turn, session, reason="customer_request") if yes else TurnReply().say(
            "All right, I'll keep helping. Tell me what went wrong and I'll look into it.")
    if pending == "confirm_fixed":
        return answer_check_in(turn, session, fixed=yes)
    if pending == "confirm_resolution":
        if yes:
            return close_loop(turn, session)
        remaining = [c for c in (turn.slot("offered_options") or []) if c in CATALOGUE]
        if remaining:
            return TurnReply(slots={"pending_question": "choose_option"}).say(
                "I'm sorry it doesn't. Would one of these suit you better?",
                buttons=[{"title": CATALOGUE[c].title, "payload": f'/choose_option{{"option":"{c}"}}'} for c in remaining])
        return handoff(turn, session, reason="resolution_rejected")
    if pending == "choose_option":
        return apply_resolution(turn, session) if yes and len(turn.slot("offered_options") or []) == 1 else \
            TurnReply().say("Which option would you like? You can tap one of the buttons above.")
    if pending == "anything_else":
        if yes:
            return TurnReply(slots={"pending_question": None}).say("Of course. What else can I help with?")
        return TurnReply(slots={"pending_question": None}).respond("utter_goodbye")
    return TurnReply().say("Got it. What can I help you with?")


def close_loop(turn: TurnInput, session: Optional[Session]) -> TurnReply:
    """Confirm the fix, thank the customer, and leave the door open (playbook step 7)."""
    reply = TurnReply()
    case_id = turn.slot("case_id")
    already_closed = "close_loop" in (turn.slot("playbook_steps") or [])
    if turn.slot("resolution") and case_id and not already_closed:
        name = turn.slot("customer_name") or ""
        reply.say(f"Thank you for your patience{', ' + name if name else ''}. Your reference is {case_id}; "
                  "if anything else goes wrong with it, just write here and the full history is with us.")
        if session is not None:
            repo.record_contact(session, case_id, turn.conversation_id, "Chat: customer accepted the resolution.",
                                turn.slot("issue_type"), turn.slot("frustration_level"), turn.slot("frustration_score"),
                                now=turn.now)
        reply.slots.update(playbook_step="close_loop", playbook_steps=add_steps(turn.slot("playbook_steps"), "close_loop"))
        if turn.intent == "goodbye":
            reply.slots["pending_question"] = None
            return reply.respond("utter_goodbye")
        reply.slots["pending_question"] = "anything_else"
        return reply.respond("utter_anything_else")
    reply.slots["pending_question"] = None
    return reply.respond("utter_goodbye" if turn.intent == "goodbye" else "utter_you_are_welcome")


def follow_up(turn: TurnInput, session: Session) -> TurnReply:
    """The scheduled check-in: did the fix work?"""
    case_id = turn.slot("case_id")
    if not case_id:
        return TurnReply()
    repo.complete_follow_ups(session, case_id, now=turn.now)
    name = turn.slot("customer_name") or "there"
    option = CATALOGUE.get(turn.slot("resolution") or "")
    what = f" ({option.title.lower()})" if option else ""
    return TurnReply(slots={"pending_question": "confirm_fixed", "playbook_step": "close_loop",
                            "playbook_steps": add_steps(turn.slot("playbook_steps"), "close_loop")}).say(
        f"Hi {name}, checking in on {case_id}{what}: is everything sorted now?",
        buttons=[{"title": "Yes, all good", "payload": "/affirm"}, {"title": "No, not yet", "payload": "/deny"}])


def answer_check_in(turn: TurnInput, session: Session, fixed: bool) -> TurnReply:
    """The answer to the check-in: "yes" closes the case and the loop; "not yet" reopens the case
    and brings in a person, who gets the reason and the whole history."""
    case_id = turn.slot("case_id")
    if fixed:
        reply = TurnReply()
        name = turn.slot("customer_name") or ""
        if case_id:
            repo.record_follow_up_outcome(session, case_id, "fixed")
            repo.close_case(session, case_id, now=turn.now)
            repo.record_contact(session, case_id, turn.conversation_id, "Chat: customer confirmed the fix at the check-in.",
                                turn.slot("issue_type"), turn.slot("frustration_level"), turn.slot("frustration_score"),
                                now=turn.now)
            reply.say(f"Good to hear{', ' + name if name else ''}. I've closed {case_id}; if anything goes wrong with "
                      "it again, just write here and the full history is with us.")
        reply.slots.update(pending_question="anything_else", playbook_step="close_loop",
                           playbook_steps=add_steps(turn.slot("playbook_steps"), "close_loop"))
        return reply.respond("utter_anything_else")
    if case_id:
        repo.record_follow_up_outcome(session, case_id, "not_fixed")
        repo.reopen_case(session, case_id, "the customer says it is not sorted yet (check-in)")
    return say_then_hand_off(turn, session, "I'm sorry it isn't sorted yet. I've reopened your case and I'm bringing "
                             "in a colleague who can take it further.", reason="follow_up_not_fixed")


# -- people -----------------------------------------------------------------------------------
def handoff_summary(turn: TurnInput) -> str:
    parts = [f"Customer {turn.slot('customer_id') or 'not verified'}"]
    if turn.slot("issue_type"):
        parts.append(f"issue {turn.slot('issue_type')}")
    if turn.slot("case_id"):
        parts.append(f"case {turn.slot('case_id')}")
    if turn.slot("order_id"):
        parts.append(f"order {turn.slot('order_id')}")
    parts.append(f"frustration {turn.slot('frustration_level', 'calm')} ({turn.slot('frustration_score', 0.0):.2f})")
    steps = turn.slot("playbook_steps") or []
    if steps:
        parts.append("bot did: " + ", ".join(steps))
    if turn.slot("offered_options"):
        parts.append("offered: " + ", ".join(turn.slot("offered_options")))
    if turn.slot("resolution"):
        parts.append(f"chosen: {turn.slot('resolution')}")
    if turn.text:
        parts.append(f'last message: "{turn.text[:200]}"')
    return "; ".join(parts)


def handoff(turn: TurnInput, session: Optional[Session], reason: str) -> TurnReply:
    """Queue for a person with the full context; the customer is told what happens next."""
    summary = handoff_summary(turn)
    if session is not None:
        repo.record_handoff(session, turn.conversation_id, reason, summary, customer_id=turn.slot("customer_id"),
                            case_id=turn.slot("case_id"), frustration_level=turn.slot("frustration_level"))
        if turn.slot("case_id"):
            repo.record_contact(session, turn.slot("case_id"), turn.conversation_id, f"Chat handed to a person: {reason}.",
                                turn.slot("issue_type"), turn.slot("frustration_level"), turn.slot("frustration_score"),
                                now=turn.now)
    reply = TurnReply().respond("utter_handoff")
    reply.slots.update(handed_off=True, handoff_reason=reason, handoff_summary=summary, pending_question=None,
                       playbook_steps=add_steps(turn.slot("playbook_steps"), "keep_informed"))
    return reply


def say_then_hand_off(turn: TurnInput, session: Optional[Session], text: str, reason: str) -> TurnReply:
    """Tell the customer why, then queue for a person: every path where the bot cannot go on."""
    reply = TurnReply().say(text)
    person = handoff(turn, session, reason=reason)
    reply.messages += person.messages
    reply.slots.update(person.slots)
    return reply


def waiting_for_agent(turn: TurnInput, session: Optional[Session]) -> TurnReply:
    return TurnReply().say("A colleague has your conversation and the full history, and will reply here. "
                           "I've added your message to the case.")


def fallback(turn: TurnInput, session: Optional[Session]) -> TurnReply:
    if turn.slot("handed_off"):
        return waiting_for_agent(turn, session)
    if not (turn.text or "").strip():
        return TurnReply().say("Your message came through empty. What can I help you with?")
    if turn.failed_turns >= int(section("handoff").get("failed_turns", 2)):
        return say_then_hand_off(turn, session, "I'm sorry, I'm not understanding you well enough to help.",
                                 reason="bot_failed")
    return TurnReply().say("Sorry, I didn't quite get that. Could you put it another way? "
                           "You can also ask for a person at any time.")


def database_outage(turn: TurnInput) -> TurnReply:
    """The case system is down: stay polite, promise nothing we can't check, and bring in a person now.

    The handoff (reason ``case_db_unavailable``) is recorded in the tracker only; the gateway queues the
    conversation, and stores it once the database is back.
    """
    if turn.slot("handed_off"):
        return waiting_for_agent(turn, None)
    return say_then_hand_off(turn, None, "I'm sorry: I can't reach our case system right now, so I can't look up "
                             "your order. Your message is saved.", reason="case_db_unavailable")


def unexpected_failure(turn: TurnInput) -> TurnReply:
    """Something broke on our side: apologise, keep the message, and bring in a person (``action_error``).

    Nothing is written to the case database here: the failure may have come from it.
    """
    if turn.slot("handed_off"):
        return waiting_for_agent(turn, None)
    return say_then_hand_off(turn, None, "Sorry, something went wrong on my side. Your message is saved.",
                             reason="action_error")


def _customer_asked_for_person(turn: TurnInput, session: Optional[Session]) -> TurnReply:
    return handoff(turn, session, reason="customer_request")


# The custom action that runs each turn function (actions/ registers them; the gateway previews them).
ACTION_TURNS = {
    "action_handle_complaint": handle_complaint,
    "action_verify_customer": verify,
    "action_apply_resolution": apply_resolution,
    "action_answer_confirmation": answer_confirmation,
    "action_close_loop": close_loop,
    "action_follow_up": follow_up,
    "action_handoff": _customer_asked_for_person,
    "action_fallback": fallback,
}
