"""Rasa graph components that add Mend's labels to every parse result.

``SentenceEmbedder`` computes each message's sentence embedding once (kept on the message, not
in the output) for the two classifiers after it. ``FrustrationClassifier`` is trained from the
frustration labels on the NLU examples (intent-level or example-level
``metadata: {frustration: calm|annoyed|angry}`` in ``data/nlu.yml``), so trainers improve it by
adding examples. ``IssueTypeClassifier`` gives the issue type of ``docs/taxonomy.md``. Both
write top-level keys that appear in ``/model/parse`` and in the tracker.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, METADATA, METADATA_EXAMPLE, METADATA_INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot import rasa_speedups
from bot.nlu.cues import detector_for
from bot.nlu.frustration_model import LEVELS, FrustrationModel, is_noise
from bot.nlu.text_model import predict_proba as text_model_proba

logger = logging.getLogger(__name__)
rasa_speedups.apply()  # Rasa's server imports this module to load the pipeline

ISSUE_TYPES = ("delivery", "billing", "product", "account", "technical", "service", "other")
# Where SentenceEmbedder leaves a message's embedding for the classifiers (never in the output).
EMBEDDING = "mend_sentence_embedding"


def embeddings_of(messages: Sequence[Message]) -> np.ndarray:
    """The messages' sentence embeddings: those SentenceEmbedder stored, the rest computed here
    (a classifier used without the embedder still works, at the embedder's cost)."""
    from bot.nlu.sentence_encoder import DIMENSION, encode

    result = np.zeros((len(messages), DIMENSION), dtype=np.float32)
    missing = []
    for index, message in enumerate(messages):
        stored = message.get(EMBEDDING)
        if stored is not None and len(stored) == DIMENSION:
            result[index] = stored
        else:
            missing.append(index)
    if missing:
        vectors = encode([messages[i].get(TEXT) or "" for i in missing])
        for row, index in enumerate(missing):
            result[index] = vectors[row]
            messages[index].set(EMBEDDING, vectors[row])
    return result


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEmbedder(GraphComponent):
    """Embeds each message once with the pretrained sentence encoder (bot/nlu/sentence_encoder.py).

    Place it before Mend's classifiers. It adds no Rasa features (DIET is unchanged): the
    vector stays on the message for FrustrationClassifier and IssueTypeClassifier to read.
    The encoder is loaded (and its files' hashes checked) when the model is loaded.
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    def __init__(self, config: Dict[Text, Any]) -> None:
        from bot.nlu.sentence_encoder import get_encoder

        self._config = config
        get_encoder()  # fail at load time, with the package to install, not on the first message

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "SentenceEmbedder":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        embeddings_of(messages)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        """All training examples at once: the encoder batches them."""
        embeddings_of([m for m in training_data.intent_examples if m.get(TEXT)])
        return training_data


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
        return {"angry_min_probability": 0.4, "C": 4.0, "lexicon": None, "unlabelled_default": "calm",
                "embedding_weight": 2.0, "calibration": "temperature"}

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 model: Optional[FrustrationModel] = None) -> None:
        self._config = {**self.get_default_config(), **config}
        self._storage = model_storage
        self._resource = resource
        self._model = model or FrustrationModel(
            detector_for(self._config["lexicon"]), self._config["angry_min_probability"], self._config["C"],
            float(self._config["embedding_weight"]), self._config["calibration"],
        )

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "FrustrationClassifier":
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        examples, labels = [], []
        for example in training_data.intent_examples:
            label = frustration_label(example, self._config["unlabelled_default"])
            if label is None:
                continue
            if label not in LEVELS:
                raise ValueError(
                    f"Example '{example.get(TEXT)}' (intent '{example.get(INTENT)}') has frustration "
                    f"label '{label}'; use one of {list(LEVELS)}."
                )
            examples.append(example)
            labels.append(label)
        self._model.train([e.get(TEXT) for e in examples], labels, embeddings_of(examples))
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
        embeddings = embeddings_of(messages) if self._model.trained and messages else None
        predictions = self._model.predict([m.get(TEXT) or "" for m in messages], embeddings)
        for message, prediction in zip(messages, predictions):
            message.set("frustration", prediction, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class IssueTypeClassifier(GraphComponent):
    """Issue type: a calibrated text model of its own blended with DIET's intent ranking.

    ``complain_<type>`` intents carry the type; every other intent is ``other``. The text
    model (words, characters and the sentence embedding; ``bot.nlu.text_model``) gives a
    probability to each of the seven types, ``other`` included, and is blended with the
    probability mass DIET puts on each type (the two err on different messages). The
    confidence is the blend's probability of the chosen type: DIET alone was overconfident
    (a refund request read as ``other`` at 0.99).
    """

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"intent_prefix": "complain_", "text_model_weight": 0.7, "C": 10.0,
                "embedding_weight": 2.0, "calibration": "temperature"}

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
        from bot.nlu.text_model import save_text_model, train_text_model

        examples = [e for e in training_data.intent_examples if e.get(TEXT)]
        self._text_model = train_text_model(
            [e.get(TEXT) for e in examples], [self.issue_type_of(e.get(INTENT)) for e in examples],
            self._config["C"], embeddings_of(examples), float(self._config["embedding_weight"]),
            self._config["calibration"],
        )
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

    def _text_mass(self, messages: List[Message]) -> List[Dict[str, float]]:
        texts = [m.get(TEXT) or "" for m in messages]
        if self._text_model is None or not texts:
            return [{} for _ in texts]
        probabilities = text_model_proba(self._text_model, texts, embeddings_of(messages))
        classes = list(self._text_model.classes_)
        return [{t: float(row[classes.index(t)]) for t in ISSUE_TYPES if t in classes} if text.strip() else {}
                for text, row in zip(texts, probabilities)]

    def process(self, messages: List[Message]) -> List[Message]:
        weight = float(self._config["text_model_weight"])
        for message, text_mass in zip(messages, self._text_mass(messages)):
            diet = self._diet_mass(message)
            if not (message.get(TEXT) or "").strip() or not (diet or text_mass) or is_noise(message.get(TEXT)):
                message.set("issue_type", {"name": "other", "confidence": 0.0}, add_to_output=True)
                continue
            if not text_mass:
                blended = diet
            elif not diet:
                blended = text_mass
            else:
                blended = {t: (1 - weight) * diet.get(t, 0.0) + weight * text_mass.get(t, 0.0) for t in ISSUE_TYPES}
            best = max(blended, key=blended.get)
            message.set("issue_type", {"name": best, "confidence": round(blended[best], 4)}, add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data
