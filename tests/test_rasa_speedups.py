"""Mend's speed-ups of Rasa keep Rasa's behaviour: bad action-server responses are still refused
with Rasa's error, and events still deserialise to the right types."""
from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.shared.core.events import Event, ReminderScheduled, SlotSet, UserUttered

from bot import rasa_speedups

rasa_speedups.apply()
GOOD = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "case_id", "value": "CASE-501", "timestamp": None}],
     "responses": [{"text": "Done.", "buttons": []}, {"response": "utter_apologize"}]},
    {"events": [{"event": "reminder", "intent": "EXTERNAL_follow_up", "date_time": "2026-11-27T10:00:00",
                 "name": "follow_up", "kill_on_user_msg": False}]},
]
BAD = [
    [],
    {"events": {}},
    {"events": ["slot"]},
    {"events": [{"event": "no_such_event"}]},
    {"events": [{"name": "case_id"}]},
    {"events": [{"event": "slot", "name": "x", "timestamp": "yesterday"}]},
    {"responses": ["Done."]},
]


@pytest.mark.parametrize("response", GOOD)
def test_valid_action_responses_pass_as_with_jsonschema(response):
    jsonschema.validate(response, RemoteAction.action_response_format_spec())  # Rasa's own check agrees
    assert RemoteAction._validate_action_result(None, response) is True


@pytest.mark.parametrize("response", BAD)
def test_invalid_action_responses_are_refused_with_rasas_error(response):
    with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
        RemoteAction._validate_action_result(None, response)


def test_events_deserialise_to_their_types_and_unknown_ones_are_refused():
    for name, cls in (("slot", SlotSet), ("user", UserUttered), ("reminder", ReminderScheduled)):
        assert Event.resolve_by_type(name) is cls
        assert Event.resolve_by_type(name) is cls  # and again, from what was remembered
    assert Event.resolve_by_type("no_such_event", default=SlotSet) is SlotSet
    with pytest.raises(ValueError):
        Event.resolve_by_type("no_such_event")


EVENT_BODIES_GOOD = [
    [{"event": "slot", "name": "handed_off", "value": True}, {"event": "action", "name": "action_listen"}],
    {"event": "bot", "text": "Hi, I'm Ana from the support team."},
    [],
]
EVENT_BODIES_BAD = [
    [{"event": "no_such_event"}],
    [{"name": "handed_off", "value": True}],
    {"event": "slot", "name": "x", "timestamp": "yesterday"},
    ["slot"],
]


def _request(body):
    return type("Request", (), {"json": body})()


def _original_outcome(body):
    """What Rasa's own check (jsonschema.validate on the events schema) says: None or the 400's text."""
    from rasa.shared.utils.schemas.events import EVENTS_SCHEMA

    try:
        jsonschema.validate(body if isinstance(body, list) else [body], EVENTS_SCHEMA)
        return None
    except jsonschema.ValidationError as error:
        return str(error)


@pytest.mark.parametrize("body", EVENT_BODIES_GOOD)
def test_events_the_http_api_accepts_still_pass(body):
    import rasa.server

    assert _original_outcome(body) is None
    assert rasa.server.validate_events_in_request_body(_request(body)) is None


@pytest.mark.parametrize("body", EVENT_BODIES_BAD)
def test_bad_events_get_rasas_400_with_the_same_error(body):
    import rasa.server

    expected = _original_outcome(body)
    assert expected is not None
    with pytest.raises(rasa.server.ErrorResponse) as raised:
        rasa.server.validate_events_in_request_body(_request(body))
    assert raised.value.status == 400 and expected in raised.value.error_info["message"]
