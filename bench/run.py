"""`make bench`: every benchmark, one after the other, and the report they make:
``docs/benchmarks.md`` with its plots (bench/report.py; arguments are passed on to it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    report = Path(__file__).with_name("report.py")
    sys.exit(subprocess.run([sys.executable, str(report), *sys.argv[1:]], check=False).returncode)
