"""Held-out NLU quality gate: fails when issue type or frustration quality drops."""
from __future__ import annotations

import re
from pathlib import Path

from bot.nlu.evaluate import DEV, HOLDOUT, load_examples, score, vader_levels
from tests.rest_client import post

ISSUE_MACRO_F1 = 0.92
FRUSTRATION_ACCURACY = 0.80
ANGRY_RECALL = 0.90


def _words(text: str) -> frozenset:
    return frozenset(re.sub(r"[^a-z0-9€$£@.# ]", " ", text.lower()).split())


def test_holdout_was_never_trained_on():
    trained = [_words(e.text) for path in Path("data").glob("nlu*.yml") for e in load_examples(path)]
    trained_exact = set(trained)
    for path in (HOLDOUT, DEV):
        held_out = [_words(e.text) for e in load_examples(path)]
        assert len(held_out) >= 200
        assert not trained_exact & set(held_out), f"{path.name} shares examples with data/"
    # Not even near-copies (70% of the words in common) of the gating set are trained on.
    near = [h for h in map(_words, (e.text for e in load_examples(HOLDOUT)))
            if any(t and len(h & t) / len(h | t) >= 0.7 for t in trained)]
    assert not near, f"near-copies of held-out examples in data/: {[' '.join(sorted(n)) for n in near][:5]}"


def evaluate(data_path: Path, rasa_url: str) -> dict:
    """bot.nlu.evaluate.evaluate through the live bot's /model/parse, which needs Rasa's auth token."""
    examples = load_examples(data_path)
    texts = [e.text for e in examples]
    parses = [post(f"{rasa_url}/model/parse", {"text": text}) for text in texts]
    mend = score(examples, [p["issue_type"]["name"] for p in parses], [p["frustration"]["level"] for p in parses])
    return {"mend": mend, "vader": score(examples, [], vader_levels(texts))}


def test_quality_on_held_out_set_beats_thresholds_and_vader(live_bot):
    result = evaluate(HOLDOUT, live_bot.rasa_url)
    dev = evaluate(DEV, live_bot.rasa_url)
    mend, vader = result["mend"], result["vader"]
    print("\nheld-out set:\n" + mend.line("Mend") + "\n" + vader.line("VADER-only baseline"))
    print("development set (guided training-data additions, optimistic):\n" + dev["mend"].line("Mend")
          + "\n" + dev["vader"].line("VADER-only baseline"))
    assert mend.issue_macro_f1 >= ISSUE_MACRO_F1
    assert mend.frustration_accuracy >= FRUSTRATION_ACCURACY
    assert mend.angry_recall >= ANGRY_RECALL
    assert mend.frustration_accuracy >= vader.frustration_accuracy + 0.2
    assert mend.angry_recall >= vader.angry_recall + 0.2
