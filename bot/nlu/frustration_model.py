"""The trained per-message frustration model, independent of Rasa so it can be tested alone.

Words and character n-grams (robust to typos), cue counts and text shape, and a sentence
embedding (meaning: a failure told flatly has no cue word) feed one calibrated logistic
regression over calm / annoyed / angry (``bot.nlu.text_model.TextClassifier``). The score is
the expected level on a 0..1 scale, so it moves smoothly where the level jumps; the
probabilities are calibrated; the cues stay, as the explanation agents see.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from bot.nlu.cues import CUE_CATEGORIES, CueDetector, CueReport
from bot.nlu.text_model import EMBEDDING_WEIGHT, TextClassifier

LEVELS = ("calm", "annoyed", "angry")
LEVEL_VALUE = {"calm": 0.0, "annoyed": 0.5, "angry": 1.0}
MAX_CHARS = 2000  # longer texts are judged on their first and last part


NOISE_READING = {"calm": 0.6, "annoyed": 0.3, "angry": 0.1}  # a low-confidence calm
_WORDS = re.compile(r"\w+")


def is_noise(text: str) -> bool:
    """Input no customer writes: one "word" longer than any real word, or, beyond the longest
    message the gateway accepts, the same few words repeated. The model would extrapolate
    (length and odd n-grams read as a rant), so such text gets a low-confidence calm."""
    text = text or ""
    words = _WORDS.findall(text.lower())
    if any(len(word) > 60 for word in words):
        return True
    return len(text) > MAX_CHARS and len(words) >= 50 and len(set(words)) / len(words) < 0.1


def clip_text(text: str) -> str:
    """Keep the opening and the close of very long messages: that is where tone shows."""
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return text[:half] + " " + text[-half:]


class FrustrationModel:
    """Train on labelled texts; predict a level, a 0..1 score and the cues that fired."""

    def __init__(self, detector: CueDetector, angry_min_probability: float = 0.4, c: float = 4.0,
                 embedding_weight: float = EMBEDDING_WEIGHT, calibration: str = "temperature") -> None:
        self.detector = detector
        self.angry_min_probability = angry_min_probability
        self.text = TextClassifier(c, embedding_weight, calibration)
        self.trained = False

    # -- features -----------------------------------------------------------------------
    @staticmethod
    def _shape_features(text: str, report: CueReport) -> List[float]:
        counts = [math.log1p(report.counts.get(c, 0)) for c in CUE_CATEGORIES]
        return counts + [
            report.capital_ratio,
            math.log1p(text.count("!")),
            math.log1p(text.count("?")),
            math.log1p(len(text)) / 8.0,
        ]

    def _dense(self, texts: Sequence[str], reports: Sequence[CueReport]) -> np.ndarray:
        rows = [self._shape_features(t, r) for t, r in zip(texts, reports)]
        return np.array(rows, dtype=float).reshape(len(rows), -1) * 2.0

    # -- training and prediction --------------------------------------------------------
    def train(self, texts: Iterable[str], labels: Iterable[str], embeddings: Optional[np.ndarray] = None) -> None:
        """``embeddings`` (one row per text, from ``sentence_encoder``) are computed when not given."""
        texts = [clip_text(t) for t in texts]
        labels = list(labels)
        unknown = sorted(set(labels) - set(LEVELS))
        if unknown:
            raise ValueError(f"unknown frustration labels {unknown}; use one of {list(LEVELS)}")
        if len(set(labels)) < 2:
            raise ValueError("frustration training needs examples of at least two levels")
        reports = [self.detector.detect(t) for t in texts]
        self.text.fit(texts, labels, embeddings, self._dense(texts, reports))
        self.trained = True

    def predict(self, texts: Sequence[str], embeddings: Optional[np.ndarray] = None) -> List[Dict[str, object]]:
        clipped = [clip_text(t or "") for t in texts]
        reports = [self.detector.detect(t) for t in clipped]
        if not self.trained:
            return [self._result({"calm": 1.0}, r) for r in reports]
        probabilities = self.text.predict_proba(clipped, embeddings, self._dense(clipped, reports))
        classes = list(self.text.classes_)
        results = []
        for original, text, row, report in zip(texts, clipped, probabilities, reports):
            probs = {level: float(row[classes.index(level)]) if level in classes else 0.0 for level in LEVELS}
            if not text.strip():
                probs = {"calm": 1.0, "annoyed": 0.0, "angry": 0.0}
            elif is_noise(original):
                probs = dict(NOISE_READING)
            results.append(self._result(probs, report))
        return results

    def _result(self, probs: Dict[str, float], report: CueReport) -> Dict[str, object]:
        score = sum(LEVEL_VALUE[level] * p for level, p in probs.items())
        if probs.get("angry", 0.0) >= self.angry_min_probability:
            level = "angry"
        else:
            level = max(LEVELS, key=lambda lvl: probs.get(lvl, 0.0))
        return {
            "score": round(min(1.0, max(0.0, score)), 4),
            "level": level,
            "cues": report.cues,
            "calm_cues": list(getattr(report, "calm_cues", []) or []),
            "probabilities": {k: round(v, 4) for k, v in probs.items()},
        }

    # -- persistence --------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        import skops.io as sio

        sio.dump({**self.text.state(), "trained": self.trained}, Path(directory) / "frustration.skops")

    @classmethod
    def load(cls, directory: Path, detector: CueDetector, angry_min_probability: float = 0.4) -> Optional["FrustrationModel"]:
        from bot.nlu.text_model import load_trusted

        path = Path(directory) / "frustration.skops"
        if not path.exists():
            return None
        state = load_trusted(path)
        if "embedding_weight" not in state:
            raise ValueError(f"{path.name} was saved by an older Mend; retrain the model")
        model = cls(detector, angry_min_probability)
        model.text = TextClassifier.from_state(state)
        model.trained = bool(state["trained"])
        return model
