"""Hold a process to a share of one CPU with a cgroup's CFS quota, for benchmarks that compare
1 worker with 2 on a host whose few cores are shared with PostgreSQL and the upstream stub.

With an equal budget per worker, 2 workers ÷ 1 measures what the workers themselves scale
(their claims, locks and shared rate limits), not how many cores the host has left for them.
Needs a writable cgroup ``cpu`` controller (v2's ``cpu.max`` or v1's ``cpu.cfs_quota_us``): as
root on a plain Linux host or VM. Elsewhere ``CpuCap.open`` says why it cannot, and the capped
runs are skipped (the report says so)."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

V2_ROOT = Path("/sys/fs/cgroup")
V1_ROOT = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000


class CpuCap:
    """One cgroup whose processes together get ``share`` of a CPU."""

    def __init__(self, folder: Path, v2: bool) -> None:
        self.folder = folder
        self.v2 = v2

    @classmethod
    def open(cls, share: float) -> CpuCap | str:
        """A new cgroup limited to ``share`` CPUs, or why none can be made here."""
        quota = max(1000, round(share * PERIOD_US))
        name = f"reelgate-bench-{secrets.token_hex(4)}"
        errors = []
        if (V2_ROOT / "cgroup.controllers").exists():
            if "cpu" not in (V2_ROOT / "cgroup.subtree_control").read_text().split():
                errors.append("cgroup v2 without the cpu controller enabled for children")
            else:
                folder = V2_ROOT / name
                try:
                    folder.mkdir()
                    (folder / "cpu.max").write_text(f"{quota} {PERIOD_US}")
                    return cls(folder, v2=True)
                except OSError as exc:
                    _remove(folder)
                    errors.append(f"cgroup v2: {exc}")
        if (V1_ROOT / "cpu.cfs_quota_us").exists():
            folder = V1_ROOT / name
            try:
                folder.mkdir()
                (folder / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (folder / "cpu.cfs_quota_us").write_text(str(quota))
                return cls(folder, v2=False)
            except OSError as exc:
                _remove(folder)
                errors.append(f"cgroup v1: {exc}")
        return "; ".join(errors) or "no cgroup cpu controller on this host"

    def add(self, pid: int) -> None:
        """Move the process (all its threads) into the cgroup."""
        (self.folder / "cgroup.procs").write_text(str(pid))

    def throttled_s(self) -> float:
        """Seconds the group's processes were held back by the quota so far."""
        stats = dict(
            line.split(maxsplit=1)
            for line in (self.folder / "cpu.stat").read_text().splitlines()
            if " " in line
        )
        if self.v2:
            return int(stats.get("throttled_usec", 0)) / 1e6
        return int(stats.get("throttled_time", 0)) / 1e9

    def close(self) -> None:
        """Remove the cgroup (its processes, if any are left, go back to the root)."""
        root = V2_ROOT if self.v2 else V1_ROOT
        with contextlib.suppress(OSError):
            for pid in (self.folder / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(pid)
        _remove(self.folder)


def _remove(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()
