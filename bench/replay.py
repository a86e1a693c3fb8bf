"""Replay benchmark: ``python -m bot replay`` on every test story in the repo beside ``rasa test core`` on the same stories.

Usage (from the project root): .venv/bin/python bench/replay.py [--repeat 2]

Both are run as a user runs them (a fresh process that loads the model), timed end to end,
best of ``--repeat`` runs each. Target: the replay takes no longer than ``rasa test core`` + 25%.
The replay's own report of turns and time per turn is quoted too.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODEL = PROJECT_ROOT / "models" / "mend.tar.gz"
STORY_FILE = "tests/test_stories.yml"


def timed(command: list) -> tuple:
    env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(PROJECT_ROOT))
    started = time.perf_counter()
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    if not MODEL.exists():
        raise SystemExit("bench: no trained model; run `make setup` first")
    python = sys.executable
    replay_times, rasa_times, summary = [], [], ""
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory() as out:
            seconds, result = timed([python, "-m", "rasa", "test", "core", "--stories", STORY_FILE,
                                     "--model", str(MODEL), "--out", out])
            if result.returncode != 0:
                raise SystemExit(f"bench: rasa test core failed:\n{result.stderr[-2000:]}")
            rasa_times.append(seconds)
        seconds, result = timed([python, "-m", "bot", "replay", STORY_FILE, "--quiet"])
        if result.returncode not in (0, 1):
            raise SystemExit(f"bench: replay failed:\n{result.stderr[-2000:]}")
        replay_times.append(seconds)
        summary = "\n".join(line for line in result.stdout.splitlines()
                            if re.search(r"passed, .* failed|wall time", line))
        print(f"[replay] run {run + 1}: rasa test core {rasa_times[-1]:.1f} s, mend replay {seconds:.1f} s", flush=True)
    best_rasa, best_replay = min(rasa_times), min(replay_times)
    ratio = best_replay / best_rasa
    print(f"\nReplaying {STORY_FILE} (best of {args.repeat}, each a fresh process that loads the model):")
    print(f"  rasa test core     {best_rasa:6.1f} s")
    print(f"  python -m bot replay {best_replay:6.1f} s   ({ratio:.2f}x rasa test core)")
    print("  replay's own report: " + summary.replace("\n", "\n                       "))
    verdict = "MET" if ratio <= 1.25 else "MISSED"
    print(f"\nTarget replay <= rasa test core + 25%: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
