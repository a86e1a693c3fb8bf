"""Frustration cues as agents see them: calm evidence apart, sarcasm and negation read in context."""
from __future__ import annotations

import pytest

from bot.nlu.cues import CALM_CUES, CUE_CATEGORIES, CueDetector


@pytest.fixture(scope="module")
def detector() -> CueDetector:
    return CueDetector()


def kinds(cues):
    return {c.split(":")[0] for c in cues}


@pytest.mark.parametrize("text, category, phrase", [
    ("Thanks, that works!", "gratitude", "that works"),
    ("thank you so much for sorting it", "gratitude", "thank you"),
    ("Perfect, I appreciate it", "gratitude", "Perfect"),
    ("cheers, all good now", "gratitude", "all good"),
    ("Thanks a lot for your help", "gratitude", "Thanks a lot"),       # praise in a calm message is thanks
    ("Could you please check my order?", "politeness", "Could you"),
    ("Would you mind sending the label again", "politeness", "Would you mind"),
    ("Sorry to bother you, kindly resend the invoice", "politeness", "Sorry to bother"),
    ("no worries, whenever you can", "politeness", "no worries"),
])
def test_gratitude_and_politeness_are_calm_evidence_not_frustration(detector, text, category, phrase):
    report = detector.detect(text)
    assert f'{category}: "{phrase}"' in report.calm_cues, report.calm_cues
    assert report.counts[category] >= 1
    assert not any(c.startswith(category) for c in report.cues)  # never shown as a reason for frustration


def test_calm_categories_are_model_features(detector):
    assert set(CALM_CUES) <= set(CUE_CATEGORIES)
    assert set(detector.detect("hello").counts) == set(CUE_CATEGORIES)


@pytest.mark.parametrize("text", [
    "thanks for nothing",
    "Well thanks a lot, this is the third time I ask",
    "Great job, you lost it AGAIN. Ridiculous.",
    "oh perfect, just perfect",
    "Thank you for nothing, useless",
    "Wonderful service, still waiting after two weeks",
])
def test_sarcasm_wins_over_gratitude(detector, text):
    report = detector.detect(text)
    assert "sarcasm" in kinds(report.cues), report.cues
    assert report.counts["gratitude"] == 0 and not any(c.startswith("gratitude") for c in report.calm_cues), report.calm_cues


def test_gratitude_next_to_a_complaint_still_counts_outside_the_sarcasm(detector):
    report = detector.detect("thanks for nothing. thank you for the refund though")
    assert "sarcasm" in kinds(report.cues) and report.counts["gratitude"] == 1


@pytest.mark.parametrize("text, category", [
    ("not bad at all, not unhappy", "displeasure"),
    ("I'm not unhappy with the refund", "displeasure"),
    ("It wasn't terrible, just slow", "insult"),
    ("not a problem, it's not urgent", "urgency"),
    ("it's hardly urgent", "urgency"),
    ("never disappointed with you so far", "displeasure"),
    ("no joke, the new one is great", "insult"),
])
def test_negation_suppresses_the_cue(detector, text, category):
    report = detector.detect(text)
    assert report.counts[category] == 0, report.cues
    assert category.replace("_", " ") not in kinds(report.cues)


@pytest.mark.parametrize("text, category", [
    ("I am not happy at all", "displeasure"),                     # the negation is the cue
    ("I have never been so disappointed", "displeasure"),           # an intensifier keeps it
    ("No. Terrible service.", "insult"),                            # punctuation ends the negation
    ("not only late but useless", "insult"),
    ("this is not good enough", "displeasure"),
    ("I need it today, not next week", "urgency"),
    ("not very helpful, are you", "displeasure"),                   # praise denied is displeasure
])
def test_negation_does_not_hide_real_frustration(detector, text, category):
    assert detector.detect(text).counts[category] >= 1, detector.detect(text).cues


def test_negated_thanks_is_not_gratitude_but_cant_thank_you_enough_is(detector):
    assert detector.detect("no thanks").counts["gratitude"] == 0
    assert detector.detect("that's not perfect").counts["gratitude"] == 0
    assert detector.detect("I can't thank you enough").counts["gratitude"] == 1
    assert detector.detect("Thanks again, great job").cues == []  # "again" after thanks is not a repeat contact


def test_shouted_please_is_not_politeness(detector):
    report = detector.detect("PLEASE GIVE ME MY MONEY BACK")
    assert report.counts["politeness"] == 0 and report.counts["capitals"] >= 1


def test_earlier_cue_behaviour_holds(detector):
    angry = detector.detect("This is the THIRD TIME I'm asking!! Worst service, I'm cancelling my account. wtf")
    assert {"repeat contact", "capitals", "exclamations", "insult", "threat to leave", "profanity"} <= kinds(angry.cues)
    assert angry.calm_cues == []
    polite = detector.detect("Hello, my parcel seems late, could you check?")
    assert polite.cues == [] and polite.calm_cues == ['politeness: "could you"']
    for text in ("Could you assist me? Thanks for the assistance with my asset transfer.",
                 "flight LHR to JFK, ref ABC123, the PIN for the UPS locker is on the SMS"):
        report = detector.detect(text)
        assert report.counts["profanity"] == 0 and report.counts["capitals"] == 0, report.cues
    assert detector.detect("this is bullshit, what an ass").counts["profanity"] == 2
    assert detector.detect("f*** this, sh*t service").counts["profanity"] >= 1
    assert detector.detect("where is it??").counts["repeated_question_marks"] == 1
    assert detector.detect("I already told you twice").counts["repeat_contact"] >= 1
    for bad in ("", "   ", "\x00\x01 🙂 " * 1000, "x" * 100_000, "Das ist eine Katastrophe"):
        report = detector.detect(bad)
        assert report.counts["profanity"] == 0 and report.calm_cues == []
