"""Targeted speed-ups of Rasa 3.6, applied when Mend's NLU components or tracker store are imported.

Each one was found in py-spy profiles of Mend's Rasa server under the latency benchmark
(``bench/latency.py``) and keeps Rasa's behaviour:

- Rasa checks every action-server response with ``jsonschema.validate(result, schema)``, which
  re-checks the schema, builds a validator and tries each event against all 23 event schemas
  (``oneOf``): 10-25% of the server's CPU per message. The 23 alternatives pin distinct values
  of ``event``, so "exactly one alternative matches" is the same as "the alternative named by
  ``event`` matches"; each is compiled once with ``fastjsonschema`` and an event is checked
  against its own. A response this rejects is re-checked by jsonschema, so the error raised is
  exactly Rasa's.
- The HTTP API checks the events of ``POST``/``PUT .../tracker/events`` (the gateway records an
  agent's takeover, replies and handbacks that way) with ``jsonschema.validate``, which checks the
  events schema itself again on every request: about a tenth of the server's CPU under the gateway
  benchmark. The schema is checked once; the events are validated exactly as before (the same
  validator class, the same best-matching error in the same 400 response).
- ``Event.resolve_by_type`` walks every subclass of ``Event`` for each event it deserialises
  (each tracker load, each action response): 3-5% of CPU. Found classes are now remembered.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Dict, Optional, Text, Type

from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event

_ORIGINAL_RESOLVE_BY_TYPE: Callable[..., Optional[Type[Event]]] = Event.resolve_by_type
_EVENT_CLASSES: Dict[Text, Type[Event]] = {}


class _ResponseCheck:
    """The action response schema, compiled: the envelope, then each event by its type."""

    def __init__(self) -> None:
        import fastjsonschema

        spec = RemoteAction.action_response_format_spec()
        event_schema = spec["properties"]["events"]["items"]
        alternatives = event_schema["oneOf"]
        names = [alternative["properties"]["event"]["const"] for alternative in alternatives]
        if len(set(names)) != len(names):
            raise ValueError("event schemas no longer pin distinct event names")
        common = {key: value for key, value in event_schema.items() if key != "oneOf"}
        self.by_event = {name: fastjsonschema.compile({**common, "allOf": [alternative]})
                         for name, alternative in zip(names, alternatives)}
        envelope = dict(spec, properties=dict(spec["properties"], events={"type": "array"}))
        self.envelope = fastjsonschema.compile(envelope)

    def passes(self, result: Any) -> bool:
        from fastjsonschema import JsonSchemaException

        try:
            self.envelope(result)
            for event in result.get("events") or []:
                check = self.by_event.get(event.get("event")) if isinstance(event, dict) else None
                if check is None:
                    return False
                check(event)
        except JsonSchemaException:
            return False
        return True


@lru_cache(maxsize=1)
def _compiled_response_check() -> Optional[_ResponseCheck]:
    try:
        return _ResponseCheck()
    except (KeyError, TypeError, ValueError):  # a Rasa whose schema has another shape: jsonschema only
        return None


@lru_cache(maxsize=1)
def _response_validator() -> Any:
    from jsonschema.validators import validator_for

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
    from jsonschema import ValidationError

    check = _compiled_response_check()
    if check is not None and check.passes(result):
        return True
    try:
        _response_validator().validate(result)
        return True  # the two libraries disagree at the edges: jsonschema is Rasa's reference
    except ValidationError as error:
        error.message += (". Failed to validate Action server response from API, make sure your response "
                          "from the Action endpoint is valid.")
        raise error


def _resolve_by_type(type_name: Text, default: Optional[Type[Event]] = None) -> Optional[Type[Event]]:
    known = _EVENT_CLASSES.get(type_name)
    if known is not None:
        return known
    found = _ORIGINAL_RESOLVE_BY_TYPE(type_name, default)
    if found is not None and found is not default:
        _EVENT_CLASSES[type_name] = found
    return found


@lru_cache(maxsize=1)
def _events_validator() -> Any:
    from jsonschema.validators import validator_for
    from rasa.shared.utils.schemas.events import EVENTS_SCHEMA

    validator_class = validator_for(EVENTS_SCHEMA)
    validator_class.check_schema(EVENTS_SCHEMA)
    return validator_class(EVENTS_SCHEMA)


def _validate_events_in_request_body(request: Any) -> None:
    """``rasa.server.validate_events_in_request_body`` with the schema checked once."""
    from http import HTTPStatus

    from jsonschema.exceptions import best_match
    from rasa.server import ErrorResponse, _docs

    events = request.json if isinstance(request.json, list) else [request.json]
    error = best_match(_events_validator().iter_errors(events))
    if error is not None:
        raise ErrorResponse(HTTPStatus.BAD_REQUEST, "BadRequest",
                            f"Failed to validate the events format. "
                            f"For more information about the format visit the docs. Error: {error}",
                            help_url=_docs("/pages/http-api")) from error


def apply() -> None:
    import rasa.server

    rasa.server.validate_events_in_request_body = _validate_events_in_request_body
    if RemoteAction._validate_action_result is not _validate_action_result:
        RemoteAction._validate_action_result = _validate_action_result  # type: ignore[assignment]
    if Event.__dict__.get("resolve_by_type") is not _RESOLVE_BY_TYPE:
        Event.resolve_by_type = _RESOLVE_BY_TYPE  # type: ignore[assignment]


_RESOLVE_BY_TYPE = staticmethod(_resolve_by_type)
