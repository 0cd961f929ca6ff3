"""Status GET throughput: reelgate's hot path vs a bare Starlette handler serving the same body.

Both run under granian with one worker pinned to CPU 0; the load runs on CPU 1 (wrk when it is
installed, else the asyncio load generator in loadgen.py). Prints req/s, p50/p99 and the ratio.
With nginx installed (nginx_baseline.py), nginx serving the same bytes at the same path is a
third row. ``--json PATH`` writes the figures; ``--profile PATH`` samples reelgate with py-spy
during one more load run (after the measured ones) and writes its collapsed stacks there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import loadgen
import nginx_baseline
import spy
from procs import stop

SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "64"))
PIN = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
LOAD_PIN = ["taskset", "-c", "1"] if PIN else []


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def start_reelgate(
    work: Path, port: int, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """``reelgate serve`` on SQLite pinned to CPU 0 (``extra_env``: more REELGATE_ settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        REELGATE_DATABASE_URL=f"sqlite:///{work / 'bench.db'}",
        REELGATE_DATA_DIR=str(work / "data"),
        REELGATE_SANDBOX_QUEUE_SECONDS="0",
        REELGATE_SANDBOX_RUN_SECONDS="0",
        REELGATE_LOG_LEVEL="warning",
    )
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [*PIN, sys.executable, "-m", "reelgate", "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    text = ""
    for line in proc.stdout:
        text += line
        if "listening on" in line:
            break
    token = re.search(r"^\s+(rg_\S+)\s*$", text, re.MULTILINE)
    assert token, text
    return proc, token.group(1)


def start_bare(body_file: Path, port: int) -> subprocess.Popen[str]:
    env = dict(os.environ, BARE_BODY_FILE=str(body_file), PYTHONPATH=str(Path(__file__).parent))
    return subprocess.Popen(
        [
            *PIN,
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--workers",
            "1",
            "--port",
            str(port),
            "--no-ws",
            "--log-level",
            "warning",
            "bare_app:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def load(
    port: int, path: str, token: str, clients: int = CLIENTS, seconds: float = SECONDS
) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, errors: non-2xx answers and socket errors)."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [
                *LOAD_PIN,
                wrk,
                "-t1",
                f"-c{clients}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",  # a slow peer's answers are latencies to count, not errors
                "--latency",
                "-H",
                f"Authorization: Bearer {token}",
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = _wrk_ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
        p99 = _wrk_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        sockets = re.search(
            r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
        )
        errors = int(bad.group(1)) if bad else 0
        errors += sum(map(int, sockets.groups())) if sockets else 0
        return rps, p50, p99, errors
    res = asyncio.run(
        loadgen.run(
            "127.0.0.1",
            port,
            path,
            {"Authorization": f"Bearer {token}"},
            clients=clients,
            seconds=seconds,
        )
    )
    return res.rps, res.percentile(50) * 1000, res.percentile(99) * 1000, res.errors


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def load_tool() -> str:
    return "wrk" if shutil.which("wrk") else "asyncio loadgen"


def row(figures: tuple[float, float, float, int]) -> dict[str, float]:
    rps, p50, p99, errors = figures
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "errors": errors}


def profile(pid: int, run_load: Callable[[], object], out: Path) -> str:
    """Sample process ``pid`` and its children (granian's worker) with py-spy while ``run_load``
    runs; write the collapsed stacks to ``out``. Returns "" or why there is no profile."""
    rate = int(os.environ.get("BENCH_SPY_RATE", "200"))
    spies = spy.start([pid], out, rate, subprocesses=True, pin=LOAD_PIN)
    if isinstance(spies, str):
        return spies
    time.sleep(1)  # attach before the load starts
    run_load()
    return spy.finish(spies, out)


def measure(nginx: str | None, profile_to: Path | None = None) -> dict[str, Any]:
    """reelgate, the bare handler and (with ``nginx``) nginx, one after the other, each warmed up
    by one load run and measured by the next."""
    rows: dict[str, dict[str, float]] = {}
    result: dict[str, Any] = {"clients": CLIENTS, "seconds": SECONDS, "tool": load_tool()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        proc, token = start_reelgate(work, 18710)
        try:
            base = "http://127.0.0.1:18710"
            wait_healthy(f"{base}/healthz")  # "listening" is printed before the port is bound
            headers = {"Authorization": f"Bearer {token}"}
            task = httpx.post(
                f"{base}/v1/video/generations",
                headers=headers,
                json={
                    "model": "sandbox-t2v",
                    "prompt": "bench",
                    "duration": 1,
                    "size": "128x128",
                },
            ).json()["task_id"]
            path = f"/v1/video/generations/{task}"
            while True:
                body = httpx.get(base + path, headers=headers).content
                if json.loads(body)["data"]["status"] == "success":
                    break
                time.sleep(0.2)
            load(18710, path, token)  # warm-up
            rows["reelgate"] = row(load(18710, path, token))
            if profile_to is not None:
                result["profile_error"] = profile(
                    proc.pid, lambda: load(18710, path, token), profile_to
                )
        finally:
            stop(proc)
        result["body_bytes"] = len(body)
        (work / "body.json").write_bytes(body)
        bare = start_bare(work / "body.json", 18711)
        try:
            wait_healthy("http://127.0.0.1:18711/v1/video/generations/x")
            load(18711, path, token)
            rows["bare starlette"] = row(load(18711, path, token))
        finally:
            stop(bare)
        if nginx:
            with nginx_baseline.serve(nginx, body, path, 18712, work / "nginx", PIN):
                wait_healthy(f"http://127.0.0.1:18712{path}")
                assert httpx.get(f"http://127.0.0.1:18712{path}").content == body
                load(18712, path, token)
                rows["nginx"] = row(load(18712, path, token))
    result["rows"] = rows
    result["ratios"] = {
        f"reelgate / {name}": rows["reelgate"]["rps"] / rows[name]["rps"]
        for name in rows
        if name != "reelgate" and rows[name]["rps"]
    }
    return result


def print_figures(result: dict[str, Any]) -> None:
    print(
        f"status GET, {result['clients']} connections, {result['seconds']:g}s, server on 1 core,"
        f" load: {result['tool']}"
    )
    for name, r in result["rows"].items():
        print(
            f"  {name:14} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
            f"  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']}"
        )
    for name, ratio in result["ratios"].items():
        print(f"  ratio {name} = {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--install-nginx", action="store_true", help="apt-get it if missing")
    parser.add_argument("--no-nginx", action="store_true", help="leave the nginx row out")
    parser.add_argument("--profile", type=Path, help="py-spy's collapsed stacks of reelgate")
    args = parser.parse_args()
    nginx, why = (None, "left out (--no-nginx)")
    if not args.no_nginx:
        nginx, why = nginx_baseline.ensure(args.install_nginx)
    result = measure(nginx, args.profile)
    result["nginx"] = {"version": nginx_baseline.version(nginx)} if nginx else {"skipped": why}
    print_figures(result)
    if not nginx:
        print(f"  nginx: {why}")
    if result.get("profile_error"):
        print(f"  profile: {result['profile_error']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
