"""Who holds a conversation: the queue, taking over, handing back to the bot, reassigning, and
what Rasa's tracker records of it.

A part of ``Router`` (bot/gateway/routing/__init__.py), which holds the state these methods share."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy.exc import SQLAlchemyError

from bot.casedb import repository as repo
from bot.gateway import transcript
from bot.gateway.fanout import conversation_lock
from bot.gateway.rasa_client import RasaUnavailable
from bot.gateway.routing.errors import RoutingError

logger = logging.getLogger(__name__)


class Handoffs:
    """Who holds a conversation: queue, takeover, handback, reassignment."""

    async def _hand_off(self, conversation_id: str, reason: str, summary: str) -> None:
        """Queue the conversation for a person, or route it straight to the agent the customer had before.

        The widget hears the new status at once; with the database down, the handoff is stored when it is back.
        """
        online = self.hub.online_agents()

        def route(session: Any) -> Optional[Tuple[str, Optional[str]]]:
            conversation = transcript.get_conversation(session, conversation_id)
            if conversation is None or conversation.status in ("waiting", "agent"):
                return None
            preferred = transcript.previous_agent(session, conversation.customer_id, conversation_id)
            now = datetime.utcnow()
            if preferred and preferred in online:
                transcript.update(session, conversation_id, status="agent", assigned_agent=preferred,
                                  last_agent=preferred, handoff_reason=reason, handoff_summary=summary,
                                  waiting_since=now)
                return "agent", preferred
            transcript.update(session, conversation_id, status="waiting", handoff_reason=reason,
                              handoff_summary=summary, waiting_since=now)
            return "waiting", None

        try:
            routed = await self.db.run(route)
        except SQLAlchemyError as error:
            logger.error("could not queue %s for a person (%s) yet: %r", conversation_id, reason, error)
            self._deferred.setdefault(conversation_id, (reason, summary))
            self._schedule_recovery()
            await self._status_changed(conversation_id, "waiting")
            return
        if routed is None:
            return
        status, agent = routed
        if agent:
            await self.hub.to_consoles({"type": "assigned", "conversation_id": conversation_id}, agent=agent)
            await self._agent_joined(conversation_id, agent, returning=True)
        else:
            await self._status_changed(conversation_id, status)
        await self.publish_queue()

    async def _status_changed(self, conversation_id: str, status: str, agent: Optional[str] = None) -> None:
        """The widget's header follows the conversation: the bot, waiting for a person, or the agent's name."""
        name = (await self.agent_names.fresh(agent)).name_of(agent)
        await self.hub.to_widgets(conversation_id, {"type": "status", "status": status,
                                                    "agent": {"name": name} if name else None})

    async def take(self, conversation_id: str, agent: str) -> None:
        async with conversation_lock(self._locks[conversation_id], self.hub, conversation_id):
            def claim(session: Any) -> str:
                conversation = transcript.get_conversation(session, conversation_id)
                if conversation is None:
                    raise RoutingError(404, "No such conversation.")
                if conversation.status == "agent" and conversation.assigned_agent not in (None, agent):
                    raise RoutingError(409, f"{conversation.assigned_agent} already has this conversation.")
                previous = conversation.status
                transcript.update(session, conversation_id, status="agent", assigned_agent=agent, last_agent=agent,
                                  handoff_reason=conversation.handoff_reason or "agent_takeover")
                if previous == "bot":
                    repo.record_handoff(session, conversation_id, "agent_takeover",
                                        conversation.handoff_summary or f"{agent} took over a bot conversation",
                                        customer_id=conversation.customer_id, case_id=conversation.case_id,
                                        frustration_level=conversation.frustration_level)
                if conversation.case_id:
                    repo.record_contact(session, conversation.case_id, conversation_id,
                                        f"Chat handled by {agent}.", conversation.issue_type,
                                        conversation.frustration_level, conversation.frustration_score,
                                        handled_by=agent)
                return previous

            previous = await self.db.run(claim)
            await self._tell_rasa(conversation_id, [{"event": "slot", "name": "handed_off", "value": True}])
            if previous != "agent":
                await self._agent_joined(conversation_id, agent, returning=False)
        await self._publish_state(conversation_id, suggest=True)
        await self.publish_queue()

    async def _agent_joined(self, conversation_id: str, agent: str, returning: bool) -> None:
        name = (await self.agent_names.fresh(agent)).name_of(agent)
        text = (f"{name}, who helped you before, has joined the conversation." if returning
                else f"{name} from our team has joined the conversation.")
        await self._post(conversation_id, "system", text)
        await self.hub.to_widgets(conversation_id, {"type": "agent_joined", "name": name})
        await self._status_changed(conversation_id, "agent", agent)

    async def hand_back(self, conversation_id: str, agent: str) -> None:
        async with conversation_lock(self._locks[conversation_id], self.hub, conversation_id):
            def release(session: Any) -> None:
                conversation = transcript.get_conversation(session, conversation_id)
                if conversation is None:
                    raise RoutingError(404, "No such conversation.")
                if conversation.status != "agent" or conversation.assigned_agent != agent:
                    raise RoutingError(409, "Only the agent who has the conversation can hand it back.")
                transcript.update(session, conversation_id, status="bot", assigned_agent=None, waiting_since=None)

            await self.db.run(release)
            await self._tell_rasa(conversation_id, [{"event": "slot", "name": "handed_off", "value": False},
                                                    {"event": "slot", "name": "angry_streak", "value": 0.0}])
            name = (await self.agent_names.fresh(agent)).name_of(agent)
            await self._post(conversation_id, "system", f"{name} has left the conversation; the assistant is back.")
            await self.hub.to_widgets(conversation_id, {"type": "agent_left", "name": name})
            await self._status_changed(conversation_id, "bot")
        await self._publish_state(conversation_id, suggest=False)
        await self.publish_queue()

    async def reassign(self, conversation_id: str, by: str, to: Optional[str], admin: bool = False) -> Dict[str, Any]:
        """Pass a conversation to another agent (``to``, a username) or back to the queue (``to`` None).

        Only the agent holding it may, or an admin (also for a conversation waiting in the queue).
        The target must be an active agent or admin account. The customer stays with a person
        (Rasa's ``handed_off`` stays true): a new agent is announced, the queue is told politely.
        """
        target = to.strip().lower() if isinstance(to, str) else None
        async with conversation_lock(self._locks[conversation_id], self.hub, conversation_id):
            def move(session: Any) -> Dict[str, Any]:
                from bot.casedb.models import Account  # staff accounts: only reassign reads them here

                conversation = transcript.get_conversation(session, conversation_id)
                if conversation is None:
                    raise RoutingError(404, "No such conversation.")
                holder = conversation.assigned_agent if conversation.status == "agent" else None
                if admin:
                    if conversation.status not in ("agent", "waiting"):
                        raise RoutingError(409, "Only a conversation with an agent or waiting in the queue "
                                                "can be reassigned.")
                elif holder != by:
                    raise RoutingError(409, "Only the agent who has the conversation (or an admin) can reassign it.")
                name = None
                if target is not None:
                    account = session.query(Account).filter(Account.username == target).first()
                    if account is None or account.disabled:
                        raise RoutingError(400, f"There is no active staff account named '{target[:40]}'.")
                    if account.role not in ("agent", "admin"):
                        raise RoutingError(400, f"{account.display_name} is not an agent and cannot take conversations.")
                    if target == holder:
                        raise RoutingError(400, f"{account.display_name} already has this conversation.")
                    name = account.display_name
                    transcript.update(session, conversation_id, status="agent", assigned_agent=target,
                                      last_agent=target, waiting_since=None,
                                      handoff_reason=conversation.handoff_reason or "agent_takeover")
                    if conversation.case_id:
                        repo.record_contact(session, conversation.case_id, conversation_id,
                                            f"Chat passed from {holder or 'the queue'} to {target} by {by}.",
                                            conversation.issue_type, conversation.frustration_level,
                                            conversation.frustration_score, handled_by=target)
                else:
                    if conversation.status == "waiting":
                        raise RoutingError(400, "This conversation is already waiting in the queue.")
                    transcript.update(session, conversation_id, status="waiting", assigned_agent=None,
                                      waiting_since=datetime.utcnow(),
                                      handoff_reason=conversation.handoff_reason or "agent_takeover")
                return {"from": holder, "to": target, "to_name": name}

            moved = await self.db.run(move)
            await self._tell_rasa(conversation_id, [{"event": "slot", "name": "handed_off", "value": True}])
            if target is not None:
                await self._agent_joined(conversation_id, target, returning=False)
                await self.hub.to_consoles({"type": "assigned", "conversation_id": conversation_id, "by": by},
                                           agent=target)
            else:
                await self._post(conversation_id, "system",
                                 "Thanks for waiting: the next available person from our team will be with you shortly.")
                await self._status_changed(conversation_id, "waiting")
        await self._publish_state(conversation_id, suggest=False)
        await self.publish_queue()
        return moved

    async def _tell_rasa(self, conversation_id: str, events: List[Dict[str, Any]]) -> None:
        try:
            await self.rasa.append_events(conversation_id, events)
        except RasaUnavailable as error:  # the person still talks to the customer; the tracker catches up later
            logger.warning("could not record %d events for %s in Rasa: %s", len(events), conversation_id, error)
