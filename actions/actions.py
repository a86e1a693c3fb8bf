"""Rasa custom actions: thin adapters from the rasa_sdk tracker to ``bot.recovery.turns``.

Every action runs inside ``_run_turn``, which opens the case database, and, if the
database is unreachable, answers gracefully with the offer of a person instead of failing.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ReminderScheduled, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.casedb.engine import session_scope
from bot.recovery import turns
from bot.recovery.conversation import TurnInput, TurnReply

logger = logging.getLogger(__name__)

Turn = Callable[[TurnInput, Session], TurnReply]


def turn_input(tracker: Tracker) -> TurnInput:
    """The conversation as the recovery logic sees it."""
    latest = tracker.latest_message or {}
    entities: Dict[str, List[str]] = {}
    for entity in latest.get("entities") or []:
        if isinstance(entity, dict) and entity.get("entity") and entity.get("value") is not None:
            entities.setdefault(str(entity["entity"]), []).append(str(entity["value"]))
    frustration: List[Dict[str, Any]] = []
    failed = 0
    for event in tracker.events:
        if event.get("event") != "user":
            continue
        parse = event.get("parse_data") or {}
        if isinstance(parse.get("frustration"), dict):
            frustration.append(parse["frustration"])
        intent = (parse.get("intent") or {}).get("name")
        if intent == "nlu_fallback" and (event.get("text") or "").strip():
            failed += 1
    metadata = latest.get("metadata") if isinstance(latest.get("metadata"), dict) else {}
    return TurnInput(
        conversation_id=tracker.sender_id,
        text=str(latest.get("text") or ""),
        intent=(latest.get("intent") or {}).get("name"),
        issue_type=(latest.get("issue_type") or {}).get("name") if isinstance(latest.get("issue_type"), dict) else None,
        entities=entities,
        metadata=metadata or {},
        slots=dict(tracker.slots),
        message_frustration=frustration,
        failed_turns=failed,
    )


def emit(reply: TurnReply, dispatcher: CollectingDispatcher) -> List[Dict[Text, Any]]:
    for message in reply.messages:
        if message.response:
            dispatcher.utter_message(response=message.response)
        else:
            dispatcher.utter_message(text=message.text, buttons=message.buttons or None)
    events: List[Dict[Text, Any]] = [SlotSet(name, value) for name, value in reply.slots.items()]
    if reply.reminder_minutes is not None:
        events.append(ReminderScheduled(
            "EXTERNAL_follow_up", trigger_date_time=datetime.now() + timedelta(minutes=reply.reminder_minutes),
            name="follow_up", kill_on_user_message=False))
    return events


def run_turn(turn: Turn, tracker: Tracker, dispatcher: CollectingDispatcher) -> List[Dict[Text, Any]]:
    conversation = turn_input(tracker)
    try:
        with session_scope() as session:
            reply = turn(conversation, session)
    except SQLAlchemyError as error:
        logger.error("Case database unavailable in %s: %s", getattr(turn, "__name__", turn), error)
        reply = turns.database_outage(conversation)
    except Exception:  # a bug must not leave the customer without an answer
        logger.exception("Recovery turn %s failed", getattr(turn, "__name__", turn))
        reply = turns.unexpected_failure(conversation)
    return emit(reply, dispatcher)


class RecoveryAction(Action):
    """A custom action whose behaviour is one function of ``bot.recovery.turns``."""

    action_name: Text = ""
    turn: Optional[Turn] = None

    def name(self) -> Text:
        return self.action_name

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        return run_turn(type(self).turn, tracker, dispatcher)


class ActionTrackConversation(Action):
    """Custom slot mapping run after every message: identity, issue type, conversation frustration."""

    def name(self) -> Text:
        return "action_track_conversation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        conversation = turn_input(tracker)
        try:
            with session_scope() as session:
                slots = turns.track(conversation, session)
        except SQLAlchemyError as error:
            logger.error("Case database unavailable while tracking: %s", error)
            slots = turns.track(conversation, None)
        return [SlotSet(name, value) for name, value in slots.items()]


class ActionHandleComplaint(RecoveryAction):
    action_name = "action_handle_complaint"
    turn = staticmethod(turns.handle_complaint)


class ActionVerifyCustomer(RecoveryAction):
    action_name = "action_verify_customer"
    turn = staticmethod(turns.verify)


class ActionApplyResolution(RecoveryAction):
    action_name = "action_apply_resolution"
    turn = staticmethod(turns.apply_resolution)


class ActionAnswerConfirmation(RecoveryAction):
    action_name = "action_answer_confirmation"
    turn = staticmethod(turns.answer_confirmation)


class ActionCloseLoop(RecoveryAction):
    action_name = "action_close_loop"
    turn = staticmethod(turns.close_loop)


class ActionFollowUp(RecoveryAction):
    action_name = "action_follow_up"
    turn = staticmethod(turns.follow_up)


class ActionHandoff(RecoveryAction):
    action_name = "action_handoff"
    turn = staticmethod(lambda conversation, session: turns.handoff(conversation, session, "customer_request"))


class ActionFallback(RecoveryAction):
    action_name = "action_fallback"
    turn = staticmethod(turns.fallback)
