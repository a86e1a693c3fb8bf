"""The conversation-level slots after a customer message, with the case database or without it.

Used inside the Rasa server (bot/dialogue/tracking_policy.py: after each customer message the bot
answers, and as each message a person receives is logged) and by the tests' simulated chat.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, Mapping, Optional

from sqlalchemy.exc import SQLAlchemyError

from bot.casedb.engine import session_scope
from bot.recovery import turns
from bot.recovery.conversation import TurnInput
from bot.settings import database_url as configured_database_url, section

logger = logging.getLogger(__name__)

# database URL -> monotonic time before which it is not tried again
_DOWN_UNTIL: Dict[str, float] = {}


def tracked_slots(turn: TurnInput, database_url: Optional[str] = None) -> Dict[str, Any]:
    """``turns.track`` on the case database; without it while the database is unreachable.

    After a failure the database is not tried again for ``tracking.database_retry_seconds``, so
    an outage costs one connection timeout, not one per message.
    """
    url = database_url or configured_database_url()
    if time.monotonic() < _DOWN_UNTIL.get(url, 0.0):
        return turns.track(turn, None)
    try:
        with session_scope(url) as session:
            slots = turns.track(turn, session)
    except SQLAlchemyError as error:
        retry = max(0.0, float(section("tracking").get("database_retry_seconds", 30)))
        _DOWN_UNTIL[url] = time.monotonic() + retry
        logger.error("Case database unavailable while tracking the conversation (retry in %.0fs): %s", retry, error)
        return turns.track(turn, None)
    _DOWN_UNTIL.pop(url, None)
    return slots


def changed_slots(slots: Mapping[str, Any], current: Mapping[str, Any]) -> Dict[str, Any]:
    """The values that differ from the conversation's: every slot event is replayed on each later prediction."""
    return {name: value for name, value in slots.items() if current.get(name) != value}
