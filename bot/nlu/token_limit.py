"""Caps the number of tokens the featurizers and DIET see in one message.

The gateway refuses messages over 2,000 characters, but Rasa's own HTTP API does not: a 100 KB
paste (about 20,000 tokens) made DIET's transformer take 12-15 GB of memory. Tone and topic show
in a message's opening and close, so the cap keeps those and drops the middle.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData


def capped(tokens: List[Any], max_tokens: int, tail: int) -> List[Any]:
    """The first ``max_tokens - tail`` tokens and the last ``tail``; unchanged when short enough."""
    if max_tokens <= 0 or len(tokens) <= max_tokens:
        return tokens
    tail = max(0, min(tail, max_tokens))
    head = max_tokens - tail
    return tokens[:head] + (tokens[-tail:] if tail else [])


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class TokenLimiter(GraphComponent):
    """Place right after the tokenizer: every later component sees at most ``max_tokens`` tokens."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"max_tokens": 300, "tail_tokens": 60}

    def __init__(self, config: Dict[Text, Any]) -> None:
        merged = {**self.get_default_config(), **config}
        self._max = int(merged["max_tokens"])
        self._tail = int(merged["tail_tokens"])

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "TokenLimiter":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            tokens = message.get(TOKENS_NAMES[TEXT])
            if tokens and len(tokens) > self._max:
                message.set(TOKENS_NAMES[TEXT], capped(tokens, self._max, self._tail))
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
