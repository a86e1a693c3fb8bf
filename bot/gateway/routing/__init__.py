"""Who answers a customer message: the bot (through Rasa) or a person, and everything that follows.

The customer's message is stored before it is acknowledged. Then, one message at a time
per conversation, it goes to Rasa's REST channel while the bot has the conversation, or
to the assigned agent once a person has it; in that case Rasa still parses it, tracks it and
stores it in the tracker (``/conversations/{id}/messages``), so frustration and issue type keep
updating and the policy's suggestions follow the conversation.

``Router`` is split by job, one module each:

- ``customer_messages``: a customer message, to the bot or to the person holding the conversation;
- ``outage``: what could not be stored or delivered during a failure, retried until it is;
- ``handoff``: the queue, taking over, handing back, reassigning;
- ``agent_replies``: an agent's reply, and what is learnt from it;
- ``console_feed``: what widgets and consoles are sent (messages, state, queue, suggestions).
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, DefaultDict, Dict, List, Optional, Set, Tuple

from bot.casedb.runner import Database, WorkerThreads
from bot.gateway.agent_names import AgentNames
from bot.gateway.faults import FaultSettings
from bot.gateway.hub import Hub
from bot.gateway.rasa_client import RasaClient
from bot.gateway.routing.agent_replies import AgentReplies
from bot.gateway.routing.console_feed import ConsoleFeed, customer_view
from bot.gateway.routing.customer_messages import CustomerMessages
from bot.gateway.routing.errors import RoutingError
from bot.gateway.routing.handoff import Handoffs
from bot.gateway.routing.outage import OutageRecovery

__all__ = ["Router", "RoutingError", "customer_view"]


class Router(CustomerMessages, OutageRecovery, Handoffs, AgentReplies, ConsoleFeed):
    """The conversations of one gateway: their messages, who holds them and what consoles see."""

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
        # Ranking and rendering suggestions (CPU) on threads of their own, never in the database's.
        self.suggestion_pool = ThreadPoolExecutor(getattr(db, "threads", WorkerThreads()).suggestions,
                                                  thread_name_prefix="suggestions")
        # Display names from the staff accounts table, the same on every gateway (see agent_names.py).
        self.agent_names = AgentNames(db)
        # While the database is unreachable: what could not be stored yet, retried by ``_recover``.
        self._not_stored: Dict[str, Set[str]] = {}  # conversation -> client ids the customer must resend
        self._outbox: List[Tuple[str, str, str, Optional[List[Dict[str, str]]], Optional[str]]] = []
        self._deferred: Dict[str, Tuple[str, str]] = {}  # conversation -> (reason, summary) of a handoff
        self._recovery: Optional[asyncio.Task] = None
        self._accepting: DefaultDict[str, int] = defaultdict(int)  # messages being stored, per conversation
        self._queue_task: Optional[asyncio.Task] = None  # the agents' queues being published (console_feed)
        self._queue_wanted = 0  # publishes asked for since the current round began
        self._suggesting: Dict[str, int] = {}  # conversation -> newest suggestion computation (console_feed)
        # Whether Rasa's events reach the consoles live (bot/gateway/event_feed.py sets this when it runs).
        self.activity_live: Callable[[], bool] = lambda: False
        self._waiting_for_rasa = 0  # stored messages the last catch-up could not bring to Rasa

