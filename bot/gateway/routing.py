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
from typing import Any, Callable, DefaultDict, Dict, List, Optional, Set, Tuple

from sqlalchemy.exc import SQLAlchemyError

from bot.casedb import repository as repo
from bot.casedb.runner import Database
from bot.gateway import transcript
from bot.gateway.api_errors import ApiError
from bot.gateway.faults import (
    BOT_SLOW,
    BOT_UNAVAILABLE,
    HANDOFF_SUMMARIES,
    STORED_AFTER_OUTAGE,
    FaultSettings,
    NotStored,
    replies_after,
    silent_turn_reason,
    spoken,
    user_event_index,
)
from bot.gateway.fanout import conversation_lock
from bot.gateway.hub import Hub
from bot.gateway.rasa_client import RasaClient, RasaUnavailable
from bot.assist import learned as learned_replies, telemetry as assist_telemetry
from bot.assist.facts import facts_from_case_db
from bot.gateway.suggestions import reply_point, said_since_customer, suggestions as render_suggestions
from bot.gateway.views import frustration_trend, history_view, playbook_view
from bot.recovery.turns import ACTION_TURNS

logger = logging.getLogger(__name__)

MAX_RETRYING_IDS = 50  # client ids per conversation allowed to resend past the rate limit after a failed store


class RoutingError(ApiError):
    """A conversation request that cannot be carried out (unknown, or someone else's)."""


class Router:
    def __init__(self, db: Database, rasa: RasaClient, hub: Hub, live_minutes: int = 30,
                 history_messages: int = 500, faults: Optional[FaultSettings] = None) -> None:
        self.db = db
        self.rasa = rasa
        self.hub = hub
        self.live_minutes = live_minutes
        self.history_messages = history_messages
        self.faults = faults or FaultSettings.from_settings()
        self._locks: DefaultDict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set = set()
        self._inflight: set = set()  # customer message ids being processed (a resend must not run them twice)
        self.agent_names: Dict[str, str] = {}
        # While the database is unreachable: what could not be stored yet, retried by ``_recover``.
        self._not_stored: Dict[str, Set[str]] = {}  # conversation -> client ids the customer must resend
        self._outbox: List[Tuple[str, str, str, Optional[List[Dict[str, str]]], Optional[str]]] = []
        self._deferred: Dict[str, Tuple[str, str]] = {}  # conversation -> (reason, summary) of a handoff
        self._recovery: Optional[asyncio.Task] = None
        self._accepting: DefaultDict[str, int] = defaultdict(int)  # messages being stored, per conversation
        self._waiting_for_rasa = 0  # stored messages the last catch-up could not bring to Rasa

    # -- customer side --------------------------------------------------------------------
    async def accept(self, conversation_id: str, text: str, client_id: Optional[str], payload: Optional[str]) -> Dict[str, Any]:
        """Store the customer's message (idempotent per client id) and queue its processing.

        When the database does not take it within ``store_timeout_seconds``, ``NotStored`` tells the
        widget to keep it and resend it; once it is stored, a person takes the conversation.
        """
        self._accepting[conversation_id] += 1  # the catch-up leaves this conversation alone meanwhile
        try:
            try:
                if self._outbox:
                    await self._flush_outbox()  # what the customer was told during the outage comes first
                message, created = await asyncio.wait_for(
                    self.db.run(transcript.add_message, conversation_id, "customer", text, client_id=client_id,
                                payload=payload),
                    self.faults.store_timeout_seconds)
            except (SQLAlchemyError, asyncio.TimeoutError) as error:
                logger.error("could not store a message of %s; the widget will resend it: %r", conversation_id, error)
                waiting = self._not_stored.setdefault(conversation_id, set())
                if client_id and len(waiting) < MAX_RETRYING_IDS:
                    waiting.add(client_id)
                self._schedule_recovery()
                raise NotStored(self.faults.retry_seconds) from error
            after_outage = self._not_stored.pop(conversation_id, None) is not None
            view = transcript.message_dict(message)
            if (created or not message.delivered_to_bot) and message.id not in self._inflight:
                self._inflight.add(message.id)
                if created:
                    await self.hub.to_consoles({"type": "message", "conversation_id": conversation_id,
                                                "message": view}, conversation_id=conversation_id)
                self._spawn(self._process(conversation_id, message.id, text, payload, after_outage))
            return view
        finally:
            self._accepting[conversation_id] -= 1
            if not self._accepting[conversation_id]:
                del self._accepting[conversation_id]

    def retrying(self, conversation_id: str, client_id: Optional[str]) -> bool:
        """A resend of a message the database did not take: not counted against the rate limit."""
        return bool(client_id) and client_id in self._not_stored.get(conversation_id, ())

    async def resume_undelivered(self) -> int:
        """Customer messages stored (and acknowledged) but not handled yet: after a restart, or once Rasa or
        the database is back. Returns how many there were.

        A message Rasa already has (the gateway stopped after sending it) is not sent again; what the bot
        answered to it and the customer never got is posted now.
        """
        pending = [item for item in await self.db.run(transcript.undelivered)
                   if item[1] not in self._inflight and item[0] not in self._accepting]
        waiting = 0
        trackers: Dict[str, Dict[str, Any]] = {}
        for conversation_id, message_id, text, payload in pending:
            if message_id in self._inflight or conversation_id in self._accepting:
                continue
            try:
                if conversation_id not in trackers:
                    trackers[conversation_id] = await self.rasa.tracker(conversation_id, events=True)
                handled = await self._catch_up(conversation_id, message_id, text, payload, trackers[conversation_id])
            except RasaUnavailable:
                waiting += 1
                handled = False
                conversation = await self.db.run(transcript.get_conversation, conversation_id)
                if conversation is not None and conversation.status != "bot":
                    continue  # a person has it already; the tracker catches up once Rasa is back
            if handled:
                continue
            self._inflight.add(message_id)
            self._spawn(self._process(conversation_id, message_id, text, payload))
        self._waiting_for_rasa = waiting
        if waiting:
            self._schedule_recovery()
        return len(pending)

    async def _catch_up(self, conversation_id: str, message_id: int, text: str, payload: Optional[str],
                        tracker: Dict[str, Any]) -> bool:
        """If Rasa already has this message, post what the bot answered to it that was never stored."""
        def earlier_same_text(session: Any) -> Tuple[int, List[str]]:
            rows = transcript.messages(session, conversation_id, self.history_messages)
            same = sum(1 for m in rows if m.sender == "customer" and m.id <= message_id
                       and (m.payload or m.text) == (payload or text))
            said = [m.text for m in rows if m.id > message_id and m.sender == "bot"]
            return same, said

        occurrence, said = await self.db.run(earlier_same_text)
        events = tracker.get("events") or []
        index = user_event_index(events, payload or text, occurrence)
        if index is None and payload:
            index = user_event_index(events, text, occurrence)
        if index is None:
            return False
        for reply in replies_after(events, index):
            if reply["text"] in said:
                said.remove(reply["text"])
            else:
                await self._post(conversation_id, "bot", reply["text"], buttons=reply["buttons"])
        parse = events[index].get("parse_data") or {}
        await self.db.run(transcript.set_parse, message_id,
                          {k: parse.get(k) for k in ("frustration", "issue_type", "intent") if parse.get(k)}, True)
        slots = tracker.get("slots") or {}
        if slots.get("handed_off"):
            await self._hand_off(conversation_id, str(slots.get("handoff_reason") or "bot"),
                                 str(slots.get("handoff_summary") or ""))
        return True

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for messages still being processed (tests, shutdown); stop retrying what failed."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._recovery is not None:
            self._recovery.cancel()
            await asyncio.gather(self._recovery, return_exceptions=True)
            self._recovery = None

    async def _process(self, conversation_id: str, message_id: int, text: str, payload: Optional[str],
                       after_outage: bool = False) -> None:
        async with conversation_lock(self._locks[conversation_id], self.hub, conversation_id):
            try:
                conversation = await self.db.run(transcript.get_conversation, conversation_id)
                if conversation is None:
                    return
                if conversation.status == "bot" and after_outage:
                    # The customer was told their message could not be sent: a person looks at it now.
                    await self._hand_off(conversation_id, "case_db_unavailable",
                                         HANDOFF_SUMMARIES["case_db_unavailable"])
                    await self._post(conversation_id, "system", STORED_AFTER_OUTAGE)
                    await self._to_agent(conversation_id, message_id, text)
                elif conversation.status == "bot":
                    await self._to_bot(conversation_id, conversation.customer_id, message_id, payload or text,
                                       conversation.client_key)
                else:
                    await self._to_agent(conversation_id, message_id, text)
            except Exception as error:
                logger.exception("processing message %s of %s failed", message_id, conversation_id)
                await self._bot_unavailable(
                    conversation_id, "case_db_unavailable" if isinstance(error, SQLAlchemyError) else "gateway_error")
            finally:
                self._inflight.discard(message_id)

    async def _ask_bot(self, conversation_id: str, text: str, metadata: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], bool]:
        """Rasa's replies, and whether it was too slow (then the customer was already told a person takes over).

        After ``bot_slow_seconds`` the customer hears that a person will reply if the bot can't; after
        ``bot_timeout_seconds`` the conversation goes to the queue. A late answer still reaches them.
        """
        sending = asyncio.ensure_future(self.rasa.send(conversation_id, text, metadata))
        try:
            return await asyncio.wait_for(asyncio.shield(sending), self.faults.bot_slow_seconds), False
        except asyncio.TimeoutError:
            await self.hub.to_widgets(conversation_id, {"type": "notice", "code": "bot_slow", "message": BOT_SLOW})
        try:
            rest = max(0.0, self.faults.bot_timeout_seconds - self.faults.bot_slow_seconds)
            return await asyncio.wait_for(asyncio.shield(sending), rest), False
        except asyncio.TimeoutError:
            logger.warning("Rasa did not answer %s within %.0fs: a person takes over", conversation_id,
                           self.faults.bot_timeout_seconds)
            await self._bot_unavailable(conversation_id, "bot_timeout")
        try:
            return await sending, True  # bounded by the Rasa client's own timeout
        except RasaUnavailable as error:
            logger.warning("Rasa never answered %s: %s", conversation_id, error)
            return [], True

    async def _to_bot(self, conversation_id: str, customer_id: Optional[str], message_id: int, text: str,
                      client_key: Optional[str] = None) -> None:
        await self.hub.to_widgets(conversation_id, {"type": "typing", "on": True, "who": "bot"})
        metadata: Dict[str, Any] = {"customer_id": customer_id} if customer_id else {}
        if client_key:  # the opening client's keyed hash, for limits the bot counts (never the address)
            metadata["client_key"] = client_key
        try:
            replies, too_slow = await self._ask_bot(conversation_id, text, metadata)
        except RasaUnavailable as error:
            logger.warning("Rasa unavailable for %s: %s", conversation_id, error)
            await self.hub.to_widgets(conversation_id, {"type": "typing", "on": False, "who": "bot"})
            await self._bot_unavailable(conversation_id, "bot_unavailable")
            return
        said = spoken(replies)
        for reply in said:
            buttons = [{"title": str(b.get("title", ""))[:200], "payload": str(b.get("payload", ""))[:500]}
                       for b in reply.get("buttons") or [] if isinstance(b, dict)]
            await self._post(conversation_id, "bot", str(reply["text"]).strip(), buttons=buttons)
        await self.hub.to_widgets(conversation_id, {"type": "typing", "on": False, "who": "bot"})
        if too_slow and not said:
            return  # already with a person; the message reaches Rasa's tracker once it answers again
        try:
            # A silent bot: the tracker's events tell why (the action server failed, most likely).
            tracker = await self.rasa.tracker(conversation_id, events=not said)
        except RasaUnavailable as error:
            logger.warning("Rasa answered %s but its tracker could not be read: %s", conversation_id, error)
            await self.db.run(transcript.set_parse, message_id, {}, True)
            if not said:
                await self._bot_unavailable(conversation_id, "bot_unavailable")
            return
        await self._absorb_tracker(conversation_id, message_id, tracker)
        slots = tracker.get("slots") or {}
        if not said and not too_slow:
            reason = silent_turn_reason(tracker.get("events") or [])
            logger.warning("the bot said nothing to %s (%s): a person takes over", conversation_id, reason)
            await self._bot_unavailable(conversation_id, reason)
        elif slots.get("handed_off"):
            await self._hand_off(conversation_id, str(slots.get("handoff_reason") or "bot"),
                                 str(slots.get("handoff_summary") or ""))
        await self._publish_state(conversation_id, suggest=self.hub.watched(conversation_id))

    async def _to_agent(self, conversation_id: str, message_id: int, text: str) -> None:
        try:
            tracker = await self.rasa.add_user_message(conversation_id, text, {})
        except RasaUnavailable as error:
            # Left unparsed and undelivered: it goes into Rasa's tracker once Rasa is back (``_recover``).
            logger.warning("Rasa could not parse a message for %s: %s", conversation_id, error)
            self._schedule_recovery()
            await self._publish_state(conversation_id, suggest=False)
            return
        # Rasa tracked the message as it logged it (bot/dialogue/tracking_policy.py): the tracker's slots
        # (frustration, issue type) are the conversation's, for the console, the queue and the suggestions.
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
            if slots.get("frustration_level"):  # the tracker's, bot or person holding: one formula
                fields.update(frustration_level=slots["frustration_level"],
                              frustration_score=float(slots.get("frustration_score") or 0.0))
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
            rated = session.get(transcript.ChatMessage, message_id)
            return dict(fields, _view=transcript.message_dict(rated, self.agent_names) if rated is not None else None)

        stored = await self.db.run(store)
        view = stored.pop("_view", None)
        if view is not None:
            # Consoles got the message unrated when it arrived: they replace it with its rating (level, cues).
            await self.hub.to_consoles({"type": "message", "conversation_id": conversation_id, "message": view},
                                       conversation_id=conversation_id)
        notify = getattr(self, "guest_verified", None)  # set by the app: a fresh resume token for the widget
        if stored.get("customer_id") and notify is not None:
            await notify(conversation_id, stored["customer_id"])

    async def _bot_unavailable(self, conversation_id: str, reason: str) -> None:
        """The bot could not answer (Rasa down or hung, the action server failing, the database unreachable):
        the customer is told a person will reply, and the conversation is queued with the reason.

        Never raises: this is the last word the customer gets when something failed.
        """
        try:
            # Queued first: when the customer reads that a person will reply, the agents can see it.
            await self._hand_off(conversation_id, reason, HANDOFF_SUMMARIES.get(reason, HANDOFF_SUMMARIES["bot_no_reply"]))
            await self._post(conversation_id, "system", BOT_UNAVAILABLE)
        except Exception:
            logger.exception("could not hand %s to a person (%s)", conversation_id, reason)
        self._schedule_recovery()  # the message reaches Rasa's tracker once it is back

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
            self.hub.assignments[conversation_id] = agent
            await self.hub.to_consoles({"type": "assigned", "conversation_id": conversation_id}, agent=agent)
            await self._agent_joined(conversation_id, agent, returning=True)
        else:
            await self._status_changed(conversation_id, status)
        await self.publish_queue()

    async def _status_changed(self, conversation_id: str, status: str, agent: Optional[str] = None) -> None:
        """The widget's header follows the conversation: the bot, waiting for a person, or the agent's name."""
        name = self.agent_names.get(agent, agent) if agent else None
        await self.hub.to_widgets(conversation_id, {"type": "status", "status": status,
                                                    "agent": {"name": name} if name else None})

    # -- after a failure ------------------------------------------------------------------
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

    # -- agent side -----------------------------------------------------------------------
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
        await self._status_changed(conversation_id, "agent", agent)

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
            facts = facts_from_case_db(session, slots, agent_name=self.agent_names.get(agent, agent))
            learned_replies.remember(session, text, answered, facts, slots.get("issue_type"), agent)

        try:
            await self.db.run(record)
        except SQLAlchemyError as error:
            logger.warning("could not record the reply's telemetry for %s: %r", conversation_id, error)

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
            self.hub.assignments.pop(conversation_id, None)
            await self._tell_rasa(conversation_id, [{"event": "slot", "name": "handed_off", "value": False},
                                                    {"event": "slot", "name": "angry_streak", "value": 0.0}])
            name = self.agent_names.get(agent, agent)
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
                self.agent_names[target] = moved["to_name"]
                self.hub.assignments[conversation_id] = target
                await self._agent_joined(conversation_id, target, returning=False)
                await self.hub.to_consoles({"type": "assigned", "conversation_id": conversation_id, "by": by},
                                           agent=target)
            else:
                self.hub.assignments.pop(conversation_id, None)
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

    # -- publishing -----------------------------------------------------------------------
    async def _post(self, conversation_id: str, sender: str, text: str, buttons: Optional[List[Dict[str, str]]] = None,
                    agent: Optional[str] = None) -> Dict[str, Any]:
        try:
            message, _ = await self.db.run(transcript.add_message, conversation_id, sender, text, buttons=buttons,
                                           agent=agent)
            view = transcript.message_dict(message, self.agent_names)
        except SQLAlchemyError as error:
            # The customer reads it now all the same; it is stored once the database is back.
            logger.error("could not store a %s message of %s yet: %r", sender, conversation_id, error)
            self._outbox.append((conversation_id, sender, text, buttons, agent))
            self._schedule_recovery()
            view = {"id": None, "client_id": None, "sender": sender, "text": text, "buttons": buttons or [],
                    "agent_name": self.agent_names.get(agent, agent) if agent else None,
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
        result = await asyncio.to_thread(render_suggestions, prediction, domain, self.db.url, 3,
                                         self.agent_names.get(holder, holder) if holder else None)
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
                await self.hub.to_consoles({"type": "state", "conversation_id": conversation_id, **detail},
                                           conversation_id=conversation_id)

        async def suggested() -> None:
            found = await self.suggestions_for(conversation_id)
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
            await self._publish_state(conversation_id, suggest=self.hub.watched(conversation_id))
        return result


def _shown_suggestion(session: Any, conversation_id: str, suggestion_id: Any) -> Optional[Dict[str, Any]]:
    event = assist_telemetry.shown_suggestion(session, conversation_id, suggestion_id)
    return {"action": event.action, "text": event.text, "source": event.source} if event is not None else None


def customer_view(message: Dict[str, Any]) -> Dict[str, Any]:
    """What the widget may see of a message: never the NLU's reading of the customer."""
    return {k: v for k, v in message.items() if k not in ("frustration", "issue_type")}

