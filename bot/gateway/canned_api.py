"""The canned-replies API of the agent console (see PROTOCOL.md, "Canned replies").

Everyone on the console reads them and fills them for a conversation; only admins add, edit and
delete them (``staff_only("admin")`` where the routes are registered in app.py).
"""
from __future__ import annotations

from typing import Any, Callable, Dict

from aiohttp import web

from bot.gateway import accounts, canned
from bot.gateway.api_errors import ApiError, api_errors, json_object


class Canned:
    """What the handlers need: the database runner, the limits, and the app's same-origin check."""

    def __init__(self, db: Any, limits: canned.CannedLimits, origin_ok: Callable[[web.Request], bool]) -> None:
        self.db, self.limits, self.origin_ok = db, limits, origin_ok


CANNED = web.AppKey("canned", Canned)


def _service(request: web.Request) -> Canned:
    return request.app[CANNED]


def _id(request: web.Request, name: str = "canned_id") -> int:
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(404, "No such canned reply.")
    return int(raw)


def _writable(request: web.Request) -> None:
    """PUT and DELETE get the same cross-site check staff_only gives POST (and the session cookie is
    SameSite=Strict): a request from another website is refused."""
    if not _service(request).origin_ok(request):
        raise ApiError(403, "Cross-site request refused.")


@api_errors
async def api_list(request: web.Request, staff: accounts.Staff) -> web.Response:
    replies = await _service(request).db.run(canned.list_replies)
    limits = _service(request).limits
    return web.json_response({"replies": replies, "placeholders": list(canned.PLACEHOLDERS),
                              "limits": {"title_chars": limits.title_chars, "text_chars": limits.text_chars},
                              "can_edit": staff.can("admin")})


@api_errors
async def api_create(request: web.Request, staff: accounts.Staff) -> web.Response:
    service = _service(request)
    fields = canned.validate(await json_object(request), service.limits)
    reply = await service.db.run(canned.create, fields, staff.username, service.limits)
    return web.json_response({"ok": True, "reply": reply}, status=201)


@api_errors
async def api_update(request: web.Request, staff: accounts.Staff) -> web.Response:
    _writable(request)
    service = _service(request)
    reply_id = _id(request)
    fields = canned.validate(await json_object(request), service.limits)
    reply = await service.db.run(canned.update, reply_id, fields, staff.username)
    return web.json_response({"ok": True, "reply": reply})


@api_errors
async def api_delete(request: web.Request, staff: accounts.Staff) -> web.Response:
    _writable(request)
    await _service(request).db.run(canned.delete, _id(request))
    return web.json_response({"ok": True})


@api_errors
async def api_fill(request: web.Request, staff: accounts.Staff) -> web.Response:
    """The reply's text with the conversation's facts in it, and the placeholders left to complete."""
    result: Dict[str, Any] = await _service(request).db.run(
        canned.filled, request.match_info["conversation_id"][:64], _id(request), staff.name or staff.username)
    return web.json_response(result)
