"""Held-out NLU quality gate: fails when issue type or frustration quality drops."""
from __future__ import annotations

from bot.nlu.evaluate import HOLDOUT, evaluate, load_examples

ISSUE_MACRO_F1 = 0.92
FRUSTRATION_ACCURACY = 0.80
ANGRY_RECALL = 0.90


def test_holdout_was_never_trained_on():
    from pathlib import Path

    trained = set()
    for path in Path("data").glob("*.yml"):
        if "nlu" in path.name:
            trained |= {e.text.strip().lower() for e in load_examples(path)}
    held_out = {e.text.strip().lower() for e in load_examples(HOLDOUT)}
    assert len(held_out) >= 200 and not (held_out & trained)


def test_quality_on_held_out_set_beats_thresholds_and_vader(live_bot):
    result = evaluate(data_path=HOLDOUT, rasa_url=live_bot.rasa_url)
    mend, vader = result["mend"], result["vader"]
    print("\n" + mend.line("Mend") + "\n" + vader.line("VADER-only baseline"))
    assert mend.issue_macro_f1 >= ISSUE_MACRO_F1
    assert mend.frustration_accuracy >= FRUSTRATION_ACCURACY
    assert mend.angry_recall >= ANGRY_RECALL
    assert mend.frustration_accuracy >= vader.frustration_accuracy + 0.2
    assert mend.angry_recall >= vader.angry_recall + 0.2
