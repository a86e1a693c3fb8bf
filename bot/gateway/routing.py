"""Who answers a customer message: the bot (through Rasa) or a person, and everything that follows.

The customer's message is stored before it is acknowledged. Then, one message at a time
per conversation, it goes to Rasa's REST channel while the bot has the conversation, or
to the assigned agent once a person has it; in that case Rasa still parses it and stores
it in the tracker (``/conversations/{id}/messages``), so frustration and issue type keep
updating and the policy's suggestions follow the conversation.
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime
from typing import Any, Callable, DefaultDict, Dict, List, Optional, TypeVar

from bot.casedb import repository as repo
from bot.casedb.engine import session_scope
from bot.gateway import transcript
from bot.gateway.api_errors import ApiError
from bot.gateway.hub import Hub
from bot.gateway.rasa_client import RasaClient, RasaUnavailable
from bot.gateway.suggestions import reply_point, said_since_customer, suggestions as render_suggestions
from bot.gateway.views import frustration_trend, history_view, playbook_view
from bot.recovery.frustration import conversation_frustration
from bot.recovery.turns import ACTION_TURNS

logger = logging.getLogger(__name__)
T = TypeVar("T")

BOT_UNAVAILABLE = ("I'm sorry, I can't answer right now. A person from our team will reply here shortly; "
                   "your message is saved.")


class RoutingError(ApiError):
    """A conversation request that cannot be carried out (unknown, or someone else's)."""


class Database:
    """Runs case-database work in worker threads so sockets keep flowing."""

    def __init__(self, url: Optional[str] = None) -> None:
        self.url = url

    async def run(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def call() -> T:
            with session_scope(self.url) as session:
                return work(session, *args, **kwargs)

        return await asyncio.to_thread(call)


class Router:
    def __init__(self, db: Database, rasa: RasaClient, hub: Hub, live_minutes: int = 30,
                 history_messages: int = 500) -> None:
        self.db = db
        self.rasa = rasa
        self.hub = hub
        self.live_minutes = live_minutes
        self.history_messages = history_messages
        self._locks: DefaultDict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._suggested: Dict[str, List[Dict[str, Any]]] = {}
        self._tasks: set = set()
        self._inflight: set = set()  # customer message ids being processed (a resend must not run them twice)
        self.agent_names: Dict[str, str] = {}

    # -- customer side --------------------------------------------------------------------
    async def accept(self, conversation_id: str, text: str, client_id: Optional[str], payload: Optional[str]) -> Dict[str, Any]:
        """Store the customer's message (idempotent per client id) and queue its processing."""
        message, created = await self.db.run(transcript.add_message, conversation_id, "customer", text,
                                             client_id=client_id, payload=payload)
        view = transcript.message_dict(message)
        if (created or not message.delivered_to_bot) and message.id not in self._inflight:
            self._inflight.add(message.id)
            if created:
                await self.hub.to_consoles({"type": "message", "conversation_id": conversation_id, "message": view},
                                           conversation_id=conversation_id)
            self._spawn(self._process(conversation_id, message.id, text, payload))
        return view

    async def resume_undelivered(self) -> int:
        """After a restart: process customer messages that were stored and acknowledged but never handled.

        A message Rasa already has (the gateway stopped after sending it) is not sent again.
        """
        pending = await self.db.run(transcript.undelivered)
        for conversation_id, message_id, text, payload in pending:
            try:
                tracker = await self.rasa.tracker(conversation_id, events=True)
                handled = any(e.get("event") == "user" and e.get("text") in (text, payload)
                              for e in tracker.get("events") or [])
            except RasaUnavailable:
                handled = False
            if handled:
                await self.db.run(transcript.set_parse, message_id, {}, True)
                continue
            self._inflight.add(message_id)
            self._spawn(self._process(conversation_id, message_id, text, payload))
        return len(pending)

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for messages still being processed (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _process(self, conversation_id: str, message_id: int, text: str, payload: Optional[str]) -> None:
        async with self._locks[conversation_id]:
            try:
                conversation = await self.db.run(transcript.get_conversation, conversation_id)
                if conversation is None:
                    return
                if conversation.status == "bot":
                    await self._to_bot(conversation_id, conversation.customer_id, message_id, payload or text)
                else:
                    await self._to_agent(conversation_id, message_id, text)
            except Exception:
                logger.exception("processing message %s of %s failed", message_id, conversation_id)
                await self._bot_unavailable(conversation_id, "gateway_error")
            finally:
                self._inflight.discard(message_id)

    async def _to_bot(self, conversation_id: str, customer_id: Optional[str], message_id: int, text: str) -> None:
        await self.hub.to_widgets(conversation_id, {"type": "typing", "on": True, "who": "bot"})
        metadata = {"customer_id": customer_id} if customer_id else {}
        try:
            replies = await self.rasa.send(conversation_id, text, metadata)
            tracker = await self.rasa.tracker(conversation_id)
        except RasaUnavailable as error:
            logger.warning("Rasa unavailable for %s: %s", conversation_id, error)
            await self.hub.to_widgets(conversation_id, {"type": "typing", "on": False, "who": "bot"})
            await self._bot_unavailable(conversation_id, "bot_unavailable")
            return
        for reply in replies:
            text_out = str(reply.get("text") or "").strip()
            if not text_out:
                continue
            buttons = [{"title": str(b.get("title", ""))[:200], "payload": str(b.get("payload", ""))[:500]}
                       for b in reply.get("buttons") or [] if isinstance(b, dict)]
            await self._post(conversation_id, "bot", text_out, buttons=buttons)
        await self.hub.to_widgets(conversation_id, {"type": "typing", "on": False, "who": "bot"})
        await self._absorb_tracker(conversation_id, message_id, tracker)
        slots = tracker.get("slots") or {}
        if slots.get("handed_off"):
            await self._hand_off(conversation_id, str(slots.get("handoff_reason") or "bot"),
                                 str(slots.get("handoff_summary") or ""))
        await self._publish_state(conversation_id, suggest=self.hub.watched(conversation_id))

    async def _to_agent(self, conversation_id: str, message_id: int, text: str) -> None:
        try:
            tracker = await self.rasa.add_user_message(conversation_id, text, {})
        except RasaUnavailable as error:
            logger.warning("Rasa could not parse a message for %s: %s", conversation_id, error)
            await self.db.run(transcript.set_parse, message_id, {}, False)
            await self._publish_state(conversation_id, suggest=False)
            return
        await self._absorb_tracker(conversation_id, message_id, tracker)
        await self._publish_state(conversation_id, suggest=True)

    async def _absorb_tracker(self, conversation_id: str, message_id: int, tracker: Dict[str, Any]) -> None:
        """Keep the parse of the message and the conversation's state as Rasa sees it."""
        latest = tracker.get("latest_message") or {}
        parse = {key: latest.get(key) for key in ("frustration", "issue_type", "intent") if latest.get(key)}
        slots = tracker.get("slots") or {}

        def store(session: Any) -> Dict[str, Any]:
            transcript.set_parse(session, message_id, parse, True)
            conversation = transcript.get_conversation(session, conversation_id)
            fields: Dict[str, Any] = {}
            levels = [transcript.message_dict(m)["frustration"] for m in transcript.messages(session, conversation_id)
                      if m.sender == "customer" and m.parse]
            mood = conversation_frustration([f for f in levels if isinstance(f, dict)])
            if conversation.status == "bot" and slots.get("frustration_level"):
                fields.update(frustration_level=slots["frustration_level"],
                              frustration_score=float(slots.get("frustration_score") or 0.0))
            else:
                fields.update(frustration_level=mood.level, frustration_score=mood.score)
            issue = slots.get("issue_type") or (parse.get("issue_type") or {}).get("name")
            if issue and issue != "other":
                fields["issue_type"] = issue
            if slots.get("case_id"):
                fields["case_id"] = slots["case_id"]
            if slots.get("playbook_steps"):
                fields["playbook_steps"] = slots["playbook_steps"]
            if slots.get("verified") and slots.get("customer_id") and not conversation.customer_id \
                    and transcript.customer_exists(session, slots["customer_id"]):
                fields["customer_id"] = slots["customer_id"]  # verified in the conversation by the bot
            transcript.update(session, conversation_id, **fields)
            return fields

        await self.db.run(store)

    async def _bot_unavailable(self, conversation_id: str, reason: str) -> None:
        """Rasa (or the gateway's path to it) failed: a person takes it from here; nothing is lost."""
        await self._hand_off(conversation_id, reason, "The assistant could not answer; see the last customer message.")
        await self._post(conversation_id, "system", BOT_UNAVAILABLE)

    async def _hand_off(self, conversation_id: str, reason: str, summary: str) -> None:
        """Queue the conversation for a person, or route it straight to the agent the customer had before."""
        online = self.hub.online_agents()

        def route(session: Any) -> Optional[str]:
            conversation = transcript.get_conversation(session, conversation_id)
            if conversation is None or conversation.status in ("waiting", "agent"):
                return None
            preferred = transcript.previous_agent(session, conversation.customer_id, conversation_id)
            now = datetime.utcnow()
            if preferred and preferred in online:
                transcript.update(session, conversation_id, status="agent", assigned_agent=preferred,
                                  last_agent=preferred, handoff_reason=reason, handoff_summary=summary,
                                  waiting_since=now)
                return preferred
            transcript.update(session, conversation_id, status="waiting", handoff_reason=reason,
                              handoff_summary=summary, waiting_since=now)
            return None

        agent = await self.db.run(route)
        if agent:
            self.hub.assignments[conversation_id] = agent
            await self.hub.to_consoles({"type": "assigned", "conversation_id": conversation_id}, agent=agent)
            await self._agent_joined(conversation_id, agent, returning=True)
        await self.publish_queue()

    # -- agent side -----------------------------------------------------------------------
    async def take(self, conversation_id: str, agent: str) -> None:
        async with self._locks[conversation_id]:
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
            self.hub.assignments[conversation_id] = agent
            await self._tell_rasa(conversation_id, [{"event": "slot", "name": "handed_off", "value": True}])
            if previous != "agent":
                await self._agent_joined(conversation_id, agent, returning=False)
        await self._publish_state(conversation_id, suggest=True)
        await self.publish_queue()

    async def _agent_joined(self, conversation_id: str, agent: str, returning: bool) -> None:
        name = self.agent_names.get(agent, agent)
        text = (f"{name}, who helped you before, has joined the conversation." if returning
                else f"{name} from our team has joined the conversation.")
        await self._post(conversation_id, "system", text)
        await self.hub.to_widgets(conversation_id, {"type": "agent_joined", "name": name})

    async def send(self, conversation_id: str, agent: str, text: str, action: Optional[str]) -> Dict[str, Any]:
        """The agent's reply: to the customer, and into the Rasa tracker so the dialogue state follows."""
        async with self._locks[conversation_id]:
            conversation = await self.db.run(transcript.get_conversation, conversation_id)
            if conversation is None:
                raise RoutingError(404, "No such conversation.")
            if conversation.status != "agent" or conversation.assigned_agent != agent:
                raise RoutingError(409, "Take over the conversation before replying.")
            suggestion = next((s for s in self._suggested.get(conversation_id, []) if s["action"] == action), None)
            messages: List[Dict[str, Any]] = []
            if action in ACTION_TURNS and suggestion is not None and suggestion["text"] == text:
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
        await self._publish_state(conversation_id, suggest=True)
        return messages[-1]

    async def hand_back(self, conversation_id: str, agent: str) -> None:
        async with self._locks[conversation_id]:
            def release(session: Any) -> None:
                conversation = transcript.get_conversation(session, conversation_id)
                if conversation is None:
                    raise RoutingError(404, "No such conversation.")
                if conversation.status != "agent" or conversation.assigned_agent != agent:
                    raise RoutingError(409, "Only the agent who has the conversation can hand it back.")
                transcript.update(session, conversation_id, status="bot", assigned_agent=None, waiting_since=None)

            await self.db.run(release)
            self.hub.assignments.pop(conversation_id, None)
            await self._tell_rasa(conversation_id, [{"event": "slot", "name": "handed_off", "value": False},
                                                    {"event": "slot", "name": "angry_streak", "value": 0.0}])
            name = self.agent_names.get(agent, agent)
            await self._post(conversation_id, "system", f"{name} has left the conversation; the assistant is back.")
            await self.hub.to_widgets(conversation_id, {"type": "agent_left", "name": name})
        await self._publish_state(conversation_id, suggest=False)
        await self.publish_queue()

    async def _tell_rasa(self, conversation_id: str, events: List[Dict[str, Any]]) -> None:
        try:
            await self.rasa.append_events(conversation_id, events)
        except RasaUnavailable as error:  # the person still talks to the customer; the tracker catches up later
            logger.warning("could not record %d events for %s in Rasa: %s", len(events), conversation_id, error)

    # -- publishing -----------------------------------------------------------------------
    async def _post(self, conversation_id: str, sender: str, text: str, buttons: Optional[List[Dict[str, str]]] = None,
                    agent: Optional[str] = None) -> Dict[str, Any]:
        message, _ = await self.db.run(transcript.add_message, conversation_id, sender, text, buttons=buttons, agent=agent)
        view = transcript.message_dict(message, self.agent_names)
        await self.hub.to_widgets(conversation_id, {"type": "message", "message": customer_view(view)})
        await self.hub.to_consoles({"type": "message", "conversation_id": conversation_id, "message": view},
                                   conversation_id=conversation_id)
        return view

    async def suggestions_for(self, conversation_id: str) -> List[Dict[str, Any]]:
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
        result = await asyncio.to_thread(render_suggestions, prediction, domain, self.db.url)
        self._suggested[conversation_id] = result
        return result

    async def _predict_reply_to_last_message(self, conversation_id: str, now: Dict[str, Any]) -> Dict[str, Any]:
        events = (now.get("tracker") or {}).get("events") or []
        prefix = reply_point(events)
        if not prefix:
            return now
        scratch = f"suggest-{conversation_id}"
        await self.rasa.replace_events(scratch, list(prefix))
        earlier = await self.rasa.predict(scratch)
        tracker = earlier.get("tracker") or {}
        tracker["sender_id"] = conversation_id
        earlier["already_said"] = sorted(said_since_customer(events))
        return earlier

    async def _publish_state(self, conversation_id: str, suggest: bool) -> None:
        """State and suggestions to the consoles following the conversation, computed side by side."""
        async def state() -> None:
            detail = await self.db.run(self._state, conversation_id)
            if detail is not None:
                await self.hub.to_consoles({"type": "state", "conversation_id": conversation_id, **detail},
                                           conversation_id=conversation_id)

        async def suggested() -> None:
            found = await self.suggestions_for(conversation_id)
            await self.hub.to_consoles({"type": "suggestions", "conversation_id": conversation_id,
                                        "suggestions": found}, conversation_id=conversation_id)

        await asyncio.gather(state(), *([suggested()] if suggest else []))

    def _state(self, session: Any, conversation_id: str, full: bool = False) -> Optional[Dict[str, Any]]:
        """What consoles show of a conversation; ``full`` adds the transcript, handoff summary and case history."""
        conversation = transcript.get_conversation(session, conversation_id)
        if conversation is None:
            return None
        views = [transcript.message_dict(m, self.agent_names)
                 for m in transcript.messages(session, conversation_id, self.history_messages)]
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
            detail["suggestions"] = await self.suggestions_for(conversation_id) if \
                detail["summary"]["status"] != "closed" else []
        return detail

    async def publish_queue(self) -> None:
        for agent in self.hub.online_agents():
            queue = await self.db.run(transcript.queue, agent, self.live_minutes)
            await self.hub.to_consoles({"type": "queue", "queue": queue}, agent=agent)


def customer_view(message: Dict[str, Any]) -> Dict[str, Any]:
    """What the widget may see of a message: never the NLU's reading of the customer."""
    return {k: v for k, v in message.items() if k not in ("frustration", "issue_type")}

