"""An agent's reply: sent to the customer (a suggested custom action run for real), recorded in
Rasa's tracker, and kept for later suggestions and the suggestion telemetry.

A part of ``Router`` (bot/gateway/routing/__init__.py), which holds the state these methods share."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from sqlalchemy.exc import SQLAlchemyError

from bot.gateway import transcript
from bot.gateway.fanout import conversation_lock
from bot.gateway.rasa_client import RasaUnavailable
from bot.assist import learned as learned_replies, telemetry as assist_telemetry
from bot.assist.facts import facts_from_case_db
from bot.recovery.turns import ACTION_TURNS
from bot.gateway.routing.errors import RoutingError

logger = logging.getLogger(__name__)


class AgentReplies:
    """An agent's reply to the customer, and what is learnt from it."""

    async def send(self, conversation_id: str, agent: str, text: str, action: Optional[str],
                   suggestion_id: Any = None) -> Dict[str, Any]:
        """The agent's reply: to the customer, and into the Rasa tracker so the dialogue state follows."""
        async with conversation_lock(self._locks[conversation_id], self.hub, conversation_id):
            conversation = await self.db.run(transcript.get_conversation, conversation_id)
            if conversation is None:
                raise RoutingError(404, "No such conversation.")
            if conversation.status != "agent" or conversation.assigned_agent != agent:
                raise RoutingError(409, "Take over the conversation before replying.")
            shown = await self.db.run(_shown_suggestion, conversation_id, suggestion_id)
            if shown is not None and action is None:
                action = shown["action"]
            messages: List[Dict[str, Any]] = []
            if action in ACTION_TURNS and shown is not None and shown["action"] == action and shown["text"] == text:
                # The agent sends the policy's custom action unchanged: run it for real (it records the
                # resolution, compensation, follow-up...) and relay exactly what it produced.
                try:
                    # The action runs as the bot would (not "a colleague has your conversation"), then the
                    # conversation stays with the agent.
                    await self.rasa.append_events(conversation_id, [
                        {"event": "slot", "name": "handed_off", "value": False}])
                    result = await self.rasa.execute(conversation_id, action)
                    await self._tell_rasa(conversation_id, [
                        {"event": "slot", "name": "handed_off", "value": True},
                        {"event": "action", "name": "action_listen"}])
                    for reply in result.get("messages") or []:
                        if str(reply.get("text") or "").strip():
                            messages.append(await self._post(conversation_id, "agent", str(reply["text"]),
                                                             buttons=list(reply.get("buttons") or []), agent=agent))
                except RasaUnavailable as error:
                    logger.warning("could not run %s for %s: %s", action, conversation_id, error)
            if not messages:
                messages.append(await self._post(conversation_id, "agent", text, agent=agent))
                events: List[Dict[str, Any]] = []
                if action and (action.startswith("utter_") or action in ACTION_TURNS):
                    events.append({"event": "action", "name": action, "policy": "agent", "confidence": 1.0})
                events += [{"event": "bot", "text": text, "metadata": {"agent": agent}},
                           {"event": "action", "name": "action_listen"}]
                await self._tell_rasa(conversation_id, events)
            await self._learn_from_reply(conversation_id, agent, text, suggestion_id)
        await self._publish_state(conversation_id, suggest=True)
        return messages[-1]

    async def _learn_from_reply(self, conversation_id: str, agent: str, text: str, suggestion_id: Any) -> None:
        """Telemetry for the suggestion the reply came from, and the reply kept for later suggestions."""
        try:
            tracker = await self.rasa.tracker(conversation_id)
        except RasaUnavailable:
            tracker = {}
        slots = tracker.get("slots") or {}
        answered = str((tracker.get("latest_message") or {}).get("text") or "")

        def record(session: Any) -> None:
            chosen = assist_telemetry.record_sent(session, conversation_id, agent, text, suggestion_id)
            if chosen is not None and chosen.outcome == "as_is" and chosen.source != "learned":
                return  # the library or the policy already has it
            name = self.agent_names.fresh_in(session, agent).name_of(agent)
            facts = facts_from_case_db(session, slots, agent_name=name)
            learned_replies.remember(session, text, answered, facts, slots.get("issue_type"), agent)

        try:
            await self.db.run(record)
        except SQLAlchemyError as error:
            logger.warning("could not record the reply's telemetry for %s: %r", conversation_id, error)


def _shown_suggestion(session: Any, conversation_id: str, suggestion_id: Any) -> Optional[Dict[str, Any]]:
    event = assist_telemetry.shown_suggestion(session, conversation_id, suggestion_id)
    return {"action": event.action, "text": event.text, "source": event.source} if event is not None else None
