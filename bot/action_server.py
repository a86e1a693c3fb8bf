"""The action server answers Rasa only: a shared token on every call, loopback by default.

Rasa sends the ``token`` of ``action_endpoint`` in endpoints.yml (``${MEND_ACTION_TOKEN}``) as the
query parameter ``?token=`` with each action call. Whatever command starts the action server
(``python -m rasa_sdk --actions actions``, ``rasa run actions``), rasa_sdk creates its Sanic app
and then imports the ``actions`` package, which calls ``guard_running_action_server()``: it finds
that app and adds a request middleware refusing every request but ``/health`` that lacks the
token (401) or carries a wrong one (403), compared in constant time. It also makes the server
bind 127.0.0.1 unless ``SANIC_HOST`` says otherwise.

Without ``MEND_ACTION_TOKEN`` the action server refuses to start (fail closed), unless
``MEND_ACTIONS_ALLOW_UNAUTHENTICATED=1`` is set, for development on a machine of one's own.
"""
from __future__ import annotations

import hmac
import logging
import os
import sys
from typing import Any, Optional

logger = logging.getLogger("mend.action_server")

TOKEN_ENV = "MEND_ACTION_TOKEN"
INSECURE_ENV = "MEND_ACTIONS_ALLOW_UNAUTHENTICATED"
RASA_SDK_APP = "rasa_sdk"  # the name rasa_sdk.endpoint.create_app gives its Sanic app
OPEN_PATHS = frozenset({"/health"})
EXIT_NO_TOKEN = 78  # EX_CONFIG: a configuration error, not a crash


def _running_app() -> Optional[Any]:
    """rasa_sdk's Sanic app when this process is an action server being created, else None."""
    if "sanic" not in sys.modules:
        return None
    from sanic import Sanic
    from sanic.exceptions import SanicException

    try:
        return Sanic.get_app(RASA_SDK_APP)
    except SanicException:
        return None


def token_matches(provided: Optional[str], expected: str) -> bool:
    return provided is not None and hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8"))


def guard(app: Any, token: Optional[str]) -> None:
    """Refuse requests without the shared token on ``app`` (every path but /health)."""
    from sanic import response

    if getattr(app.ctx, "mend_token_guard", False):
        return
    app.ctx.mend_token_guard = True
    if token is None:
        logger.warning("mend: %s=1: the action server accepts calls WITHOUT a token (development only)", INSECURE_ENV)
        return

    async def require_token(request: Any) -> Any:
        if request.path in OPEN_PATHS:
            return None
        provided = request.args.get("token")
        if provided is None:
            logger.warning("mend: refused %s %s from %s: no action server token", request.method, request.path,
                           request.ip)
            return response.json({"error": "This action server only answers Mend's Rasa server: the token is "
                                           "missing (Rasa sends it from endpoints.yml, MEND_ACTION_TOKEN).",
                                  "code": "token_missing"}, status=401)
        if not token_matches(provided, token):
            logger.warning("mend: refused %s %s from %s: wrong action server token", request.method, request.path,
                           request.ip)
            return response.json({"error": "This action server only answers Mend's Rasa server: the token is wrong.",
                                  "code": "token_wrong"}, status=403)
        return None

    app.register_middleware(require_token, "request")


def guard_running_action_server() -> None:
    """Called when the ``actions`` package is imported; a no-op outside an action server (tests, gateway)."""
    app = _running_app()
    if app is None:
        return
    os.environ.setdefault("SANIC_HOST", "127.0.0.1")  # read by rasa_sdk.endpoint.run after create_app
    os.umask(0o077)  # what the action server creates (SQLite journals, logs) is the owner's only
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        guard(app, token)
        return
    if os.environ.get(INSECURE_ENV, "").strip().lower() in {"1", "true", "yes"}:
        guard(app, None)
        return
    message = (f"mend: {TOKEN_ENV} is not set: the action server refuses to start without its shared token "
               f"(it would run actions for anyone who can reach it). `python -m bot run` sets it; by hand: "
               f"export {TOKEN_ENV} (the same value Rasa reads through endpoints.yml), or set {INSECURE_ENV}=1 "
               f"for development only.")
    logger.critical(message)
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(EXIT_NO_TOKEN)
