"""After the bot's action, wait for the customer: Mend answers each message with one action.

Every intent has a rule (data/rules.yml) that names the one action answering it, and RulePolicy
then predicts ``action_listen``. Off the rules, which happens when a trainer replays an altered
story or a conversation an agent took part in (an agent's reply is recorded as an action), no
rule applies after the action and RulePolicy would fall back to ``action_fallback`` at its
fallback threshold. This policy says what Mend's dialogue always does next, listen, with a
confidence above that threshold and below a rule's. It replaced TEDPolicy, which did only this
in Mend and cost about a fifth of the server's CPU per message (see config.yml).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa.core.constants import POLICY_PRIORITY
from rasa.core.policies.policy import Policy, PolicyPrediction
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker


def bot_has_answered(tracker: DialogueStateTracker) -> bool:
    """The last thing that happened is a bot action (other than listening), not a customer message."""
    for event in reversed(tracker.events):
        if isinstance(event, ActionExecuted):
            return event.action_name != ACTION_LISTEN_NAME
        if isinstance(event, UserUttered):
            return False
    return False


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class ListenAfterBotActionPolicy(Policy):
    """Predicts ``action_listen`` once the bot has acted on the customer's message."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # confidence: above RulePolicy's core_fallback_threshold (0.3), below a rule's 1.0.
        return {POLICY_PRIORITY: 1, "confidence": 0.5}

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        return self._resource  # nothing to learn

    def predict_action_probabilities(self, tracker: DialogueStateTracker, domain: Domain,
                                     rule_only_data: Optional[Dict[Text, Any]] = None,
                                     **kwargs: Any) -> PolicyPrediction:
        probabilities = self._default_predictions(domain)
        if bot_has_answered(tracker):
            probabilities[domain.index_for_action(ACTION_LISTEN_NAME)] = float(self.config["confidence"])
        return self._prediction(probabilities)
