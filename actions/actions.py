"""Rasa custom actions: thin adapters from the rasa_sdk tracker to ``bot.recovery.turns``.

Every action runs inside ``_run_turn``, which opens the case database, and, if the
database is unreachable or the turn fails, answers gracefully and hands the conversation to a
person (reason ``case_db_unavailable`` or ``action_error``) instead of failing.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.casedb.engine import session_scope
from bot.recovery import turns
from bot.recovery.conversation import TurnInput, TurnReply
from bot.recovery.tracker_state import turn_input as tracker_turn_input
from bot.recovery.tracking import changed_slots

logger = logging.getLogger(__name__)

Turn = Callable[[TurnInput, Session], TurnReply]


def turn_input(tracker: Tracker) -> TurnInput:
    return tracker_turn_input(tracker.sender_id, tracker.slots, tracker.latest_message, tracker.events)


def slot_events(slots: Dict[str, Any], tracker: Tracker) -> List[Dict[Text, Any]]:
    return [SlotSet(name, value) for name, value in changed_slots(slots, tracker.slots).items()]


def emit(reply: TurnReply, dispatcher: CollectingDispatcher, tracker: Tracker) -> List[Dict[Text, Any]]:
    for message in reply.messages:
        if message.response:
            dispatcher.utter_message(response=message.response)
        else:
            dispatcher.utter_message(text=message.text, buttons=message.buttons or None)
    # No Rasa reminder for the promised check-in (``reply.reminder_minutes``): Rasa keeps reminders in
    # memory and sends what they produce nowhere the customer sees. The follow-up row the turn stored
    # is delivered by the gateway's durable job (bot/gateway/follow_ups.py) through the conversation.
    return slot_events(reply.slots, tracker)


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
    return emit(reply, dispatcher, tracker)


class RecoveryAction(Action):
    """A custom action whose behaviour is one function of ``bot.recovery.turns``."""

    action_name: Text = ""
    turn: Optional[Turn] = None

    def name(self) -> Text:
        return self.action_name

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[Dict[Text, Any]]:
        return run_turn(type(self).turn, tracker, dispatcher)


class ActionHandleComplaint(RecoveryAction):
    action_name = "action_handle_complaint"
    turn = staticmethod(turns.ACTION_TURNS["action_handle_complaint"])


class ActionVerifyCustomer(RecoveryAction):
    action_name = "action_verify_customer"
    turn = staticmethod(turns.ACTION_TURNS["action_verify_customer"])


class ActionApplyResolution(RecoveryAction):
    action_name = "action_apply_resolution"
    turn = staticmethod(turns.ACTION_TURNS["action_apply_resolution"])


class ActionAnswerConfirmation(RecoveryAction):
    action_name = "action_answer_confirmation"
    turn = staticmethod(turns.ACTION_TURNS["action_answer_confirmation"])


class ActionCloseLoop(RecoveryAction):
    action_name = "action_close_loop"
    turn = staticmethod(turns.ACTION_TURNS["action_close_loop"])


class ActionFollowUp(RecoveryAction):
    action_name = "action_follow_up"
    turn = staticmethod(turns.ACTION_TURNS["action_follow_up"])


class ActionHandoff(RecoveryAction):
    action_name = "action_handoff"
    turn = staticmethod(turns.ACTION_TURNS["action_handoff"])


class ActionFallback(RecoveryAction):
    action_name = "action_fallback"
    turn = staticmethod(turns.ACTION_TURNS["action_fallback"])
