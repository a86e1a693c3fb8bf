"""Replay reports: the terminal view, JUnit XML for CI, and a self-contained HTML page."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import List, TextIO

import jinja2

from bot.replay.conformance import summed
from bot.replay.result import Replay

TEMPLATE = Path(__file__).with_name("report.html.j2")


def _pct(value: float | None) -> str:
    return "  -  " if value is None else f"{value * 100:4.0f}%"


def print_replay(replay: Replay, out: TextIO, verbose: bool = True) -> None:
    mark = "PASS" if replay.passed else f"FAIL ({replay.divergences} divergence{'s' if replay.divergences != 1 else ''})"
    out.write(f"\n{mark}  {replay.name}  [{replay.source}]\n")
    if not verbose and replay.passed:
        return
    for turn in replay.turns:
        if turn.user is not None:
            user = turn.user
            frustration = user.frustration or {}
            cues = ", ".join(frustration.get("cues") or []) or "no cues"
            flag = "  <<< DIVERGES: expected intent " + str(user.expected_intent) if user.diverged else ""
            out.write(f"  [{turn.index}] user: {user.text[:100]!r}\n")
            out.write(f"       intent {user.intent} ({_pct(user.intent_confidence).strip()}), "
                      f"issue {(user.issue_type or {}).get('name', '-')}, frustration {frustration.get('level', '-')} "
                      f"{frustration.get('score', '')} ({cues}){flag}\n")
        for action in turn.actions:
            if action.by_agent:
                who = action.agent_name or action.agent or "an agent"
                sent = "" if action.expected == "action_listen" else f" sent {action.expected}"
                out.write(f"       step {action.step:>3}: {who} (a person had the conversation; not judged){sent}\n")
                for text in action.agent_text:
                    out.write(f"                 agent said: {text[:100]!r}\n")
                continue
            others = ", ".join(f"{r['action']} {_pct(r['confidence']).strip()}" for r in action.runner_ups)
            line = (f"       step {action.step:>3}: expected {action.expected:<28} predicted {action.predicted:<28} "
                    f"{action.policy or '-'} {_pct(action.confidence)}")
            if action.playbook_step:
                line += f"  [{action.playbook_step}]"
            if action.diverged:
                line += "  <<< DIVERGES"
            out.write(line + "\n")
            if action.diverged or verbose:
                out.write(f"                 runner-ups: {others or '-'}\n")
    c = replay.conformance
    ack = c.get("complaint_to_acknowledgement")
    out.write(f"  playbook: {' > '.join(c.get('steps_done') or []) or 'no steps'}; missing: "
              f"{', '.join(c.get('steps_missing') or []) or 'none'}; in order: {'yes' if c.get('in_order') else 'NO'}; "
              f"complaint to acknowledgement: {ack['turns'] if ack else '-'} turn(s); "
              f"re-explanations: {len(c.get('re_explanations') or [])}\n")


def print_summary(replays: List[Replay], seconds: float, out: TextIO) -> None:
    failed = [r for r in replays if not r.passed]
    turns = sum(len(r.turns) for r in replays)
    total = summed([r.conformance for r in replays])
    out.write(f"\n{len(replays) - len(failed)} passed, {len(failed)} failed, {len(replays)} stories/conversations, "
              f"{turns} turns in {seconds:.1f} s ({seconds * 1000 / max(turns, 1):.1f} ms per turn)\n")
    out.write(f"playbook over the {total['counted']} of {total['conversations']} replays that can be measured: "
              + ", ".join(f"{s} {n}/{total['counted']}" for s, n in total["steps_done"].items())
              + f"; re-explanations {total['re_explanations']}; out of order {total['out_of_order']}\n")
    for reason, count in total["not_counted"].items():
        out.write(f"  not counted: {count} (because {reason})\n")
    for replay in failed:
        out.write(f"  FAILED {replay.name}: {replay.first_divergence()}\n")


def write_junit(replays: List[Replay], path: Path, seconds: float) -> None:
    suite = ET.Element("testsuite", name="mend-replay", tests=str(len(replays)),
                       failures=str(sum(1 for r in replays if not r.passed)), time=f"{seconds:.3f}")
    for replay in replays:
        case = ET.SubElement(suite, "testcase", classname=replay.source, name=replay.name)
        if not replay.passed:
            failure = ET.SubElement(case, "failure", message=replay.first_divergence() or "diverged")
            failure.text = "\n".join(
                f"turn {t.index} step {a.step}: expected {a.expected}, predicted {a.predicted} ({a.policy}, {a.confidence})"
                for t in replay.turns for a in t.actions if a.diverged)
    _write_new(path, ET.tostring(suite, encoding="unicode", xml_declaration=True))


def write_html(replays: List[Replay], path: Path, seconds: float) -> None:
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    html = environment.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        replays=[r.as_dict() for r in replays], seconds=seconds, total=summed([r.conformance for r in replays]),
        failed=sum(1 for r in replays if not r.passed))
    _write_new(path, html)


def check_report_path(path: Path) -> None:
    """Reports go where asked; a file that is not a previous report of ours is never overwritten."""
    if path.exists() and path.is_dir():
        raise FileExistsError(f"{path} is a folder; give a file name for the report")
    if path.exists():
        head = path.read_text(encoding="utf-8", errors="replace")[:600]
        if 'name="mend-replay"' not in head and "<title>Mend replay" not in head:
            raise FileExistsError(f"{path} exists and is not an earlier replay report; not overwriting it")


def _write_new(path: Path, text: str) -> None:
    check_report_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
