"""The console's team tools: private notes, reassigning a conversation, the staff list, search.

Handlers take ``(request, staff)`` and are wrapped in app.py with ``staff_only("agent")``, which
checks the session (401), the role (403) and, for POSTs, the origin (403), exactly like the
console's other endpoints. Notes are published to consoles only: no code path here touches a
widget socket.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from aiohttp import web

from bot.casedb.models import Account
from bot.gateway import accounts, notes, search
from bot.gateway.api_errors import ApiError, api_errors, json_object
from bot.gateway.hub import Hub
from bot.gateway.limits import RATE_LIMITED, RateLimiter, clean_text
from bot.casedb.runner import Database
from bot.gateway.routing import Router
from bot.settings import numbers_for

CONVERSATION_ID_MAX = 64  # chat_conversations.id


@dataclass
class TeamSettings:
    """``gateway.team`` in the settings file; the defaults are safe without it."""

    note_max_chars: int = 2000
    notes_listed: int = 200
    search_min_chars: int = 2
    search_max_chars: int = 100
    search_results: int = 20
    notes_burst: int = 10
    notes_per_minute: float = 30.0

    @classmethod
    def from_settings(cls) -> "TeamSettings":
        return numbers_for(cls, "gateway.team")


class Team:
    """What the team endpoints need: the router (reassign), the hub (who is online, live notes), the database."""

    def __init__(self, router: Router, hub: Hub, db: Database, settings: TeamSettings | None = None) -> None:
        self.router, self.hub, self.db = router, hub, db
        self.settings = settings or TeamSettings.from_settings()
        self.note_limiter = RateLimiter(self.settings.notes_burst, self.settings.notes_per_minute)


TEAM = web.AppKey("team", Team)


def _conversation_id(request: web.Request) -> str:
    conversation_id = request.match_info["conversation_id"]
    if len(conversation_id) > CONVERSATION_ID_MAX:
        raise ApiError(404, "No such conversation.")
    return conversation_id


def note_text(body: Dict[str, Any], limit: int) -> str:
    """The note's text, or a 400 that says what to fix (nothing is stored then)."""
    if "text" not in body or not isinstance(body.get("text"), str):
        raise ApiError(400, 'A note must be text: send {"text": "…"}.')
    text = clean_text(body["text"]) or ""
    if not text:
        raise ApiError(400, "The note is empty. Write something for your colleagues first.")
    if len(text) > limit:
        raise ApiError(400, f"That note is too long ({len(text)} characters; the limit is {limit}). "
                            "Please shorten it.")
    return text


# -- notes ---------------------------------------------------------------------------------------
@api_errors
async def api_notes(request: web.Request, staff: accounts.Staff) -> web.Response:
    team = request.app[TEAM]
    try:
        found = await team.db.run(notes.list_notes, _conversation_id(request), team.settings.notes_listed)
    except notes.NoSuchConversation as error:
        raise ApiError(404, "No such conversation.") from error
    return web.json_response({"notes": found, "max_chars": team.settings.note_max_chars})


@api_errors
async def api_add_note(request: web.Request, staff: accounts.Staff) -> web.Response:
    team = request.app[TEAM]
    conversation_id = _conversation_id(request)
    text = note_text(await json_object(request), team.settings.note_max_chars)
    if not team.note_limiter.allow("note:" + staff.username):
        raise ApiError(429, RATE_LIMITED)
    try:
        note = await team.db.run(notes.add_note, conversation_id, staff.username, text)
    except notes.NoSuchConversation as error:
        raise ApiError(404, "No such conversation.") from error
    # Consoles following the conversation (and its holder) only: never the customer's widget.
    await team.hub.to_consoles({"type": "note", "conversation_id": conversation_id, "note": note},
                               conversation_id=conversation_id)
    return web.json_response({"ok": True, "note": note}, status=201)


# -- reassign and the staff list -----------------------------------------------------------------
@api_errors
async def api_reassign(request: web.Request, staff: accounts.Staff) -> web.Response:
    body = await json_object(request)
    if "to" not in body:
        raise ApiError(400, 'Say who gets the conversation: {"to": "username"}, or {"to": null} for the queue.')
    to = body["to"]
    if to is not None and not isinstance(to, str):
        raise ApiError(400, '"to" must be a staff username, or null for the queue.')
    if isinstance(to, str):
        to = to.strip()
        if not to:
            raise ApiError(400, '"to" must be a staff username, or null for the queue.')
        if len(to) > 80:
            raise ApiError(400, "There is no staff account with such a long name.")
    moved = await request.app[TEAM].router.reassign(_conversation_id(request), staff.username, to,
                                                    admin=staff.role == "admin")
    return web.json_response({"ok": True, "assigned_agent": moved["to"], "status": "agent" if moved["to"] else "waiting"})


def staff_list(session: Any) -> List[Dict[str, str]]:
    """Active accounts that can hold a conversation (agents and admins), by display name."""
    rows = (session.query(Account.username, Account.display_name, Account.role)
            .filter(Account.disabled.is_(False), Account.role.in_(("agent", "admin")))
            .order_by(Account.display_name, Account.username).all())
    return [{"username": u, "name": n, "role": r} for u, n, r in rows]


@api_errors
async def api_agents(request: web.Request, staff: accounts.Staff) -> web.Response:
    team = request.app[TEAM]
    online = team.hub.online_agents()
    agents = [dict(a, online=a["username"] in online) for a in await team.db.run(staff_list)]
    return web.json_response({"agents": agents})


# -- search --------------------------------------------------------------------------------------
@api_errors
async def api_search(request: web.Request, staff: accounts.Staff) -> web.Response:
    team = request.app[TEAM]
    settings = team.settings
    query = request.query.get("q", "").replace("\x00", "").strip()
    if not settings.search_min_chars <= len(query) <= settings.search_max_chars:
        raise ApiError(400, f"Search for {settings.search_min_chars} to {settings.search_max_chars} characters: "
                            "a name, email, order, case or conversation id.")
    found = await team.db.run(search.search_conversations, query, settings.search_results)
    return web.json_response(found)
