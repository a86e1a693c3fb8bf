"""The aiohttp application: pages, the widget and console sockets, the console API, agent login."""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, Optional
from urllib.parse import quote

import aiohttp_jinja2
import jinja2
from aiohttp import WSMsgType, web
from aiohttp_session import get_session, new_session, setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from bot.gateway import accounts, login_throttle, staff_sessions, throttle, transcript
from bot.gateway.config import GatewayConfig
from bot.gateway.hub import ConsoleClient, Hub
from bot.gateway import fanout
from bot.gateway.identity import (
    TokenError,
    guest_may_resume,
    new_conversation_id,
    read_resume_token,
    sign_customer_token,
    sign_resume_token,
    sign_verified_guest_token,
    verify_customer_token,
)
from bot.gateway.limits import RATE_LIMITED, RateLimiter, clean_text, too_long_message
from bot.gateway.rasa_client import RasaClient
from bot.gateway.api_errors import api_errors, json_object
from bot.gateway.faults import NOT_STORED, NotStored
from bot.gateway import event_feed
from bot.gateway.staff_sockets import StaffSockets, digest
from bot.casedb.runner import Database
from bot.gateway.routing import Router, RoutingError, customer_view
from bot.gateway import trainer_api
from bot.gateway import team_api
from bot.gateway import canned, canned_api
from bot.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
WIDGET_MAX_FRAME = 64 * 1024
HELLO_TIMEOUT = 15.0
WIDGET_INBOX = 32  # widget frames waiting to be handled per socket (reading pauses beyond it)
DEMO_CUSTOMERS = [
    {"id": "cust-1001", "name": "Dana Whitfield", "note": "headphones late, promised yesterday"},
    {"id": "cust-1002", "name": "Sam Ortiz", "note": "charged twice"},
    {"id": "cust-1003", "name": "Priya Nair", "note": "replacement blender leaks too"},
    {"id": "cust-1004", "name": "Lee Chen", "note": "account locked"},
    {"id": "cust-1005", "name": "Alex Morgan", "note": "parcel lost"},
]

CONFIG = web.AppKey("config", GatewayConfig)
ROUTER = web.AppKey("router", Router)
HUB = web.AppKey("hub", Hub)
RASA = web.AppKey("rasa", RasaClient)
DB = web.AppKey("db", Database)
LIMITER = web.AppKey("limiter", RateLimiter)
LOGIN_THROTTLE = web.AppKey("login_throttle", login_throttle.LoginThrottle)
STAFF_SOCKETS = web.AppKey("staff_sockets", StaffSockets)  # staff session id -> its open console sockets


def _cookie_key(secret: str) -> bytes:
    """32 raw bytes derived from the session secret (aiohttp-session base64-encodes them for Fernet)."""
    return hashlib.sha256(("mend-session:" + secret).encode()).digest()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# -- security around every request -------------------------------------------------------------
@web.middleware
async def security_headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as error:
        if request.path.startswith("/api/") and error.status >= 400:
            response = _error(error.status, error.reason or "Request refused.")
        else:
            raise
    if not response.prepared:
        host = request.host
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.path != "/widget.js":
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault(
                "Content-Security-Policy",
                f"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                f"connect-src 'self' ws://{host} wss://{host}; frame-ancestors 'none'; base-uri 'none'; "
                f"form-action 'self'; object-src 'none'")
    return response


def _origin_allowed(request: web.Request, required: bool) -> bool:
    origin = request.headers.get("Origin")
    if not origin:
        return not required
    config = request.app[CONFIG]
    own = f"{request.scheme}://{request.host}"
    return origin.rstrip("/") in config.origins() or origin.rstrip("/") == own


def client_address(request: web.Request) -> str:
    """The client's address; X-Forwarded-For only from a trusted proxy (gateway.abuse.trusted_proxies)."""
    return throttle.client_address(request.remote, request.headers.get("X-Forwarded-For"),
                                   request.app[CONFIG].trusted_proxies)


def client_key(request: web.Request) -> str:
    """A keyed hash of the client's address: what limits and conversations store instead of the address."""
    return throttle.client_key(request.app[CONFIG].session_secret, client_address(request))


async def current_staff(request: web.Request) -> Optional[accounts.Staff]:
    """The staff member of the request's session; the server-side row is checked on every request."""
    session = await get_session(request)
    session_id = session.get("sid")
    if not session_id:
        return None
    staff = await request.app[DB].run(staff_sessions.staff_for, session_id)
    if staff is None:
        session.invalidate()  # expired, revoked (logout elsewhere, new password) or a disabled account
    return staff


def staff_only(role: str = "agent") -> Callable:
    """Decorator: a logged-in staff member with the role; JSON 401/403 for the API, redirect for pages."""
    def decorate(handler: Callable[[web.Request, accounts.Staff], Awaitable[web.StreamResponse]]) -> Callable:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            staff = await current_staff(request)
            if staff is None:
                if request.path.startswith("/api/"):
                    return _error(401, "Please log in.")
                raise web.HTTPFound("/login?next=" + quote(request.path, safe="/"))
            if not staff.can(role):
                return _error(403, f"This needs the {role} role.")
            if request.method == "POST" and not _origin_allowed(request, required=False):
                return _error(403, "Cross-site request refused.")
            request.app[ROUTER].agent_names.noticed(staff.username, staff.name)  # renamed: reload the names
            return await handler(request, staff)
        return wrapped
    return decorate


# -- pages ---------------------------------------------------------------------------------------
async def shop_page(request: web.Request) -> web.Response:
    """The demo "host website": it signs a short-lived token for the customer it has logged in."""
    config = request.app[CONFIG]
    wanted = request.query.get("as", "")
    customer = next((c for c in DEMO_CUSTOMERS if c["id"] == wanted), None)
    token = sign_customer_token(customer["id"], config.customer_token_secret, minutes=15) if customer else ""
    context = {"widget_url": "/widget.js", "token": token, "customer": customer, "demo_customers": DEMO_CUSTOMERS,
               "console_url": "/console", "trainer_url": "/trainer"}
    return aiohttp_jinja2.render_template("shop.html", request, context)


async def widget_js(request: web.Request) -> web.FileResponse:
    response = web.FileResponse(STATIC / "widget.js", headers={"Cache-Control": "no-cache",
                                                               "Content-Type": "application/javascript"})
    return response


async def login_page(request: web.Request) -> web.Response:
    return aiohttp_jinja2.render_template("login.html", request, {"error": None, "next": _safe_next(request.query.get("next"))})


LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*")


def _safe_next(value: Optional[str]) -> str:
    """Only local paths: a login link must not bounce to another site.

    A strict character set, because browsers drop tabs and newlines from URLs ("/<tab>/evil" becomes
    "//evil") and treat backslashes as slashes; anything else falls back to the console.
    """
    if not value or len(value) > 2000 or not LOCAL_PATH.fullmatch(value):
        return "/console"
    return value


async def login(request: web.Request) -> web.Response:
    if not _origin_allowed(request, required=False):
        return _error(403, "Cross-site request refused.")
    form = await request.post()
    username = str(form.get("username") or "")[:80]
    password = str(form.get("password") or "")[:1024]
    target = _safe_next(str(form.get("next") or ""))
    config = request.app[CONFIG]
    # Counted under the normalized name (" Maria", "MARIA" are one account) and the client's address.
    user_key = throttle.keyed_hash(config.session_secret, "login", accounts.normalize_username(username))
    address_key = client_key(request)
    db = request.app[DB]
    refusal = await request.app[LOGIN_THROTTLE].refusal(user_key, address_key)
    if refusal:
        response = aiohttp_jinja2.render_template("login.html", request, {"error": refusal, "next": target}, status=429)
        response.headers["Retry-After"] = "60"
        return response
    staff = await db.run(accounts.authenticate, username, password)
    if staff is None:
        await request.app[LOGIN_THROTTLE].failed(user_key, address_key)
        return aiohttp_jinja2.render_template("login.html", request, {
            "error": "Wrong username or password.", "next": target}, status=401)
    session_id = await db.run(staff_sessions.open_session, staff.username, config.session_hours, address_key)
    session = await new_session(request)  # a fresh session id on login (no fixation)
    session["sid"] = session_id
    raise web.HTTPFound("/trainer" if target == "/console" and staff.role == "trainer" else target)


async def logout(request: web.Request) -> web.Response:
    """Ends the session on the server: a copy of the cookie is worthless from now on."""
    session = await get_session(request)
    session_id = session.get("sid")
    if session_id:
        await request.app[DB].run(staff_sessions.revoke, session_id)
        await request.app[STAFF_SOCKETS].close_session(session_id)
        await request.app[HUB].session_revoked(digest(session_id))  # the other gateways' sockets of it
    session.invalidate()
    raise web.HTTPFound("/login")


@staff_only("agent")
async def console_page(request: web.Request, staff: accounts.Staff) -> web.Response:
    return aiohttp_jinja2.render_template("console.html", request, {"user": staff.as_dict()})


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


# -- console API ---------------------------------------------------------------------------------
@staff_only("agent")
async def api_me(request: web.Request, staff: accounts.Staff) -> web.Response:
    return web.json_response(staff.as_dict())


@staff_only("agent")
async def api_queue(request: web.Request, staff: accounts.Staff) -> web.Response:
    config = request.app[CONFIG]
    queue = await request.app[DB].run(transcript.queue, staff.username, config.live_minutes,
                                      fold_after=config.live_fold_after)
    return web.json_response(queue)


@staff_only("agent")
async def api_conversation(request: web.Request, staff: accounts.Staff) -> web.Response:
    detail = await request.app[ROUTER].detail(request.match_info["conversation_id"])
    return web.json_response(detail) if detail is not None else _error(404, "No such conversation.")


@staff_only("agent")
@api_errors
async def api_activity(request: web.Request, staff: accounts.Staff) -> web.Response:
    """What the bot did in a conversation (from the tracker): the console re-reads it when it is not pushed."""
    conversation_id = request.match_info["conversation_id"]
    router = request.app[ROUTER]
    if await router.db.run(transcript.get_conversation, conversation_id) is None:
        return _error(404, "No such conversation.")
    return web.json_response(await router.activity(conversation_id))


@staff_only("agent")
@api_errors
async def api_take(request: web.Request, staff: accounts.Staff) -> web.Response:
    await request.app[ROUTER].take(request.match_info["conversation_id"], staff.username)
    return web.json_response({"ok": True})


@staff_only("agent")
@api_errors
async def api_send(request: web.Request, staff: accounts.Staff) -> web.Response:
    body = await json_object(request)
    text = clean_text(body.get("text"))
    action = body.get("action") if isinstance(body.get("action"), str) else None
    limit = request.app[CONFIG].max_message_chars
    if not text:
        raise RoutingError(400, "The reply is empty.")
    if len(text) > limit:
        raise RoutingError(413, too_long_message(limit))
    if not await request.app[LIMITER].allowed("agent:" + staff.username):
        raise RoutingError(429, RATE_LIMITED)
    # The suggestion the reply started from (its id from the suggestions event), for the telemetry.
    suggestion_id = body.get("suggestion_id") if isinstance(body.get("suggestion_id"), int) else None
    message = await request.app[ROUTER].send(request.match_info["conversation_id"], staff.username, text,
                                             action[:80] if action else None, suggestion_id)
    return web.json_response({"ok": True, "message": message})


@staff_only("agent")
@api_errors
async def api_handback(request: web.Request, staff: accounts.Staff) -> web.Response:
    await request.app[ROUTER].hand_back(request.match_info["conversation_id"], staff.username)
    return web.json_response({"ok": True})


@staff_only("admin")
@api_errors
async def api_suggestion_telemetry(request: web.Request, staff: accounts.Staff) -> web.Response:
    """What became of the suggestions agents were shown (sent as is, edited, ignored), for the insights."""
    from bot.assist.telemetry import report
    return web.json_response(await request.app[DB].run(report))


# -- sockets -------------------------------------------------------------------------------------
async def _send_json(socket: web.WebSocketResponse, payload: Dict[str, Any]) -> None:
    if not socket.closed:
        await socket.send_str(json.dumps(payload))


async def _widget_error(socket: web.WebSocketResponse, code: str, message: str, client_id: Optional[str] = None) -> None:
    await _send_json(socket, {"type": "error", "code": code, "message": message, "client_id": client_id})


async def widget_socket(request: web.Request) -> web.StreamResponse:
    if not _origin_allowed(request, required=False):
        return _error(403, "This website may not open the chat.")
    socket = web.WebSocketResponse(heartbeat=30, max_msg_size=WIDGET_MAX_FRAME)
    await socket.prepare(request)
    app = request.app
    try:
        first = await socket.receive(timeout=HELLO_TIMEOUT)
    except asyncio.TimeoutError:
        await socket.close(code=4400, message=b"hello expected")
        return socket
    hello = _parse_frame(first)
    if hello is None or hello.get("type") != "hello":
        await _widget_error(socket, "bad_request", "The chat could not start. Please reload the page.")
        await socket.close(code=4400, message=b"hello expected")
        return socket
    try:
        welcome = await _start_widget_conversation(app, hello, client_key(request))
    except TokenError as error:
        await _widget_error(socket, error.code, error.message)
        await socket.close(code=4401, message=error.code.encode())
        return socket
    except ConversationRefused as error:
        await _widget_error(socket, "too_many_conversations", str(error))
        await socket.close(code=4429, message=b"too many new conversations")
        return socket
    conversation_id = welcome["conversation_id"]
    app[HUB].add_widget(conversation_id, socket)
    try:
        await _send_json(socket, dict(welcome, heartbeat=app[ROUTER].faults.for_widget()))
        await _read_widget_frames(app, socket, conversation_id)
    finally:
        app[HUB].remove_widget(conversation_id, socket)
    return socket


async def _read_widget_frames(app: web.Application, socket: web.WebSocketResponse, conversation_id: str) -> None:
    """Pings are answered at once; messages are handled in order by a worker, so a slow database never
    delays a pong (the widget would show a lost connection)."""
    inbox: asyncio.Queue = asyncio.Queue(maxsize=WIDGET_INBOX)

    async def work() -> None:
        while True:
            frame = await inbox.get()
            if frame is None:
                return
            try:
                await _widget_frame(app, socket, conversation_id, frame)
            except Exception:  # one bad frame must not end the customer's socket
                logger.exception("a widget frame of %s failed", conversation_id)

    worker = asyncio.ensure_future(work())
    try:
        async for frame in socket:
            if frame.type == WSMsgType.ERROR:
                break
            if frame.type == WSMsgType.TEXT and len(frame.data) < 64 and _parse_frame(frame) == {"type": "ping"}:
                await _send_json(socket, {"type": "pong"})
                continue
            await inbox.put(frame)
    finally:
        await inbox.put(None)  # what the customer already sent is still stored (the widget resends if unacked)
        await worker


def _parse_frame(frame: Any) -> Optional[Dict[str, Any]]:
    if frame.type != WSMsgType.TEXT:
        return None
    try:
        data = json.loads(frame.data)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


class ConversationRefused(Exception):
    """Too many new conversations from one client address (the message says what to do)."""


async def _start_widget_conversation(app: web.Application, hello: Dict[str, Any],
                                     address_key: Optional[str] = None) -> Dict[str, Any]:
    """Verify the host's token, then resume this browser's conversation or start one.

    A guest who verified in the chat resumes with the token the gateway sent them then
    (bound to that customer, short-lived); new conversations are limited per client address.
    """
    config = app[CONFIG]
    db = app[DB]
    customer_id: Optional[str] = None
    token = hello.get("token")
    if token:
        customer_id = verify_customer_token(token, config.customer_token_secret, config.customer_token_max_minutes)
        if not await db.run(transcript.customer_exists, customer_id):
            raise TokenError("token_invalid", "We could not find your customer account. Please sign in again.")
    resume = read_resume_token(hello.get("resume"), config.session_secret)

    def open_or_resume(session: Any) -> Dict[str, Any]:
        conversation = transcript.get_conversation(session, resume["cid"]) if resume else None
        verified_guest = conversation is not None and customer_id is None and \
            guest_may_resume(resume, conversation.customer_id)
        if conversation is not None and conversation.customer_id not in (None, customer_id) and not verified_guest:
            conversation = None  # another customer's chat on a shared browser stays private
        if conversation is not None and conversation.customer_id is None and customer_id:
            transcript.update(session, conversation.id, customer_id=customer_id)  # the visitor signed in
        if not transcript.still_open(conversation, config.conversation_idle_hours):
            conversation = None
        if conversation is None and customer_id:
            conversation = transcript.latest_open_conversation(session, customer_id, config.conversation_idle_hours)
        if conversation is None:
            if address_key and not throttle.may_open_conversation(session, address_key,
                                                                  config.new_conversations_per_hour):
                raise ConversationRefused(throttle.TOO_MANY_CONVERSATIONS)
            conversation = transcript.open_conversation(session, new_conversation_id(), customer_id, address_key)
            verified_guest = False
        found = transcript.messages(session, conversation.id, config.history_messages)
        agent = conversation.assigned_agent if conversation.status == "agent" else None
        names = app[ROUTER].agent_names.fresh_in(session, agent, *{m.agent for m in found if m.agent})
        history = [customer_view(transcript.message_dict(m, names)) for m in found]
        # A verified guest keeps the token they have: its lifetime counts from the verification.
        resume_token = hello["resume"] if verified_guest and conversation.id == resume["cid"] else \
            sign_resume_token(conversation.id, conversation.customer_id, config.session_secret, config.resume_days)
        return {"type": "welcome", "conversation_id": conversation.id,
                "resume": resume_token,
                "customer": {"name": transcript.customer_name(session, conversation.customer_id)}
                if conversation.customer_id else None,
                "status": conversation.status,
                "agent": {"name": names.name_of(agent)} if agent else None,
                "history": history}

    welcome = await db.run(open_or_resume)
    if welcome["customer"]:
        welcome["customer"]["name"] = (welcome["customer"]["name"] or "").split(" ")[0] or None
    return welcome


async def _widget_frame(app: web.Application, socket: web.WebSocketResponse, conversation_id: str, frame: Any) -> None:
    data = _parse_frame(frame)
    if data is not None and data.get("type") == "ping":  # the widget's heartbeat (see _read_widget_frames)
        await _send_json(socket, {"type": "pong"})
        return
    if data is None or data.get("type") != "message":
        await _widget_error(socket, "bad_request", "The chat could not read that message. Please try again.")
        return
    client_id = data.get("client_id")
    client_id = client_id[:80] if isinstance(client_id, str) and client_id.strip() else None
    text = clean_text(data.get("text"))
    config = app[CONFIG]
    if not text:
        await _widget_error(socket, "bad_request", "Please type a message first.", client_id)
        return
    if len(text) > config.max_message_chars:
        await _widget_error(socket, "too_long", too_long_message(config.max_message_chars), client_id)
        return
    router = app[ROUTER]
    if not router.retrying(conversation_id, client_id) and not await app[LIMITER].allowed("widget:" + conversation_id):
        await _widget_error(socket, "rate_limited", RATE_LIMITED, client_id)
        return
    payload = data.get("payload")
    payload = payload[:500] if isinstance(payload, str) and payload.startswith("/") else None
    try:
        message = await router.accept(conversation_id, text, client_id, payload)
    except NotStored as failure:
        # The widget keeps the message and resends it; nothing is lost.
        await _send_json(socket, {"type": "error", "code": "not_stored", "message": NOT_STORED,
                                  "client_id": client_id, "retry_ms": int(failure.retry_seconds * 1000)})
        return
    await _send_json(socket, {"type": "ack", "client_id": client_id, "id": message["id"]})
    # Other tabs of the same customer see their own message too.
    for other in list(app[HUB].widgets.get(conversation_id, ())):
        if other is not socket:
            await _send_json(other, {"type": "message", "message": message})


async def console_socket(request: web.Request) -> web.StreamResponse:
    if not _origin_allowed(request, required=True):
        return _error(403, "Cross-site socket refused.")
    staff = await current_staff(request)
    if staff is None:
        return _error(401, "Please log in.")
    socket = web.WebSocketResponse(heartbeat=30, max_msg_size=WIDGET_MAX_FRAME)
    await socket.prepare(request)
    app = request.app
    app[ROUTER].agent_names.noticed(staff.username, staff.name)  # renamed: reload the names
    client = ConsoleClient(socket, staff.username)
    app[HUB].add_console(client)
    session_id = (await get_session(request)).get("sid")
    app[STAFF_SOCKETS].add(session_id, socket)  # closed when this session ends, wherever it ends
    try:
        await _send_json(socket, {"type": "queue", "queue": await app[DB].run(
            transcript.queue, staff.username, app[CONFIG].live_minutes, fold_after=app[CONFIG].live_fold_after)})
        async for frame in socket:
            data = _parse_frame(frame)
            if data and data.get("type") == "watch" and isinstance(data.get("conversation_id"), str):
                client.watching = {data["conversation_id"][:64]}
    finally:
        app[HUB].remove_console(client)
        app[STAFF_SOCKETS].remove(session_id, socket)
    return socket


async def _guest_verified(app: web.Application, conversation_id: str, customer_id: str) -> None:
    """The bot verified a guest (email and order number): their widget gets a resume token bound to
    that customer, so a reload within ``verified_guest_hours`` keeps the conversation."""
    config = app[CONFIG]
    token = sign_verified_guest_token(conversation_id, customer_id, config.session_secret, config.verified_guest_hours)
    await app[HUB].to_widgets(conversation_id, {"type": "resume", "resume": token})


def _project_path(value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else PROJECT_ROOT / path


# -- the application -----------------------------------------------------------------------------
def create_app(config: GatewayConfig, rasa: Optional[RasaClient] = None) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=256 * 1024)
    app[CONFIG] = config
    app[DB] = Database(config.database_url)
    # With MEND_REDIS_URL shared with the other gateways; who holds a conversation is read from the database.
    app[HUB] = Hub(fanout.from_config(config), database=app[DB])
    app[RASA] = rasa or RasaClient(config.rasa_url, config.rasa_timeout)
    app[ROUTER] = Router(app[DB], app[RASA], app[HUB], config.live_minutes, config.history_messages)
    app[LIMITER] = fanout.rate_limiter(config, app[HUB].fanout)  # in Redis when it is configured
    app[LOGIN_THROTTLE] = login_throttle.from_config(config, app[DB], app[HUB].fanout)  # in Redis when configured
    app[STAFF_SOCKETS] = StaffSockets()
    app[HUB].on_revoked = app[STAFF_SOCKETS].close_digest
    app[ROUTER].guest_verified = lambda conversation_id, customer_id: _guest_verified(app, conversation_id, customer_id)
    app[trainer_api.TRAINER] = trainer_api.Trainer(
        app[RASA], app[DB], [_project_path(d) for d in config.story_dirs], _project_path(config.trainer_export_dir))
    setup_sessions(app, EncryptedCookieStorage(
        _cookie_key(config.session_secret), cookie_name="mend_session", max_age=config.session_hours * 3600,
        secure=config.cookie_secure, httponly=True, samesite="Strict"))
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)

    async def on_startup(app: web.Application) -> None:
        await app[RASA].start()
        await app[HUB].start()  # Redis only
        # The suggestion ranker loads the sentence encoder and embeds the reply library once, now,
        # rather than in front of the first agent who takes over.
        from bot.gateway.suggestions import get_ranker
        await asyncio.to_thread(get_ranker)
        resumed = await app[ROUTER].resume_undelivered()
        if resumed:
            logger.info("resumed %d customer messages left unprocessed by the last run", resumed)
        from bot.gateway.follow_ups import FOLLOW_UP_JOB, FollowUpJob  # promised check-ins, sent when due
        app[FOLLOW_UP_JOB] = FollowUpJob(app[DB], app[RASA], app[ROUTER], rasa_timeout=app[CONFIG].rasa_timeout)
        app[FOLLOW_UP_JOB].start()
        app[STAFF_SOCKETS].start(app[DB], app[CONFIG].staff_session_check_seconds)

    async def on_cleanup(app: web.Application) -> None:
        from bot.gateway.follow_ups import FOLLOW_UP_JOB
        if FOLLOW_UP_JOB in app:
            await app[FOLLOW_UP_JOB].stop()
        await app[ROUTER].drain()
        await app[STAFF_SOCKETS].stop()
        await app[HUB].stop()
        await app[RASA].close()
        app[ROUTER].suggestion_pool.shutdown(wait=False)
        app[DB].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    # With RabbitMQ (the scaled layout): Rasa's events feed the consoles' activity lists live.
    event_feed.install(app, config, app[HUB])
    app[ROUTER].activity_live = lambda: event_feed.live(app)
    app.router.add_get("/", shop_page)
    app.router.add_get("/widget.js", widget_js)
    app.router.add_get("/healthz", health)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/console", console_page)
    app.router.add_get("/ws/widget", widget_socket)
    app.router.add_get("/ws/console", console_socket)
    app.router.add_get("/api/me", api_me)
    app.router.add_get("/api/queue", api_queue)
    app.router.add_get("/api/conversations/{conversation_id}", api_conversation)
    app.router.add_get("/api/conversations/{conversation_id}/activity", api_activity)
    app.router.add_post("/api/conversations/{conversation_id}/take", api_take)
    app.router.add_post("/api/conversations/{conversation_id}/send", api_send)
    app.router.add_post("/api/conversations/{conversation_id}/handback", api_handback)
    app.router.add_get("/api/suggestions/telemetry", api_suggestion_telemetry)
    # Team tools (team_api.py): private notes, reassign, the staff list, search; any agent or admin.
    app[team_api.TEAM] = team_api.Team(app[ROUTER], app[HUB], app[DB])
    app.router.add_get("/api/conversations/{conversation_id}/notes", staff_only("agent")(team_api.api_notes))
    app.router.add_post("/api/conversations/{conversation_id}/notes", staff_only("agent")(team_api.api_add_note))
    app.router.add_post("/api/conversations/{conversation_id}/reassign", staff_only("agent")(team_api.api_reassign))
    app.router.add_get("/api/agents", staff_only("agent")(team_api.api_agents))
    app.router.add_get("/api/search", staff_only("agent")(team_api.api_search))
    # Canned replies (canned_api.py): every agent reads and fills them, admins manage them.
    app[canned_api.CANNED] = canned_api.Canned(app[DB], canned.CannedLimits.from_settings(),
                                               lambda request: _origin_allowed(request, required=False))
    app.router.add_get("/api/canned", staff_only("agent")(canned_api.api_list))
    app.router.add_post("/api/canned", staff_only("admin")(canned_api.api_create))
    app.router.add_put("/api/canned/{canned_id}", staff_only("admin")(canned_api.api_update))
    app.router.add_delete("/api/canned/{canned_id}", staff_only("admin")(canned_api.api_delete))
    app.router.add_get("/api/conversations/{conversation_id}/canned/{canned_id}",
                       staff_only("agent")(canned_api.api_fill))
    app.router.add_get("/trainer", staff_only("trainer")(trainer_api.trainer_page))
    app.router.add_get("/api/trainer/items", staff_only("trainer")(trainer_api.api_items))
    app.router.add_get("/api/trainer/actions", staff_only("trainer")(trainer_api.api_actions))
    app.router.add_post("/api/trainer/replay", staff_only("trainer")(trainer_api.api_replay))
    app.router.add_post("/api/trainer/export", staff_only("trainer")(trainer_api.api_export))
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    return app
