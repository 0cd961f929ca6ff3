"""`make bench`: run every benchmark script in this folder, one after the other."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = ["status_get.py", "load.py", "engine.py"]

if __name__ == "__main__":
    here = Path(__file__).parent
    failed = 0
    for name in SCRIPTS:
        print(f"== {name}", flush=True)
        failed |= subprocess.run([sys.executable, str(here / name)], check=False).returncode
    sys.exit(failed)
