"""The error a conversation request ends with when it cannot be carried out."""
from __future__ import annotations

from bot.gateway.api_errors import ApiError


class RoutingError(ApiError):
    """A conversation request that cannot be carried out (unknown, or someone else's)."""
