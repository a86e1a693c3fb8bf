"""Held-out NLU quality gate: fails when issue type or frustration quality drops."""
from __future__ import annotations

import re
from pathlib import Path

from bot.nlu.evaluate import DEV, HEADER, HOLDOUT, load_examples, score_parses, vader_scores
from tests.rest_client import post

# Regression floors on the rewritten held-out set (tests/HOLDOUT.md), a little under what the model
# reaches there (0.911 / 0.804 / 0.746 when they were set). Issue 10's targets are higher (0.93 /
# 0.85 / 0.90) and not met yet: raise these as the model gets there, never lower them to pass.
ISSUE_MACRO_F1 = 0.88
FRUSTRATION_ACCURACY = 0.78
ANGRY_RECALL = 0.70
# Calibration: a confidence of 0.8 is right about four times in five (top-label expected
# calibration error over 10 bins), for the frustration level and for the issue type.
MAX_ECE = 0.08
# The frustration score ranks frustrated (annoyed or angry) messages above calm ones.
FRUSTRATION_AUC = 0.90


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
    return {"mend": score_parses(examples, parses), "vader": vader_scores(examples)}


def test_quality_on_held_out_set_beats_thresholds_and_vader(live_bot):
    result = evaluate(HOLDOUT, live_bot.rasa_url)
    dev = evaluate(DEV, live_bot.rasa_url)
    mend, vader = result["mend"], result["vader"]
    print("\nheld-out set:\n" + HEADER + "\n" + mend.line("Mend") + "\n" + vader.line("VADER-only baseline"))
    print("development set (guided training-data additions, optimistic):\n" + HEADER + "\n" + dev["mend"].line("Mend")
          + "\n" + dev["vader"].line("VADER-only baseline"))
    assert mend.issue_macro_f1 >= ISSUE_MACRO_F1
    assert mend.frustration_accuracy >= FRUSTRATION_ACCURACY
    assert mend.angry_recall >= ANGRY_RECALL
    assert mend.frustration_accuracy >= vader.frustration_accuracy + 0.2
    assert mend.angry_recall >= vader.angry_recall + 0.2
    assert mend.frustration_auc >= FRUSTRATION_AUC
    assert mend.frustration_auc >= vader.frustration_auc + 0.1
    assert mend.frustration_ece <= MAX_ECE, "frustration probabilities are not calibrated"
    assert mend.issue_ece <= MAX_ECE, "issue-type confidences are not calibrated"
