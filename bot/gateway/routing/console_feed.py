"""What widgets and consoles are sent: messages, the conversation's state, the queue and the
suggested replies.

A part of ``Router`` (bot/gateway/routing/__init__.py), which holds the state these methods share."""
from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional

from sqlalchemy.exc import SQLAlchemyError

from bot.casedb import repository as repo
from bot.gateway import transcript
from bot.gateway.activity import describe_all
from bot.gateway.fanout import conversation_lock
from bot.gateway.rasa_client import RasaUnavailable
from bot.assist import telemetry as assist_telemetry
from bot.gateway.suggestions import reply_point, said_since_customer, suggestions as render_suggestions
from bot.gateway.views import frustration_trend, history_view, playbook_view

logger = logging.getLogger(__name__)


class ConsoleFeed:
    """What widgets and consoles are sent: messages, state, queue, suggestions."""

    async def _post(self, conversation_id: str, sender: str, text: str, buttons: Optional[List[Dict[str, str]]] = None,
                    agent: Optional[str] = None) -> Dict[str, Any]:
        try:
            message, _ = await self.db.run(transcript.add_message, conversation_id, sender, text, buttons=buttons,
                                           agent=agent)
            view = transcript.message_dict(message, await self.agent_names.fresh(agent))
        except SQLAlchemyError as error:
            # The customer reads it now all the same; it is stored once the database is back.
            logger.error("could not store a %s message of %s yet: %r", sender, conversation_id, error)
            self._outbox.append((conversation_id, sender, text, buttons, agent))
            self._schedule_recovery()
            view = {"id": None, "client_id": None, "sender": sender, "text": text, "buttons": buttons or [],
                    "agent_name": self.agent_names.name_of(agent),
                    "created_at": transcript.iso(datetime.utcnow()), "frustration": None, "issue_type": None}
        await self.hub.to_widgets(conversation_id, {"type": "message", "message": customer_view(view)})
        await self.hub.to_consoles({"type": "message", "conversation_id": conversation_id, "message": view},
                                   conversation_id=conversation_id)
        return view

    async def suggestions_for(self, conversation_id: str) -> List[Dict[str, Any]]:
        """The three replies that fit the moment, each with an ``id`` the console sends back (telemetry)."""
        try:
            prediction = await self.rasa.predict(conversation_id)  # carries the tracker with its events
            domain = await self.rasa.domain()
            scores = sorted(prediction.get("scores") or [], key=lambda s: -float(s.get("score") or 0))
            if scores and scores[0].get("action") == "action_listen":
                # The bot already answered the customer's last message (e.g. right after a handoff): suggest
                # what the policy would reply to that message, less what was already said.
                prediction = await self._predict_reply_to_last_message(conversation_id, prediction)
        except RasaUnavailable as error:
            logger.warning("no suggestions for %s: %s", conversation_id, error)
            return []
        conversation = await self.db.run(transcript.get_conversation, conversation_id)
        holder = conversation.assigned_agent if conversation is not None else None
        holder_name = (await self.agent_names.fresh(holder)).name_of(holder)
        result = await asyncio.get_running_loop().run_in_executor(
            self.suggestion_pool, functools.partial(render_suggestions, prediction, domain, self.db.url, 3, holder_name))
        try:
            await self.db.run(assist_telemetry.record_shown, conversation_id, result)
        except SQLAlchemyError as error:  # the agent still gets the suggestions; only the telemetry is missed
            logger.warning("could not record the suggestions shown for %s: %r", conversation_id, error)
        return result

    async def _predict_reply_to_last_message(self, conversation_id: str, now: Dict[str, Any]) -> Dict[str, Any]:
        events = (now.get("tracker") or {}).get("events") or []
        prefix = reply_point(events)
        if not prefix:
            return now
        scratch = f"suggest-{conversation_id}"  # a scratch conversation: replaced whole, removed after use
        await self.rasa.replace_events(scratch, list(prefix))
        try:
            earlier = await self.rasa.predict(scratch)
        finally:
            try:
                await self.rasa.replace_events(scratch, [])
            except RasaUnavailable as error:  # replaced whole next time all the same
                logger.warning("could not remove the scratch conversation %s: %s", scratch, error)
        tracker = earlier.get("tracker") or {}
        tracker["sender_id"] = conversation_id
        earlier["already_said"] = sorted(said_since_customer(events))
        earlier["current_tracker"] = now.get("tracker") or {}
        return earlier

    async def _publish_state(self, conversation_id: str, suggest: bool) -> None:
        """State and suggestions to the consoles following the conversation, computed side by side."""
        async def state() -> None:
            detail = await self.db.run(self._state, conversation_id)
            if detail is not None:
                await self.hub.to_consoles({"type": "state", "conversation_id": conversation_id, **detail,
                                            "activity_live": self.activity_live()}, conversation_id=conversation_id)

        async def suggested() -> None:
            # Two computations for one conversation may end out of order (a takeover's, then a new message's):
            # only the newest is sent, or the list would go back to older suggestions under the agent's cursor.
            generation = self._suggesting[conversation_id] = self._suggesting.get(conversation_id, 0) + 1
            try:
                found = await self.suggestions_for(conversation_id)
                if self._suggesting.get(conversation_id) != generation:
                    return
            finally:
                if self._suggesting.get(conversation_id) == generation:
                    del self._suggesting[conversation_id]
            await self.hub.to_consoles({"type": "suggestions", "conversation_id": conversation_id,
                                        "suggestions": found}, conversation_id=conversation_id)

        try:
            await asyncio.gather(state(), *([suggested()] if suggest else []))
        except SQLAlchemyError as error:  # the consoles catch up with the next change
            logger.warning("could not publish the state of %s: %r", conversation_id, error)

    def _state(self, session: Any, conversation_id: str, full: bool = False) -> Optional[Dict[str, Any]]:
        """What consoles show of a conversation; ``full`` adds the transcript, handoff summary and case history."""
        conversation = transcript.get_conversation(session, conversation_id)
        if conversation is None:
            return None
        found = transcript.messages(session, conversation_id, self.history_messages)
        names = self.agent_names.fresh_in(session, *{m.agent for m in found if m.agent})
        views = [transcript.message_dict(m, names) for m in found]
        summary = transcript.summarize(session, conversation)
        state = {"summary": summary, "frustration_trend": frustration_trend(views),
                 "playbook": playbook_view(summary["playbook_steps"])}
        if full:
            history = repo.customer_history(session, conversation.customer_id) if conversation.customer_id else None
            state.update(handoff_summary=conversation.handoff_summary, messages=views, history=history_view(history))
        return state

    async def detail(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """Everything the console shows for one conversation."""
        detail = await self.db.run(self._state, conversation_id, True)
        if detail is not None:
            open_ = detail["summary"]["status"] != "closed"
            found, activity = await asyncio.gather(
                self.suggestions_for(conversation_id) if open_ else _nothing(), self.activity(conversation_id))
            detail["suggestions"] = found
            detail.update(activity)
        return detail

    async def activity(self, conversation_id: str) -> Dict[str, Any]:
        """What the bot did, from the tracker (the record): the lines a console starts from. ``activity_live``
        says whether new lines will be pushed (Rasa's event broker, bot/gateway/event_feed.py) or whether the
        console should read them again when the conversation's state changes."""
        result: Dict[str, Any] = {"activity": [], "activity_live": self.activity_live()}
        try:
            tracker = await self.rasa.tracker(conversation_id, events=True)
        except RasaUnavailable as error:
            logger.warning("no activity for %s: %s", conversation_id, error)
            result["activity_error"] = "The bot's activity cannot be read right now (Rasa is not answering)."
            return result
        result["activity"] = describe_all(tracker.get("events") or [])
        return result

    async def publish_queue(self) -> None:
        """Every online agent's queue, after a change; returns once a publish that began after the call has
        ended. Changes arriving while one runs share the next round: a console needs the latest queue, not
        each step (under 1,000 customers a queue per handoff per agent kept the database busy)."""
        self._queue_wanted += 1
        if self._queue_task is None or self._queue_task.done():
            self._queue_task = asyncio.ensure_future(self._publish_queue_rounds())
        await asyncio.shield(self._queue_task)

    async def _publish_queue_rounds(self) -> None:
        while self._queue_wanted:
            self._queue_wanted = 0
            await self._publish_queue_once()

    async def _publish_queue_once(self) -> None:
        for agent in self.hub.online_agents():
            try:
                queue = await self.db.run(transcript.queue, agent, self.live_minutes)
            except SQLAlchemyError as error:  # the consoles catch up with the next change
                logger.warning("could not publish the queue: %r", error)
                return
            await self.hub.to_consoles({"type": "queue", "queue": queue}, agent=agent)

    async def exclusively(self, conversation_id: str, work: Callable[[], Any]) -> Any:
        """Await ``work()`` while no customer message or agent action of the conversation is being
        processed (the follow-up job posts a check-in this way); when it returns something true, the
        consoles following the conversation get its new state."""
        async with conversation_lock(self._locks[conversation_id], self.hub, conversation_id):
            result = await work()
        if result:
            await self._publish_state(conversation_id, suggest=await self.hub.watched(conversation_id))
        return result


async def _nothing() -> List[Dict[str, Any]]:
    return []


def customer_view(message: Dict[str, Any]) -> Dict[str, Any]:
    """What the widget may see of a message: never the NLU's reading of the customer."""
    return {k: v for k, v in message.items() if k not in ("frustration", "issue_type")}
