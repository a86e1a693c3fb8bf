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
