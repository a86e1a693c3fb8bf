"""Errors the staff API answers with, and reading a JSON request body: shared by the console and trainer APIs."""
from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable, Dict

from aiohttp import web

from bot.gateway.rasa_client import RasaUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """A request that cannot be carried out; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def json_object(request: web.Request) -> Dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError(400, "Send JSON (Content-Type: application/json).")
    try:
        body = await request.json()
    except ValueError as error:
        raise ApiError(400, "The request body is not valid JSON.") from error
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def api_errors(handler: Callable[..., Awaitable[web.StreamResponse]]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Decorator for ``handler(request, staff)``: ApiError and a silent Rasa become JSON errors."""
    async def wrapped(request: web.Request, staff: Any) -> web.StreamResponse:
        try:
            return await handler(request, staff)
        except ApiError as error:
            return web.json_response({"error": error.message}, status=error.status)
        except RasaUnavailable as error:
            logger.warning("staff API: %s", error)
            return web.json_response({"error": "The bot (Rasa) is not answering; try again in a minute."}, status=503)
    return wrapped
