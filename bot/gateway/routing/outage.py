"""After a failure (the case database or Rasa unreachable): what could not be stored or delivered
yet is retried until it is.

A part of ``Router`` (bot/gateway/routing/__init__.py), which holds the state these methods share."""
from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from bot.gateway import transcript

logger = logging.getLogger(__name__)


class OutageRecovery:
    """What a failure left unstored or undelivered, retried until it is not."""

    def _schedule_recovery(self) -> None:
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.ensure_future(self._recover())

    async def _recover(self) -> None:
        """Every ``retry_seconds`` while something failed: store what the database missed, queue the handoffs it
        missed, and bring Rasa's tracker up to date with the messages it missed; stop when all is done."""
        while True:
            await asyncio.sleep(self.faults.retry_seconds)
            try:
                await self._flush_outbox()
                for conversation_id, (reason, summary) in list(self._deferred.items()):
                    del self._deferred[conversation_id]
                    await self._hand_off(conversation_id, reason, summary)
                await self.resume_undelivered()
            except SQLAlchemyError as error:
                logger.info("the database is still unreachable (%r); retrying in %.0fs", error, self.faults.retry_seconds)
                continue
            except Exception:
                logger.exception("recovery after a failure went wrong; retrying")
                continue
            if not (self._outbox or self._deferred or self._waiting_for_rasa):
                logger.info("recovered: every stored message is handled")
                return

    async def _flush_outbox(self) -> None:
        """Store the bot and system messages that reached the customer while the database was down."""
        while self._outbox:
            conversation_id, sender, text, buttons, agent = self._outbox[0]
            await self.db.run(transcript.add_message, conversation_id, sender, text, buttons=buttons, agent=agent)
            self._outbox.pop(0)
