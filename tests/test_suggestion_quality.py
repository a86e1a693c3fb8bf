"""Suggestion quality on the takeover moments an expert wrote blind to the engine (tests/SUGGESTION_MOMENTS.md).

Odd-numbered moments were looked at while the reply library was tuned; even-numbered ones never were.
The gates hold on the untouched half as well as on the whole set.
"""
from __future__ import annotations

import pytest

from bot.assist.evaluate import MOMENTS, evaluate, in_split, load_moments, summary
from bot.assist.library import KINDS


@pytest.fixture(scope="module")
def outcomes():
    return evaluate(MOMENTS)


@pytest.mark.parametrize("split", ["all", "test"])
def test_an_accepted_reply_is_in_the_top_three_and_usually_first(outcomes, split):
    figures = summary([o for o in outcomes if in_split(o.id, split)])
    assert figures["recall@3"] >= 0.90, figures
    assert figures["recall@1"] >= 0.70, figures


def test_the_never_rules_are_never_broken(outcomes):
    breaks = [(o.id, b) for o in outcomes for b in o.rule_breaks]
    assert breaks == []


def test_the_moments_cover_every_issue_type_and_frustration_level():
    moments = load_moments()
    assert len(moments) >= 60
    issues = {m["situation"]["issue_type"] for m in moments}
    levels = {m["situation"]["frustration"] for m in moments}
    assert {"delivery", "billing", "product", "account", "technical", "service"} <= issues
    assert levels == {"calm", "annoyed", "angry"}
    assert all(set(m["accept"]) <= set(KINDS) for m in moments)
