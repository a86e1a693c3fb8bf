"""Rasa graph components that add Mend's labels to every parse result.

``FrustrationClassifier`` is trained from the frustration labels on the NLU examples
(intent-level or example-level ``metadata: {frustration: calm|annoyed|angry}`` in
``data/nlu.yml``), so trainers improve it by adding examples. ``IssueTypeClassifier``
turns the intent ranking into the issue-type contract of ``docs/taxonomy.md``.
Both write top-level keys that appear in ``/model/parse`` and in the tracker.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, METADATA, METADATA_EXAMPLE, METADATA_INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot import rasa_speedups
from bot.nlu.cues import detector_for
from bot.nlu.frustration_model import LEVELS, FrustrationModel
from bot.nlu.text_model import predict_proba as text_model_proba

logger = logging.getLogger(__name__)
rasa_speedups.apply()  # Rasa's server imports this module to load the pipeline

ISSUE_TYPES = ("delivery", "billing", "product", "account", "technical", "service", "other")


def frustration_label(message: Message, default: str = "calm") -> Optional[str]:
    """The trainer's label for an example: example metadata wins over intent metadata."""
    metadata = message.get(METADATA) or {}
    for scope in (METADATA_EXAMPLE, METADATA_INTENT):
        value = (metadata.get(scope) or {}).get("frustration") if isinstance(metadata.get(scope), dict) else None
        if value:
            return str(value).strip().lower()
    return default if message.get(TEXT) else None


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class FrustrationClassifier(GraphComponent):
    """Scores how upset the customer is in each message and says which cues fired."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"angry_min_probability": 0.4, "C": 4.0, "lexicon": None, "unlabelled_default": "calm"}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 model: Optional[FrustrationModel] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._model = model or FrustrationModel(
            detector_for(self._config["lexicon"]), self._config["angry_min_probability"], self._config["C"]
        )

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "FrustrationClassifier":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        texts, labels = [], []
        for example in training_data.intent_examples:
            label = frustration_label(example, self._config["unlabelled_default"])
            if label is None:
                continue
            if label not in LEVELS:
                raise ValueError(
                    f"Example '{example.get(TEXT)}' (intent '{example.get(INTENT)}') has frustration "
                    f"label '{label}'; use one of {list(LEVELS)}."
                )
            texts.append(example.get(TEXT))
            labels.append(label)
        self._model.train(texts, labels)
        with self._storage.write_to(self._resource) as directory:
            self._model.save(directory)
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "FrustrationClassifier":
        merged = {**cls.get_default_config(), **config}
        try:
            with model_storage.read_from(resource) as directory:
                model = FrustrationModel.load(directory, detector_for(merged["lexicon"]), merged["angry_min_probability"])
        except ValueError as error:
            logger.warning("Frustration model not loaded (%s); every message will read as calm.", error)
            model = None
        return cls(config, model_storage, resource, model)

    def process(self, messages: List[Message]) -> List[Message]:
        predictions = self._model.predict([m.get(TEXT) or "" for m in messages])
        for message, prediction in zip(messages, predictions):
            message.set("frustration", prediction, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class IssueTypeClassifier(GraphComponent):
    """Issue type of a complaint: DIET's intent ranking blended with a text model of its own.

    ``complain_<type>`` intents carry the type. A word and character n-gram logistic
    regression, trained on the same examples, is blended with the probability mass
    DIET puts on each type: the two err on different messages.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"intent_prefix": "complain_", "text_model_weight": 0.5, "C": 10.0}

    def __init__(self, config: Dict[Text, Any], model_storage: Optional[ModelStorage] = None,
                 resource: Optional[Resource] = None, text_model: Any = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._prefix = self._config["intent_prefix"]
        self._storage = model_storage
        self._resource = resource
        self._text_model = text_model

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "IssueTypeClassifier":
        return cls(config, model_storage, resource)

    def issue_type_of(self, intent_name: Optional[str]) -> str:
        if intent_name and intent_name.startswith(self._prefix):
            candidate = intent_name[len(self._prefix):]
            if candidate in ISSUE_TYPES:
                return candidate
        return "other"

    def train(self, training_data: TrainingData) -> Resource:
        from bot.nlu.text_model import train_text_model, save_text_model

        examples = [e for e in training_data.intent_examples if e.get(TEXT)]
        self._text_model = train_text_model([e.get(TEXT) for e in examples],
                                            [self.issue_type_of(e.get(INTENT)) for e in examples], self._config["C"])
        with self._storage.write_to(self._resource) as directory:
            save_text_model(self._text_model, directory)
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "IssueTypeClassifier":
        from bot.nlu.text_model import load_text_model

        try:
            with model_storage.read_from(resource) as directory:
                text_model = load_text_model(directory)
        except ValueError as error:
            logger.warning("Issue-type text model not loaded (%s); using DIET's ranking alone.", error)
            text_model = None
        return cls(config, model_storage, resource, text_model)

    def _diet_mass(self, message: Message) -> Dict[str, float]:
        ranking = message.get("intent_ranking") or ([message.get(INTENT)] if message.get(INTENT) else [])
        mass: Dict[str, float] = {}
        for entry in ranking:
            if entry.get("name") == "nlu_fallback":
                continue
            issue = self.issue_type_of(entry.get("name"))
            mass[issue] = mass.get(issue, 0.0) + float(entry.get("confidence") or 0.0)
        total = sum(mass.values())
        return {k: v / total for k, v in mass.items()} if total else {}

    def process(self, messages: List[Message]) -> List[Message]:
        """Two stages: DIET decides whether this is a complaint at all (it sees every intent);
        the blend of DIET and the text model decides which kind of complaint."""
        texts = [m.get(TEXT) or "" for m in messages]
        text_probs = text_model_proba(self._text_model, texts) if (self._text_model is not None and texts) else None
        weight = float(self._config["text_model_weight"])
        for index, message in enumerate(messages):
            diet = self._diet_mass(message)
            if not diet:
                message.set("issue_type", {"name": "other", "confidence": 0.0}, add_to_output=True)
                continue
            complaint_mass = 1.0 - diet.get("other", 0.0)
            if complaint_mass < 0.5:
                message.set("issue_type", {"name": "other", "confidence": round(1.0 - complaint_mass, 4)},
                            add_to_output=True)
                continue
            types = [t for t in ISSUE_TYPES if t != "other"]
            blended = {t: diet.get(t, 0.0) / complaint_mass for t in types}
            if text_probs is not None and texts[index].strip():
                classes = list(self._text_model.classes_)
                text_mass = {t: float(text_probs[index][classes.index(t)]) if t in classes else 0.0 for t in types}
                text_total = sum(text_mass.values()) or 1.0
                blended = {t: (1 - weight) * blended[t] + weight * text_mass[t] / text_total for t in types}
            best = max(blended, key=blended.get)
            message.set("issue_type", {"name": best, "confidence": round(blended[best] * complaint_mass, 4)},
                        add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
