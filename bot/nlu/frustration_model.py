"""The trained per-message frustration model, independent of Rasa so it can be tested alone.

Words and character n-grams (robust to typos) plus cue counts and text shape feed a
multinomial logistic regression over calm / annoyed / angry. The score is the expected
level on a 0..1 scale, so it moves smoothly where the level jumps.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np
from scipy.sparse import csr_matrix, hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bot.nlu.cues import CUE_CATEGORIES, CueDetector, CueReport

LEVELS = ("calm", "annoyed", "angry")
LEVEL_VALUE = {"calm": 0.0, "annoyed": 0.5, "angry": 1.0}
MAX_CHARS = 2000  # longer texts are judged on their first and last part


def clip_text(text: str) -> str:
    """Keep the opening and the close of very long messages: that is where tone shows."""
    if len(text) <= MAX_CHARS:
        return text
    half = MAX_CHARS // 2
    return text[:half] + " " + text[-half:]


class FrustrationModel:
    """Train on labelled texts; predict a level, a 0..1 score and the cues that fired."""

    def __init__(self, detector: CueDetector, angry_min_probability: float = 0.4, c: float = 4.0) -> None:
        self.detector = detector
        self.angry_min_probability = angry_min_probability
        self.words = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, lowercase=True)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, lowercase=True)
        self.classifier = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
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

    def _features(self, texts: Sequence[str], reports: Sequence[CueReport]) -> csr_matrix:
        dense = np.array([self._shape_features(t, r) for t, r in zip(texts, reports)], dtype=float)
        return hstack([self.words.transform(texts), self.chars.transform(texts), csr_matrix(dense * 2.0)]).tocsr()

    # -- training and prediction --------------------------------------------------------
    def train(self, texts: Iterable[str], labels: Iterable[str]) -> None:
        texts = [clip_text(t) for t in texts]
        labels = list(labels)
        unknown = sorted(set(labels) - set(LEVELS))
        if unknown:
            raise ValueError(f"unknown frustration labels {unknown}; use one of {list(LEVELS)}")
        if len(set(labels)) < 2:
            raise ValueError("frustration training needs examples of at least two levels")
        reports = [self.detector.detect(t) for t in texts]
        self.words.fit(texts)
        self.chars.fit(texts)
        self.classifier.fit(self._features(texts, reports), labels)
        self.trained = True

    def predict(self, texts: Sequence[str]) -> List[Dict[str, object]]:
        clipped = [clip_text(t or "") for t in texts]
        reports = [self.detector.detect(t) for t in clipped]
        if not self.trained:
            return [self._result({"calm": 1.0}, r) for r in reports]
        probabilities = self.classifier.predict_proba(self._features(clipped, reports))
        classes = list(self.classifier.classes_)
        results = []
        for text, row, report in zip(clipped, probabilities, reports):
            probs = {level: float(row[classes.index(level)]) if level in classes else 0.0 for level in LEVELS}
            if not text.strip():
                probs = {"calm": 1.0, "annoyed": 0.0, "angry": 0.0}
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
            "probabilities": {k: round(v, 4) for k, v in probs.items()},
        }

    # -- persistence --------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        import skops.io as sio

        sio.dump(
            {"words": self.words, "chars": self.chars, "classifier": self.classifier, "trained": self.trained},
            Path(directory) / "frustration.skops",
        )

    @classmethod
    def load(cls, directory: Path, detector: CueDetector, angry_min_probability: float = 0.4) -> Optional["FrustrationModel"]:
        from bot.nlu.text_model import load_trusted

        path = Path(directory) / "frustration.skops"
        if not path.exists():
            return None
        state = load_trusted(path)
        model = cls(detector, angry_min_probability)
        model.words, model.chars, model.classifier = state["words"], state["chars"], state["classifier"]
        model.trained = bool(state["trained"])
        return model
