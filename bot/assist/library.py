"""The reply library a trainer edits (bot/settings/reply_library.yml), checked when it is loaded."""
from __future__ import annotations

import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import yaml

from bot.assist.moment import CONDITIONS

LIBRARY_FILE = Path(__file__).resolve().parents[1] / "settings" / "reply_library.yml"
KINDS = ("greet_takeover", "apologize", "acknowledge_repeat", "offer_options", "resolution_status", "refund_timing",
         "delivery_status", "next_steps", "ask_verification", "ask_details", "compensate", "escalate", "close_loop",
         "thanks_reply")
MAX_TEXT = 1000


class LibraryError(ValueError):
    """The library file is malformed; the message says which reply and what is wrong."""


@dataclass(frozen=True)
class LibraryReply:
    id: str
    kind: str
    text: str
    why: str
    asks: Tuple[str, ...]
    when: Mapping[str, Any] = field(default_factory=dict)
    min_similarity: float = 0.0   # offered only when the customer's words call for it this much


def placeholders_in(text: str) -> List[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(text) if name]
    except ValueError as error:
        raise LibraryError(f"unbalanced braces in {text[:60]!r}: {error}") from error


def fill(text: str, values: Mapping[str, str]) -> Optional[str]:
    """The text with its placeholders filled, or None when the case cannot fill one of them."""
    names = placeholders_in(text)
    if any(not values.get(name) for name in names):
        return None
    return string.Formatter().vformat(text, (), {name: values[name] for name in names})


def _check(raw: Any, index: int, seen: set) -> LibraryReply:
    where = f"reply #{index + 1}"
    if not isinstance(raw, dict):
        raise LibraryError(f"{where}: must be a mapping")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid.strip():
        raise LibraryError(f"{where}: needs an id")
    where = f"reply {rid!r}"
    if rid in seen:
        raise LibraryError(f"{where}: the id is used twice")
    seen.add(rid)
    if raw.get("kind") not in KINDS:
        raise LibraryError(f"{where}: kind must be one of {', '.join(KINDS)}")
    text, why = raw.get("text"), raw.get("why") or ""
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise LibraryError(f"{where}: text must be 1..{MAX_TEXT} characters")
    if not isinstance(why, str):
        raise LibraryError(f"{where}: why must be text")
    placeholders_in(text), placeholders_in(why)
    asks = raw.get("asks") or []
    if not isinstance(asks, list) or not asks or not all(isinstance(a, str) and a.strip() for a in asks):
        raise LibraryError(f"{where}: asks must be a non-empty list of customer messages")
    when = raw.get("when") or {}
    if not isinstance(when, dict):
        raise LibraryError(f"{where}: when must be a mapping")
    for name, value in when.items():
        kind = CONDITIONS.get(name)
        if kind is None:
            raise LibraryError(f"{where}: unknown condition {name!r} (known: {', '.join(CONDITIONS)})")
        if kind is list and not isinstance(value, list):
            raise LibraryError(f"{where}: condition {name!r} takes a list")
        if kind is bool and not isinstance(value, bool):
            raise LibraryError(f"{where}: condition {name!r} takes true or false")
    least = raw.get("min_similarity", 0.0)
    if not isinstance(least, (int, float)) or isinstance(least, bool) or not 0 <= least <= 1:
        raise LibraryError(f"{where}: min_similarity must be a number from 0 to 1")
    return LibraryReply(rid, raw["kind"], text.strip(), why.strip(), tuple(a.strip() for a in asks), dict(when),
                        float(least))


def parse_library(text: str) -> List[LibraryReply]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise LibraryError(f"not valid YAML: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("replies"), list):
        raise LibraryError("the file must be a mapping with a list under 'replies'")
    seen: set = set()
    return [_check(raw, i, seen) for i, raw in enumerate(data["replies"])]


@lru_cache(maxsize=4)
def load_library(path: Path = LIBRARY_FILE) -> Tuple[LibraryReply, ...]:
    try:
        return tuple(parse_library(path.read_text(encoding="utf-8")))
    except OSError as error:
        raise LibraryError(f"cannot read {path}: {error}") from error
    except LibraryError as error:
        raise LibraryError(f"{path}: {error}") from error
