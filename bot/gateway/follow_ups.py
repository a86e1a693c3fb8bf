"""The durable job that keeps the bot's promise "I'll check back here myself".

When the customer accepts a resolution, the action stores a follow-up row with its due time
(``follow_up.reminder_minutes`` later). Every ``poll_seconds`` this job, in the gateway (the
process that reaches customers), takes the rows that are due and delivers each once:

- The bot has the conversation: Rasa runs the check-in (``POST /conversations/{id}/trigger_intent``
  with ``EXTERNAL_follow_up``; the rules map it to ``action_follow_up``), and its messages are stored
  in the transcript like any bot message: the open widget gets them live, a customer who is gone
  finds them in the history when the widget next opens (posting counts as activity, so that is
  the conversation they resume), and agents following the conversation see them in the console.
- A person has the conversation, or it is waiting for one: the bot does not talk over them. The
  due check-in goes to the consoles instead (``follow_up_due``; the agent who has it and those
  watching, or every console while it waits) and is recorded with outcome ``agent``.

Exactly once: a job claims a row (compare-and-set on ``attempts``), runs the check-in, then in ONE
transaction stores the messages and marks the row delivered only if its claim still holds; it
publishes to sockets after that commit. A crash before the commit leaves the row to be retried
after its lease (Rasa may then have run the action twice; the customer sees one check-in); a
crash after it loses at most the live push (the history has the message). When Rasa does not
answer, the row waits ``retry_seconds`` (doubling up to ``retry_max_seconds``) and is tried again;
nothing is lost. Several gateway processes may run the job side by side.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web

from bot.casedb import repository as repo
from bot.gateway import transcript
from bot.gateway.rasa_client import RasaClient, RasaUnavailable
from bot.casedb.runner import Database
from bot.gateway.routing import Router, customer_view
from bot.gateway.views import promise_view
from bot.settings import section

logger = logging.getLogger(__name__)
CHECK_IN_INTENT = "EXTERNAL_follow_up"


@dataclass
class FollowUpSettings:
    """The ``follow_up`` section of the settings file (see the comments there)."""

    poll_seconds: float = 5.0
    retry_seconds: float = 30.0
    retry_max_seconds: float = 600.0
    batch_size: int = 20

    @classmethod
    def load(cls) -> "FollowUpSettings":
        raw = section("follow_up")
        return cls(poll_seconds=max(0.2, float(raw.get("poll_seconds", 5))),
                   retry_seconds=max(1.0, float(raw.get("retry_seconds", 30))),
                   retry_max_seconds=max(1.0, float(raw.get("retry_max_seconds", 600))),
                   batch_size=max(1, int(raw.get("batch_size", 20))))


@dataclass
class _Conversation:
    status: str
    assigned_agent: Optional[str]


def _conversation(session: Any, conversation_id: Optional[str]) -> Optional[_Conversation]:
    found = transcript.get_conversation(session, conversation_id) if conversation_id else None
    return _Conversation(found.status, found.assigned_agent) if found is not None else None


def _bot_messages(replies: Any) -> List[Tuple[str, List[Dict[str, str]]]]:
    """Rasa's collected replies as (text, buttons), cleaned like every bot message the gateway relays."""
    messages = []
    for reply in replies if isinstance(replies, list) else []:
        if not isinstance(reply, dict) or not str(reply.get("text") or "").strip():
            continue
        buttons = [{"title": str(b.get("title", ""))[:200], "payload": str(b.get("payload", ""))[:500]}
                   for b in reply.get("buttons") or [] if isinstance(b, dict)]
        messages.append((str(reply["text"]).strip(), buttons))
    return messages


class FollowUpJob:
    def __init__(self, db: Database, rasa: RasaClient, router: Router, settings: Optional[FollowUpSettings] = None,
                 rasa_timeout: float = 20.0) -> None:
        self.db = db
        self.rasa = rasa
        self.router = router
        self.hub = router.hub
        self.settings = settings or FollowUpSettings.load()
        # Nobody else tries a claimed row before this: longer than one attempt can take.
        self.lease = timedelta(seconds=rasa_timeout + 15)
        self._task: Optional[asyncio.Task] = None

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the case database is down, say: the rows wait, the next poll tries again
                logger.exception("follow-up job: this round failed; trying again in %.0fs", self.settings.poll_seconds)
            await asyncio.sleep(self.settings.poll_seconds)

    def backoff(self, attempt: int) -> timedelta:
        """How long after failed attempt number ``attempt`` (1, 2, ...) the next one may start."""
        seconds = self.settings.retry_seconds * (2 ** min(max(attempt - 1, 0), 20))
        return timedelta(seconds=min(self.settings.retry_max_seconds, seconds))

    async def run_once(self) -> int:
        """Deliver what is due now; returns how many check-ins this job delivered (to customers or agents)."""
        due = await self.db.run(repo.due_follow_ups, datetime.utcnow(), self.settings.batch_size)
        delivered = 0
        for item in due:
            key = item.conversation_id or f"follow-up-{item.id}"
            if await self.router.exclusively(key, lambda item=item: self._attempt(item)):
                delivered += 1
        return delivered

    # -- one check-in ----------------------------------------------------------------------
    async def _attempt(self, item: repo.DueFollowUp) -> bool:
        if not await self.db.run(repo.claim_follow_up, item.id, item.attempts, datetime.utcnow() + self.lease):
            return False  # another job (or process) has it
        attempt = item.attempts + 1
        conversation = await self.db.run(_conversation, item.conversation_id)
        if conversation is None:
            # Not a widget conversation (a script on Rasa's REST channel): there is nowhere to post it.
            logger.warning("follow-up %s of %s: conversation %r is not a chat; not sent", item.id, item.case_id,
                           item.conversation_id)
            return await self.db.run(repo.mark_follow_up_delivered, item.id, attempt, datetime.utcnow())
        if conversation.status in ("agent", "waiting"):
            return await self._to_agents(item, attempt, conversation)
        try:
            result = await self.rasa.trigger_intent(item.conversation_id, CHECK_IN_INTENT)
        except RasaUnavailable as error:
            retry_at = datetime.utcnow() + self.backoff(attempt)
            await self.db.run(repo.retry_follow_up_later, item.id, attempt, retry_at)
            logger.warning("follow-up %s of %s: Rasa unavailable (attempt %d), retrying at %s: %s", item.id,
                           item.case_id, attempt, retry_at.isoformat(timespec="seconds"), error)
            return False
        replies = _bot_messages(result.get("messages"))
        slots = (result.get("tracker") or {}).get("slots") or {}
        if not replies:
            logger.warning("follow-up %s of %s: the bot had nothing to say (no case in the tracker?)",
                           item.id, item.case_id)
        views = await self.db.run(self._store, item, attempt, conversation, replies, slots)
        if views is None:
            return False
        for view in views:
            await self.hub.to_widgets(item.conversation_id, {"type": "message", "message": customer_view(view)})
            await self.hub.to_consoles({"type": "message", "conversation_id": item.conversation_id, "message": view},
                                       conversation_id=item.conversation_id)
        logger.info("follow-up %s of %s delivered to %s", item.id, item.case_id, item.conversation_id)
        return True

    def _store(self, session: Any, item: repo.DueFollowUp, attempt: int, conversation: _Conversation,
               replies: List[Tuple[str, List[Dict[str, str]]]], slots: Dict[str, Any]) -> Optional[List[Dict[str, Any]]]:
        """The check-in's messages and the row marked delivered, in one transaction (None: claim lost)."""
        if not repo.mark_follow_up_delivered(session, item.id, attempt, datetime.utcnow()):
            return None
        views = []
        for text, buttons in replies:
            message, _ = transcript.add_message(session, item.conversation_id, "bot", text, buttons=buttons)
            views.append(transcript.message_dict(message, self.router.agent_names))
        fields: Dict[str, Any] = {}
        if conversation.status == "closed" and replies:
            fields["status"] = "bot"  # the check-in reopens the chat, so the customer can answer it
        if slots.get("playbook_steps"):
            fields["playbook_steps"] = slots["playbook_steps"]
        if fields:
            transcript.update(session, item.conversation_id, **fields)
        return views

    async def _to_agents(self, item: repo.DueFollowUp, attempt: int, conversation: _Conversation) -> bool:
        """A person has (or is about to have) the conversation: they get the due promise, not the customer."""
        now = datetime.utcnow()
        if not await self.db.run(repo.mark_follow_up_delivered, item.id, attempt, now, "agent"):
            return False
        promise = promise_view({"id": item.id, "due_at": item.due_at, "note": item.note, "done": True, "sent_at": now,
                                "outcome": "agent", "attempts": attempt, "conversation_id": item.conversation_id}, now)
        event = {"type": "follow_up_due", "conversation_id": item.conversation_id, "case_id": item.case_id,
                 "follow_up": promise}
        if conversation.status == "agent":  # the agent who has it, and whoever follows it (consoles drop repeats)
            await self.hub.to_consoles(event, agent=conversation.assigned_agent)
            await self.hub.to_consoles(event, conversation_id=item.conversation_id)
        else:
            await self.hub.to_consoles(event)  # waiting for a person: everyone who might take it
        logger.info("follow-up %s of %s shown to agents: a person has %s", item.id, item.case_id, item.conversation_id)
        return True


FOLLOW_UP_JOB = web.AppKey("follow_up_job", FollowUpJob)
