"""A customer message: stored, then to the bot (Rasa's REST channel) or, while a person holds
the conversation, logged in Rasa's tracker for the agent, one message at a time per conversation.

A part of ``Router`` (bot/gateway/routing/__init__.py), which holds the state these methods share."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional, Tuple

from sqlalchemy.exc import SQLAlchemyError

from bot.gateway import transcript
from bot.gateway.faults import (
    BOT_SLOW,
    BOT_UNAVAILABLE,
    HANDOFF_SUMMARIES,
    STORED_AFTER_OUTAGE,
    NotStored,
    replies_after,
    silent_turn_reason,
    spoken,
    user_event_index,
)
from bot.gateway.fanout import conversation_lock
from bot.gateway.rasa_client import MESSAGE_ID, RasaUnavailable

logger = logging.getLogger(__name__)

MAX_RETRYING_IDS = 50  # client ids per conversation allowed to resend past the rate limit after a failed store


class CustomerMessages:
    """A customer message, to the bot or to the person holding the conversation."""

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
                    self.db.run_first(transcript.add_message, conversation_id, "customer", text, client_id=client_id,
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
                self._spawn(self._process(conversation_id, message.id, text, payload, after_outage,
                                          resent=not created))
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
        stored = await self.db.run(transcript.undelivered)
        pending = [item for item in stored if item[1] not in self._inflight and item[0] not in self._accepting]
        # Those still being processed count as waiting: the recovery goes on until they are handled too (one
        # whose request to Rasa times out after the recovery ended would otherwise never reach the tracker).
        waiting = len(stored) - len(pending)
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
            # Checked again under the conversation's lock: another gateway may be handling it right now.
            self._spawn(self._process(conversation_id, message_id, text, payload, resent=True))
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
                       after_outage: bool = False, resent: bool = False) -> None:
        async with conversation_lock(self._locks[conversation_id], self.hub, conversation_id):
            try:
                conversation = await self.db.run(transcript.get_conversation, conversation_id)
                if conversation is None:
                    return
                if resent and await self._handled_elsewhere(conversation_id, message_id, text, payload,
                                                            conversation.status):
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

    async def _handled_elsewhere(self, conversation_id: str, message_id: int, text: str, payload: Optional[str],
                                 status: str) -> bool:
        """A resent or resumed message (the widget reconnected, maybe to another gateway; a gateway restarted)
        that was already handled, by another gateway while this one waited for the lock, or that Rasa already
        has because the gateway handling it stopped before noting it: never twice to Rasa."""
        def delivered(session: Any) -> bool:
            message = session.get(transcript.ChatMessage, message_id)
            return bool(message is not None and message.delivered_to_bot)

        if await self.db.run(delivered):
            return True
        if status != "bot":
            return False
        try:
            return await self._catch_up(conversation_id, message_id, text, payload,
                                        await self.rasa.tracker(conversation_id, events=True))
        except RasaUnavailable:
            return False  # sent to the bot now, which says so if Rasa is still away

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
        # The message's id: Rasa logs it once however often it is sent (bot/rasa_exactly_once.py).
        metadata: Dict[str, Any] = {MESSAGE_ID: message_id}
        if customer_id:
            metadata["customer_id"] = customer_id
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
            # Already with a person, and Rasa never answered: the message reaches its tracker once it answers
            # again. (The recovery the timeout started may have ended while this request was still open.)
            self._schedule_recovery()
            return
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
        await self._publish_state(conversation_id, suggest=await self.hub.watched(conversation_id))

    async def _to_agent(self, conversation_id: str, message_id: int, text: str) -> None:
        try:
            parse = await self.rasa.parse(text)
            parse[MESSAGE_ID] = message_id  # Rasa logs it once however often it is sent (bot/rasa_exactly_once.py)
            tracker = await self.rasa.add_user_message(conversation_id, text, parse)
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
