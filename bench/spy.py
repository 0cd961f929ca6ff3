"""py-spy for the benchmarks: sample processes while a load runs, and sum up their stacks."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def start(
    pids: Sequence[int],
    out: Path,
    rate: int = 200,
    *,
    subprocesses: bool = False,
    pin: Sequence[str] = (),
) -> list[subprocess.Popen[str]] | str:
    """One ``py-spy record`` per process (and, with ``subprocesses``, its children), writing
    collapsed stacks to ``out``-N files, itself run under ``pin`` (a ``taskset`` prefix); stop
    them with ``finish``. Returns why not when py-spy is missing."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "py-spy is not installed (pip install -e '.[dev]')"
    record = [*pin, spy, "record", "--nonblocking", "--format", "raw", "--rate", str(rate)]
    if subprocesses:
        record.append("--subprocesses")
    return [
        subprocess.Popen(
            [*record, "--pid", str(pid), "--output", f"{out}-{i}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, pid in enumerate(pids)
    ]


def finish(spies: list[subprocess.Popen[str]], out: Path) -> str:
    """Stop the samplers and join what they wrote into ``out``. Returns "" or why not."""
    errors, stacks = [], []
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes what it sampled when interrupted
    for i, spy in enumerate(spies):
        _, err = spy.communicate(timeout=60)
        part = Path(f"{out}-{i}")
        if part.exists():
            stacks.append(part.read_text())
            part.unlink()
        else:
            errors.append(err.strip()[-300:])
    out.write_text("".join(stacks))
    return "" if out.stat().st_size else "py-spy wrote nothing: " + "; ".join(errors)


def read_profile(path: Path) -> dict[str, Any]:
    """py-spy's collapsed stacks: the functions most often on top of the stack (self) and most
    often anywhere on it (inclusive, reelgate's own code), and self time by package."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        packages[_package(frames[-1])] += count
        for frame in set(frames):
            # The process's start-up frames (CLI, server launch) are under every sample.
            if "reelgate/" in frame and not re.search(r"reelgate/(cli/|__main__)", frame):
                inclusive[frame] += count
    return {
        "samples": total,
        "self": own.most_common(15),
        "inclusive_reelgate": inclusive.most_common(15),
        "self_by_package": packages.most_common(10),
    }


def _frame(text: str) -> str:
    """``func (path/file.py:123)`` without the line number."""
    return re.sub(r":\d+\)$", ")", text.strip())


def _package(frame: str) -> str:
    match = re.search(r"\(([^)]*)\)$", frame)
    where = match.group(1) if match else frame
    if where.startswith("<frozen") or "/" not in where:
        return where.split(".")[0] if "/" not in where else where
    return where.split("/")[0]
