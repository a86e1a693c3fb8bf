"""The trainer page's API: list test stories and recorded conversations, replay them, export test stories.

Replays use the running Rasa server (``HttpPredictor``) with the same replay loop as the
command line, so the page and ``python -m bot replay`` agree turn for turn.
"""
from __future__ import annotations

import asyncio
import json
import logging
from datetime import date
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import aiohttp_jinja2
from aiohttp import web
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event

from bot.casedb.models import Account, ChatConversation
from bot.gateway import accounts
from bot.gateway.api_errors import ApiError, api_errors, json_object
from bot.gateway.rasa_client import RasaClient, RasaUnavailable
from bot.gateway.transcript import LEVEL_RANK, iso
from bot.replay.export import ExportError, save_story, to_test_story
from bot.replay.predictors import HttpPredictor
from bot.replay.replayer import replay
from bot.replay.stories import StoryFileError, read_stories, story_files
from bot.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)
MACHINERY = {"action_listen", "action_session_start", "action_restart", "action_back", "action_extract_slots",
             "action_deactivate_loop", "action_revert_fallback_events", "action_default_ask_affirmation",
             "action_default_ask_rephrase", "action_two_stage_fallback", "action_unlikely_intent"}


class TrainerError(ApiError):
    """A trainer request that cannot be carried out (unknown item, bad correction, existing file)."""


class Trainer:
    """Stories on disk, conversations in the database, replays through Rasa; outcomes cached per model."""

    def __init__(self, rasa: RasaClient, db: Any, story_dirs: List[Path], export_dir: Path) -> None:
        self.rasa, self.db = rasa, db
        self.story_dirs, self.export_dir = story_dirs, export_dir
        self._domain: Optional[Domain] = None
        self._stories: Dict[Tuple[str, float], list] = {}
        self._outcomes: Dict[str, str] = {}
        self._model: Optional[str] = None
        self._replay_lock = asyncio.Semaphore(2)

    async def domain(self) -> Domain:
        if self._domain is None:
            self._domain = Domain.from_dict(await self.rasa.domain())
        return self._domain

    async def _check_model(self) -> None:
        """Outcomes are only valid for the model that produced them."""
        try:
            status = await self.rasa.status()
        except RasaUnavailable:
            return
        model = str(status.get("model_id") or status.get("fingerprint") or "")
        if model != self._model:
            self._model, self._outcomes, self._domain = model, {}, None

    async def stories(self) -> List[Tuple[str, Any]]:
        """(id, story) for every story in the story folders; a broken file is reported, not fatal."""
        domain = await self.domain()
        found: List[Tuple[str, Any]] = []
        for path in story_files([d for d in self.story_dirs if d.exists()]):
            key = (str(path), path.stat().st_mtime)
            if key not in self._stories:
                try:
                    self._stories[key] = read_stories(path, domain)
                except StoryFileError as error:
                    logger.warning("trainer: %s", error)
                    self._stories[key] = []
            relative = _relative(path)
            found += [(f"story:{relative}#{n}", story) for n, story in enumerate(self._stories[key])]
        return found

    async def items(self, query: Dict[str, str]) -> List[Dict[str, Any]]:
        await self._check_model()
        kind = query.get("kind") or "all"
        result: List[Dict[str, Any]] = []
        if kind in ("all", "story"):
            for item_id, story in await self.stories():
                result.append({"id": item_id, "kind": "story", "name": story.name, "source": _relative(Path(story.source)),
                               "issue_type": _story_issue(story.events), "max_frustration": _story_frustration(story.events),
                               "outcome": self._outcomes.get(item_id, "unknown"),
                               "handed_off": any(getattr(e, "key", None) == "handed_off" and getattr(e, "value", None)
                                                 for e in story.events),
                               "date": None, "turns": sum(1 for e in story.events if type(e).__name__ == "UserUttered")})
        if kind in ("all", "conversation"):
            result += await self.db.run(_conversation_items)
        return [item for item in result if _matches(item, query)]

    async def _events_of(self, item_id: str) -> Tuple[str, str, str, List[Event]]:
        if item_id.startswith("story:"):
            for known_id, story in await self.stories():
                if known_id == item_id:
                    return "story", story.name, _relative(Path(story.source)), story.events
            raise TrainerError(404, "No such story (the file may have changed; reload the list).")
        if item_id.startswith("conversation:"):
            conversation_id = item_id[len("conversation:"):][:200]
            tracker = await self.rasa.tracker(conversation_id, events=True)
            events = [Event.from_parameters(e) for e in tracker.get("events") or []]
            events = [e for e in events if e is not None]
            if not any(type(e).__name__ == "UserUttered" for e in events):
                raise TrainerError(404, f"No recorded conversation '{conversation_id}'.")
            return "conversation", conversation_id, f"conversation {conversation_id}", events
        raise TrainerError(400, "Unknown item id.")

    async def replay(self, item_id: str) -> Dict[str, Any]:
        await self._check_model()
        kind, name, source, events = await self._events_of(item_id)
        async with self._replay_lock:
            result = await replay(HttpPredictor(self.rasa, await self.domain()), events, id=item_id, kind=kind,
                                  name=name, source=source)
        if kind == "story":
            self._outcomes[item_id] = "passed" if result.passed else "failed"
        names, holder = await self._agent_names(item_id)
        for turn in result.turns:
            for action in turn.actions:
                if action.by_agent:
                    action.agent = action.agent or holder
                    action.agent_name = names.get(action.agent or "", action.agent) if action.agent else None
        return result.as_dict()

    async def _agent_names(self, item_id: str) -> Tuple[Dict[str, str], Optional[str]]:
        """Display names of the staff, and who held a recorded conversation (when its events do not say)."""
        conversation_id = item_id[len("conversation:"):] if item_id.startswith("conversation:") else None

        def read(session: Any) -> Tuple[Dict[str, str], Optional[str]]:
            names = {a.username: a.display_name for a in session.query(Account.username, Account.display_name)}
            holder = None
            if conversation_id:
                conversation = session.get(ChatConversation, conversation_id[:200])
                holder = conversation and (conversation.last_agent or conversation.assigned_agent)
            return names, holder or None

        return await self.db.run(read)

    async def export(self, body: Dict[str, Any]) -> Dict[str, Any]:
        item_id = body.get("id")
        if not isinstance(item_id, str):
            raise TrainerError(400, "Say which story or conversation to export.")
        raw = body.get("corrections") or {}
        if not isinstance(raw, dict):
            raise TrainerError(400, "Corrections must map step numbers to actions.")
        try:
            corrections = {int(step): str(action) for step, action in raw.items()}
        except (TypeError, ValueError) as error:
            raise TrainerError(400, "Corrections must map step numbers to actions.") from error
        kind, name, _, events = await self._events_of(item_id)
        names, _ = await self._agent_names(item_id)
        try:
            text = to_test_story(events, str(body.get("name") or name), await self.domain(), corrections, names)
        except ExportError as error:
            raise TrainerError(400, str(error)) from error
        saved = None
        if body.get("save"):
            try:
                saved = save_story(text, str(body.get("name") or name), self.export_dir)
            except FileExistsError as error:
                raise TrainerError(409, str(error)) from error
        return {"yaml": text, "saved_to": _relative(saved) if saved else None}

    async def actions(self) -> List[str]:
        domain = await self.domain()
        return sorted(a for a in domain.action_names_or_texts if a not in MACHINERY and
                      (a.startswith("utter_") or a.startswith("action_")))


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _story_issue(events: List[Event]) -> Optional[str]:
    for event in events:
        intent = getattr(event, "intent_name", None) or ""
        if intent.startswith("complain_"):
            return intent[len("complain_"):]
        if getattr(event, "key", None) == "issue_type" and getattr(event, "value", None):
            return str(event.value)
    return None


def _story_frustration(events: List[Event]) -> Optional[str]:
    levels = [str(e.value) for e in events if getattr(e, "key", None) == "frustration_level" and e.value]
    return max(levels, key=lambda level: LEVEL_RANK.get(level, 0)) if levels else None


def _conversation_items(session: Any) -> List[Dict[str, Any]]:
    rows = session.query(ChatConversation).order_by(ChatConversation.last_activity.desc()).limit(500).all()
    items = []
    for c in rows:
        steps = json.loads(c.playbook_steps) if c.playbook_steps else []
        outcome = "handoff" if c.handoff_reason else ("resolved" if "keep_informed" in steps or "close_loop" in steps
                                                        else "open")
        items.append({"id": f"conversation:{c.id}", "kind": "conversation",
                      "name": f"{c.customer_id or 'guest'} · {c.issue_type or 'no issue yet'}",
                      "source": f"conversation {c.id}", "issue_type": c.issue_type,
                      "max_frustration": c.frustration_level, "outcome": outcome,
                      "handed_off": bool(c.handoff_reason), "date": iso(c.created_at), "turns": None})
    return items


def _matches(item: Dict[str, Any], query: Dict[str, str]) -> bool:
    if query.get("issue_type") and item["issue_type"] != query["issue_type"]:
        return False
    if query.get("min_frustration"):
        wanted = LEVEL_RANK.get(query["min_frustration"], 0)
        if LEVEL_RANK.get(item["max_frustration"] or "", -1) < wanted:
            return False
    if query.get("outcome") and item["outcome"] != query["outcome"]:
        return False
    day = item["date"][:10] if item["date"] else None
    for key, keep in (("date_from", lambda d, q: d >= q), ("date_to", lambda d, q: d <= q)):
        if query.get(key):
            try:
                wanted_day = date.fromisoformat(query[key]).isoformat()
            except ValueError as error:
                raise TrainerError(400, f"{key} must be a date like 2026-11-26.") from error
            if day is None or not keep(day, wanted_day):
                return False
    return True


# -- handlers (wired in app.py) ------------------------------------------------------------------
TRAINER = web.AppKey("trainer", Trainer)


@api_errors
async def trainer_page(request: web.Request, staff: accounts.Staff) -> web.Response:
    return aiohttp_jinja2.render_template("trainer.html", request, {"user": staff.as_dict()})


@api_errors
async def api_items(request: web.Request, staff: accounts.Staff) -> web.Response:
    query = {k: v[:40] for k, v in request.query.items()}
    return web.json_response({"items": await request.app[TRAINER].items(query)})


@api_errors
async def api_replay(request: web.Request, staff: accounts.Staff) -> web.Response:
    body = await json_object(request)
    if not isinstance(body.get("id"), str):
        raise TrainerError(400, "Say which story or conversation to replay.")
    return web.json_response(await request.app[TRAINER].replay(body["id"][:400]))


@api_errors
async def api_export(request: web.Request, staff: accounts.Staff) -> web.Response:
    return web.json_response(await request.app[TRAINER].export(await json_object(request)))


@api_errors
async def api_actions(request: web.Request, staff: accounts.Staff) -> web.Response:
    return web.json_response({"actions": await request.app[TRAINER].actions()})
