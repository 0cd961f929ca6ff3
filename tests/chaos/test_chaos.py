"""The chaos suite, shortened (issue #9): bench/chaos.py with 120 tasks and 2 kills of real
processes, on SQLite (one ``reelgate serve``) and PostgreSQL (two API replicas and two workers;
required under ``CI=true``). ``make chaos`` runs the same harness with 1000 tasks and 5 kills.

The plan is drawn from a fixed seed (``REELGATE_CHAOS_SEED`` overrides it); a failure prints the
summary, the seed and the command that replays it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench.chaos import draw_plan, run_chaos

SEED = int(os.environ.get("REELGATE_CHAOS_SEED", "9"))


@pytest.mark.chaos
@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_nothing_is_lost_doubled_stuck_or_charged_wrong(db: str, tmp_path: Path) -> None:
    plan = draw_plan(db, tasks=120, kills=2, seed=SEED)
    report = run_chaos(plan, tmp_path)
    assert report.ok, f"chaos checks failed: {report.failures}\n{report.text}"
