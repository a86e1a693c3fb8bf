"""Rasa's own test of the dialogue policy on the regression stories in tests/test_stories.yml."""
from __future__ import annotations

import subprocess
import sys

from bot.services import quiet_env
from bot.setup import MODEL
from bot.settings import PROJECT_ROOT


def test_stories_pass_rasa_test_core(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "test", "core", "--stories", "tests/test_stories.yml", "--model", str(MODEL),
         "--fail-on-prediction-errors", "--out", str(tmp_path / "results")],
        cwd=PROJECT_ROOT, env=quiet_env(), capture_output=True, text=True, timeout=900)
    failed = (tmp_path / "results" / "failed_test_stories.yml")
    detail = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (result.stdout[-3000:] + result.stderr[-3000:] + detail)
