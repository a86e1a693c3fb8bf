"""A ``TurnInput`` from a Rasa tracker's state: shared by the custom actions and the gateway's previews."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping

from bot.recovery.conversation import TurnInput


def turn_input(sender_id: str, slots: Mapping[str, Any], latest_message: Mapping[str, Any] | None,
               events: Iterable[Mapping[str, Any]]) -> TurnInput:
    """The conversation as the recovery logic sees it."""
    latest = latest_message or {}
    entities: Dict[str, List[str]] = {}
    for entity in latest.get("entities") or []:
        if isinstance(entity, dict) and entity.get("entity") and entity.get("value") is not None:
            entities.setdefault(str(entity["entity"]), []).append(str(entity["value"]))
    frustration: List[Dict[str, Any]] = []
    failed = 0
    for event in events or []:
        if event.get("event") != "user":
            continue
        parse = event.get("parse_data") or {}
        if isinstance(parse.get("frustration"), dict):
            frustration.append(parse["frustration"])
        intent = (parse.get("intent") or {}).get("name")
        if intent == "nlu_fallback" and (event.get("text") or "").strip():
            failed += 1
    metadata = latest.get("metadata") if isinstance(latest.get("metadata"), dict) else {}
    issue = latest.get("issue_type")
    return TurnInput(
        conversation_id=sender_id,
        text=str(latest.get("text") or ""),
        intent=(latest.get("intent") or {}).get("name"),
        issue_type=issue.get("name") if isinstance(issue, dict) else None,
        issue_confidence=_number(issue.get("confidence")) if isinstance(issue, dict) else 0.0,
        entities=entities,
        metadata=metadata or {},
        slots=dict(slots or {}),
        message_frustration=frustration,
        failed_turns=failed,
    )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
