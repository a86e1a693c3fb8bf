"""Each customer message enters Rasa's tracker once, however many times the gateways send it.

A gateway that gets no answer in time (a Rasa server slow under load, killed, or cut off) cannot know
whether Rasa received the message; later it may send it again (to the same server or another one, as a
bot turn or as a message logged while a person holds the conversation) after finding it missing from the
tracker, while the first request is still queued behind Rasa's conversation lock. Checked by the gateway,
that is a race: the 1,000-customer load test found a message twice in a tracker.

So the check runs in Rasa, under its lock of the conversation (the Redis lock store with several Rasa
servers), where no other turn of the conversation can interleave: every message the gateway sends carries
its id (``mend_message_id``: in the metadata of a bot turn; in the parse data of a message logged while a
person holds the conversation, because Rasa's ``/conversations/{id}/messages`` drops metadata); a message
whose id is already in the tracker is not logged again. A bot turn sent again answers with what the bot said to the first one (the gateway posts what its
customer did not get yet); a logged message sent again returns the tracker unchanged.

Applied when Rasa imports Mend's tracker store (bot/tracker_store.py), like bot/rasa_speedups.py. Not a
training input (bot/setup.py): the trained model does not depend on it.
"""
from __future__ import annotations

import contextvars
import logging
from typing import Any, Dict, List, Optional, Text

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.processor import MessageProcessor
from rasa.shared.core.events import BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.gateway.rasa_client import MESSAGE_ID

logger = logging.getLogger(__name__)

_ORIGINAL_HANDLE = MessageProcessor.handle_message
_IN_TURN: contextvars.ContextVar[bool] = contextvars.ContextVar("mend_in_turn", default=False)


class _SeenBefore(Exception):
    """The message is in the tracker already (raised inside a bot turn, caught by ``handle_message``)."""

    def __init__(self, tracker: DialogueStateTracker, index: int) -> None:
        super().__init__("message already in the tracker")
        self.tracker = tracker
        self.index = index


def message_id(*sources: Optional[Dict[Text, Any]]) -> Optional[Text]:
    """The gateway's id of a message, from its metadata or its parse data (None: not sent by a gateway)."""
    for source in sources:
        value = source.get(MESSAGE_ID) if isinstance(source, dict) else None
        if not isinstance(value, bool) and isinstance(value, (int, str)) and value != "":
            return str(value)[:64]
    return None


def id_of(message: UserMessage) -> Optional[Text]:
    return message_id(message.metadata, message.parse_data)


def seen_at(tracker: DialogueStateTracker, wanted: Optional[Text]) -> Optional[int]:
    """Where the tracker has a user message with this id, newest first; None if it has none."""
    if wanted is None:
        return None
    events = tracker.events
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if isinstance(event, UserUttered) and message_id(event.metadata, event.parse_data) == wanted:
            return index
    return None


def replies_to(tracker: DialogueStateTracker, index: int) -> List[BotUttered]:
    """What the bot said after the user message at ``index`` (until the next one)."""
    replies: List[BotUttered] = []
    for event in list(tracker.events)[index + 1:]:
        if isinstance(event, UserUttered):
            break
        if isinstance(event, BotUttered):
            replies.append(event)
    return replies


async def log_message(self: MessageProcessor, message: UserMessage,
                      should_save_tracker: bool = True) -> DialogueStateTracker:
    """Rasa's ``log_message``, skipping a message whose id the tracker has already."""
    tracker = await self.fetch_tracker_and_update_session(message.sender_id, message.output_channel,
                                                          message.metadata)
    index = seen_at(tracker, id_of(message))
    if index is not None:
        logger.warning("message %s of %s is in the tracker already: not logged again", id_of(message),
                       message.sender_id)
        if _IN_TURN.get():
            raise _SeenBefore(tracker, index)
        return tracker
    await self._handle_message_with_tracker(message, tracker)
    if should_save_tracker:
        await self.save_tracker(tracker)
    return tracker


async def handle_message(self: MessageProcessor, message: UserMessage) -> Optional[List[Dict[Text, Any]]]:
    """Rasa's ``handle_message``; a message sent again gets the bot's replies to the first, and no new turn."""
    if id_of(message) is None:
        return await _ORIGINAL_HANDLE(self, message)
    token = _IN_TURN.set(True)
    try:
        return await _ORIGINAL_HANDLE(self, message)
    except _SeenBefore as seen:
        # The channel answers with what its output channel was sent (the REST channel's collector): the
        # bot's replies to the first time, as Rasa sent them then.
        for reply in replies_to(seen.tracker, seen.index):
            await message.output_channel.send_response(seen.tracker.sender_id, reply.message())
        if isinstance(message.output_channel, CollectingOutputChannel):
            return message.output_channel.messages
        return None
    finally:
        _IN_TURN.reset(token)


def apply() -> None:
    if MessageProcessor.__dict__.get("log_message") is not log_message:
        MessageProcessor.log_message = log_message  # type: ignore[assignment]
        MessageProcessor.handle_message = handle_message  # type: ignore[assignment]
