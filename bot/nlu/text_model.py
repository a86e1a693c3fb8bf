"""Mend's text classifier: words, character n-grams and a sentence embedding, calibrated.

Word and character n-grams (tf-idf, robust to typos) catch the phrasing of our own examples;
the sentence embedding (``bot.nlu.sentence_encoder``) carries meaning to phrasings never seen.
One logistic regression reads them all (averaging two models' probabilities ruined their
calibration), wrapped in ``CalibratedClassifierCV`` so that a 0.8 means right four times in
five. Saved with skops; only scikit-learn, NumPy and SciPy types are trusted on load.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

FILE_NAME = "text_model.skops"
SAFE_MODULES = {"sklearn", "numpy", "scipy", "builtins"}
# Each tf-idf block has unit norm per text, as has the embedding: weighted 2 the embedding
# counts as much as words and characters together under the same regularisation.
EMBEDDING_WEIGHT = 2.0


class TextClassifier:
    """Calibrated logistic regression over n-grams, optional dense features and an embedding."""

    def __init__(self, c: float = 10.0, embedding_weight: float = EMBEDDING_WEIGHT,
                 calibration: str = "temperature", folds: int = 3) -> None:
        self.c = c
        self.embedding_weight = embedding_weight
        self.calibration = calibration
        self.folds = folds
        self.words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True)
        self.chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True,
                                     lowercase=True)
        self.classifier: Any = None
        self.temperature = 1.0  # for calibration="temperature": logits are divided by it

    @property
    def classes_(self) -> Sequence[str]:
        return list(self.classifier.classes_)

    def features(self, texts: Sequence[str], embeddings: Optional[np.ndarray],
                 dense: Optional[np.ndarray] = None) -> sparse.csr_matrix:
        """The design matrix: tf-idf blocks, then ``dense`` (already scaled), then the embedding."""
        blocks = [self.words.transform(texts), self.chars.transform(texts)]
        if dense is not None:
            blocks.append(sparse.csr_matrix(np.asarray(dense, dtype=float)))
        if self.embedding_weight:
            if embeddings is None:
                from bot.nlu.sentence_encoder import encode

                embeddings = encode(texts)
            blocks.append(sparse.csr_matrix(np.asarray(embeddings, dtype=float) * self.embedding_weight))
        return sparse.hstack(blocks).tocsr()

    def fit(self, texts: Sequence[str], labels: Sequence[str], embeddings: Optional[np.ndarray] = None,
            dense: Optional[np.ndarray] = None) -> "TextClassifier":
        texts = list(texts)
        self.words.fit(texts)
        self.chars.fit(texts)
        matrix = self.features(texts, embeddings, dense)
        base = LogisticRegression(C=self.c, max_iter=3000, class_weight="balanced")
        smallest = min(np.unique(labels, return_counts=True)[1])
        folds = min(self.folds, int(smallest))
        if self.calibration == "none" or folds < 2:
            self.classifier = base.fit(matrix, np.asarray(labels))
        elif self.calibration == "temperature":
            self.classifier = base.fit(matrix, np.asarray(labels))
            self.temperature = fit_temperature(base, matrix, np.asarray(labels), folds)
        else:
            self.classifier = CalibratedClassifierCV(
                base, method=self.calibration, cv=StratifiedKFold(folds, shuffle=True, random_state=7)
            ).fit(matrix, np.asarray(labels))
        return self

    def predict_proba(self, texts: Sequence[str], embeddings: Optional[np.ndarray] = None,
                      dense: Optional[np.ndarray] = None) -> np.ndarray:
        matrix = self.features(list(texts), embeddings, dense)
        if self.calibration == "temperature":
            return softmax(logits(self.classifier, matrix) / self.temperature)
        return self.classifier.predict_proba(matrix)

    # -- persistence (plain scikit-learn objects and numbers only) -------------------------
    def state(self) -> Dict[str, Any]:
        return {"words": self.words, "chars": self.chars, "classifier": self.classifier, "c": self.c,
                "embedding_weight": self.embedding_weight, "calibration": self.calibration,
                "folds": self.folds, "temperature": float(self.temperature)}

    @classmethod
    def from_state(cls, state: Dict[str, Any]) -> "TextClassifier":
        model = cls(float(state["c"]), float(state["embedding_weight"]), str(state["calibration"]),
                    int(state["folds"]))
        model.words, model.chars, model.classifier = state["words"], state["chars"], state["classifier"]
        model.temperature = float(state.get("temperature", 1.0))
        return model


def logits(classifier: LogisticRegression, matrix: Any) -> np.ndarray:
    """One column per class (a binary model's single score becomes two columns)."""
    scores = classifier.decision_function(matrix)
    return np.column_stack([np.zeros_like(scores), scores]) if scores.ndim == 1 else scores


def softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def fit_temperature(base: LogisticRegression, matrix: Any, labels: np.ndarray, folds: int) -> float:
    """Temperature scaling: the one divisor of the logits that makes cross-validated predictions
    most likely. It keeps the ranking and the predicted class, and only fixes over- or
    underconfidence, where per-class calibration maps distort a multi-class model.

    Each fold's model starts from the fitted ``base`` (warm start): the regularised loss has one
    minimum, so the result is the same and the folds cost a fraction of a cold fit."""
    from scipy.optimize import minimize_scalar
    from sklearn.base import clone

    held_out = np.zeros((len(labels), len(base.classes_)))
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=7).split(matrix, labels):
        fold = clone(base).set_params(warm_start=True)
        fold.coef_, fold.intercept_ = base.coef_.copy(), base.intercept_.copy()
        fold.fit(matrix[train], labels[train])
        held_out[test] = logits(fold, matrix[test])
    truth = np.searchsorted(base.classes_, labels)

    def nll(log_t: float) -> float:
        probs = softmax(held_out / np.exp(log_t))
        return float(-np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-12, None)).mean())

    return float(np.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def train_text_model(texts: Sequence[str], labels: Sequence[str], c: float = 10.0,
                     embeddings: Optional[np.ndarray] = None, embedding_weight: float = EMBEDDING_WEIGHT,
                     calibration: str = "temperature") -> TextClassifier:
    """The issue-type text model over every type, ``other`` included."""
    return TextClassifier(c, embedding_weight, calibration).fit(texts, labels, embeddings)


def predict_proba(model: TextClassifier, texts: Sequence[str], embeddings: Optional[np.ndarray] = None) -> Any:
    return model.predict_proba(list(texts), embeddings)


def save_text_model(model: TextClassifier, directory: Path) -> None:
    import skops.io as sio

    sio.dump(model.state(), Path(directory) / FILE_NAME)


def load_trusted(path: Path) -> Any:
    """Load a skops file, trusting only scikit-learn, NumPy and SciPy types."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    unsafe = [t for t in untrusted if t.split(".")[0] not in SAFE_MODULES]
    if unsafe:
        raise ValueError(f"refusing to load {path.name}: unexpected types {unsafe}")
    return sio.load(path, trusted=untrusted)


def load_text_model(directory: Path) -> TextClassifier:
    path = Path(directory) / FILE_NAME
    if not path.exists():
        raise ValueError(f"{path} is missing")
    state = load_trusted(path)
    if not isinstance(state, dict) or "classifier" not in state:
        raise ValueError(f"{path} was saved by an older Mend; retrain the model")
    return TextClassifier.from_state(state)
