"""`make bench`'s report in quick mode, so the bench scripts do not rot: the cheap parts (status
GET against the bare handler, and nginx when it is installed; creates and status GETs on the Ark
simulator; the polling load) run with small numbers and the report is written with its plots.
LiteLLM (an install) and the engine bench (minutes) are left out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SMALL = {
    "BENCH_QUICK": "1",
    "BENCH_SECONDS": "1",
    "BENCH_CLIENTS": "16",
    "BENCH_LOAD_CLIENTS": "50",
    "BENCH_LOAD_SECONDS": "2",
    "BENCH_CREATES": "10",
}


def test_quick_report_writes_figures_and_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="matplotlib is in the dev extras")
    if not shutil.which("taskset"):
        pytest.skip("the benches pin servers with taskset")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REELGATE_", "BENCH_"))}
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "report.py"), "--out", str(tmp_path)),
            *("--no-install", "--skip", "engine", "--skip", "litellm"),
        ],
        env=env | SMALL,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "benchmarks.md").read_text()
    assert "Quick mode" in report
    assert "| reelgate | " in report  # the status GET row
    assert "reelgate / bare starlette = **" in report
    assert "simulator direct (Ark body)" in report  # the create rows
    assert "reelgate POST -> upstream" not in report or "not submitted" in report
    assert (
        "upstream calls per client GET, reelgate /v1/videos/{id} | <= 0.00 | 0.00 | met" in report
    )
    assert "| polls | " in report  # the load run
    if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
        assert "| nginx | " in report
    images = tmp_path / "benchmarks"
    for name in ("status_get.png", "create.png", "load.png"):
        assert (images / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
