"""`python -m bot evaluate --suggestions`: are the three suggestions what an expert agent would send?

Each moment in tests/suggestion_moments.yml (written blind to this engine; tests/SUGGESTION_MOMENTS.md)
gives the case's facts, the customer's message and the kinds of reply an expert accepts. A suggestion
is accepted when its kind is one of those and it states every fact the moment says it must.
recall@k: share of moments with an accepted suggestion in the top k. The "never" rules are counted over
every suggestion shown: closing the loop on an unresolved case, repeating what was just said; the
expert's own "never" kinds are counted beside them.

The policy's picks are not part of this run (a moment is not a Rasa tracker); at run time they join
the candidates only when the policy is confident.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from bot.assist.facts import facts_from_mapping, say_date, say_money
from bot.assist.moment import HOLDING, TAKEOVER, Moment
from bot.assist.ranker import Candidate, Ranker, breaks_never_rules, ranking_settings
from bot.settings import PROJECT_ROOT

MOMENTS = PROJECT_ROOT / "tests" / "suggestion_moments.yml"
EVAL_AGENT = "Sam"


class MomentsError(ValueError):
    """The moments file is malformed."""


def load_moments(path: Path = MOMENTS) -> List[Dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise MomentsError(f"cannot read {path}: {error}") from error
    moments = data.get("moments") if isinstance(data, dict) else None
    if not isinstance(moments, list) or not moments:
        raise MomentsError(f"{path}: expected a list under 'moments'")
    for item in moments:
        if not isinstance(item, dict) or not isinstance(item.get("situation"), dict) or \
                not isinstance(item.get("accept"), list) or not item.get("accept"):
            raise MomentsError(f"{path}: moment {item.get('id') if isinstance(item, dict) else item!r} needs "
                               "a situation and a non-empty accept list")
    return moments


def moment_of(item: Mapping[str, Any]) -> Moment:
    situation = dict(item["situation"])
    facts = facts_from_mapping(dict(situation, agent={"name": EVAL_AGENT}))
    customer = situation.get("customer") or {}
    facts.values["customer.verified"] = bool(customer.get("verified"))
    return Moment(facts=facts, customer_message=str(item.get("customer_message") or ""),
                  issue_type=str(situation.get("issue_type") or "other"),
                  frustration=str(situation.get("frustration") or "calm"),
                  moment=TAKEOVER if situation.get("moment") == TAKEOVER else HOLDING,
                  handoff_reason=situation.get("handoff_reason"),
                  # What the bot said, then what the agent said since taking over: neither is repeated.
                  bot_said=[str(s) for s in (situation.get("bot_said") or []) + (situation.get("agent_said") or [])],
                  playbook_done=[str(s) for s in situation.get("playbook_done") or []])


def _spellings(value: Any) -> List[str]:
    """The ways a reply may state a fact: as written, as a date a customer reads, as money."""
    if value is None:
        return []
    found = [str(value)]
    found += [s for s in (say_date(value), say_money(value)) if s]
    if isinstance(value, (int, float)) or str(value).replace(".", "", 1).isdigit():
        found.append(f"{float(value):.2f}")
    return found


def states_facts(text: str, facts: Mapping[str, Any], paths: Sequence[str]) -> bool:
    lowered = text.lower()
    for path in paths:
        spellings = _spellings(facts.get(path))
        if not spellings or not any(s.lower() in lowered for s in spellings):
            return False
    return True


@dataclass
class Outcome:
    id: str
    accepted_at: Optional[int]          # rank (1-based) of the first accepted suggestion
    shown: List[Candidate] = field(default_factory=list)
    rule_breaks: List[str] = field(default_factory=list)
    expert_never: List[str] = field(default_factory=list)


def judge(item: Mapping[str, Any], shown: List[Candidate], moment: Moment) -> Outcome:
    accept, must = set(item["accept"]), list(item.get("must_mention") or [])
    never = set(item.get("never") or [])
    accepted_at = next((i + 1 for i, c in enumerate(shown)
                        if c.kind in accept and states_facts(c.text, moment.facts.values, must)), None)
    threshold = float(ranking_settings().get("repeat_similarity", 90))
    breaks = [f"{c.kind}: {why}" for c in shown for why in [breaks_never_rules(moment, c.kind, c.text, threshold)] if why]
    return Outcome(str(item.get("id")), accepted_at, shown, breaks, [c.kind for c in shown if c.kind in never])


def evaluate(path: Path = MOMENTS, ranker: Optional[Ranker] = None) -> List[Outcome]:
    if ranker is None:
        from bot.nlu.sentence_encoder import encode
        ranker = Ranker(encode)
    outcomes = []
    for item in load_moments(path):
        moment = moment_of(item)
        outcomes.append(judge(item, ranker.rank(moment), moment))
    return outcomes


def summary(outcomes: Sequence[Outcome]) -> Dict[str, float]:
    n = len(outcomes)
    shown = sum(len(o.shown) for o in outcomes) or 1
    return {"moments": n,
            "recall@1": sum(1 for o in outcomes if o.accepted_at == 1) / n,
            "recall@3": sum(1 for o in outcomes if o.accepted_at is not None) / n,
            "never_breaks": sum(len(o.rule_breaks) for o in outcomes) / shown,
            "expert_never": sum(len(o.expert_never) for o in outcomes) / shown,
            "shown": shown}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Agent-assist suggestions on the takeover moments")
    parser.add_argument("--data", type=Path, default=MOMENTS)
    parser.add_argument("--errors", action="store_true", help="list the moments with no accepted suggestion")
    parser.add_argument("--split", choices=["all", "dev", "test"], default="all",
                        help="dev: odd-numbered moments (the ones the engine was tuned on), test: even-numbered")
    args = parser.parse_args(argv)
    outcomes = [o for o in evaluate(args.data) if in_split(o.id, args.split)]
    s = summary(outcomes)
    print(f"{args.data}: {s['moments']} moments, {s['shown']} suggestions shown")
    print(f"recall@1 {s['recall@1']:.3f}   recall@3 {s['recall@3']:.3f}   "
          f"never-rule breaks {s['never_breaks']:.3f} of suggestions   expert 'never' kinds shown {s['expert_never']:.3f}")
    print("A suggestion counts when its kind is one the expert accepts and it states the facts the moment names.")
    if args.errors:
        items = {str(i.get("id")): i for i in load_moments(args.data)}
        print_errors(outcomes, items)
    return 0


def in_split(moment_id: str, split: str) -> bool:
    """Moments with an odd number were looked at while tuning the library (dev); even ones never (test)."""
    digits = "".join(ch for ch in moment_id if ch.isdigit())
    odd = bool(digits) and int(digits) % 2 == 1
    return split == "all" or (split == "dev") == odd


def print_errors(outcomes: Sequence[Outcome], items: Mapping[str, Mapping[str, Any]]) -> None:
    for o in outcomes:
        if o.accepted_at == 1 and not o.rule_breaks and not o.expert_never:
            continue
        item = items[o.id]
        print(f"\n{o.id} [{item['situation'].get('issue_type')}/{item['situation'].get('frustration')}/"
              f"{item['situation'].get('moment')}] {item.get('customer_message')!r}")
        print(f"   accept {item['accept']} must {item.get('must_mention') or []} -> first accepted at {o.accepted_at}")
        for c in o.shown:
            print(f"   - {c.kind:18} {c.score:.2f} {c.text[:110]}")
        for b in o.rule_breaks + [f"expert never: {k}" for k in o.expert_never]:
            print(f"   ! {b}")
