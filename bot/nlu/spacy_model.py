"""The blank English spaCy pipeline Rasa loads: tokens and lookup lemmas, no download."""
from __future__ import annotations

from pathlib import Path

import spacy

from bot.settings import PROJECT_ROOT

DEFAULT_PATH = PROJECT_ROOT / "var" / "spacy" / "en_mend_blank"


def build_blank_pipeline(path: Path = DEFAULT_PATH) -> Path:
    """Create (or refresh) the pipeline on disk; lemma tables come from spacy-lookups-data."""
    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    path.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(path)
    return path
