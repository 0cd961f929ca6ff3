"""Status GET throughput: reelgate's hot path vs a bare Starlette handler serving the same body.

Both run under granian with one worker pinned to CPU 0; the load runs on CPU 1 (wrk when it is
installed, else the asyncio load generator in loadgen.py). Prints req/s, p50/p99 and the ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
import loadgen
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


def start_reelgate(work: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELGATE_")}
    env.update(
        REELGATE_DATABASE_URL=f"sqlite:///{work / 'bench.db'}",
        REELGATE_DATA_DIR=str(work / "data"),
        REELGATE_SANDBOX_QUEUE_SECONDS="0",
        REELGATE_SANDBOX_RUN_SECONDS="0",
        REELGATE_LOG_LEVEL="warning",
    )
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


def load(port: int, path: str, token: str) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, errors)."""
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [
                *LOAD_PIN,
                wrk,
                "-t1",
                f"-c{CLIENTS}",
                f"-d{int(SECONDS)}s",
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
        return rps, p50, p99, int(bad.group(1)) if bad else 0
    res = asyncio.run(
        loadgen.run(
            "127.0.0.1",
            port,
            path,
            {"Authorization": f"Bearer {token}"},
            clients=CLIENTS,
            seconds=SECONDS,
        )
    )
    return res.rps, res.percentile(50) * 1000, res.percentile(99) * 1000, res.errors


def _wrk_ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def main() -> None:
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
            ours = load(18710, path, token)
        finally:
            stop(proc)
        (work / "body.json").write_bytes(body)
        bare = start_bare(work / "body.json", 18711)
        try:
            wait_healthy("http://127.0.0.1:18711/v1/video/generations/x")
            load(18711, path, token)
            theirs = load(18711, path, token)
        finally:
            stop(bare)
    tool = "wrk" if shutil.which("wrk") else "asyncio loadgen"
    print(f"status GET, {CLIENTS} connections, {SECONDS:g}s, server on 1 core, load: {tool}")
    print(
        f"  reelgate       {ours[0]:9.0f} req/s  p50 {ours[1]:6.2f} ms  p99 {ours[2]:6.2f} ms"
        f"  errors {ours[3]}"
    )
    print(
        f"  bare starlette {theirs[0]:9.0f} req/s  p50 {theirs[1]:6.2f} ms  p99 {theirs[2]:6.2f}"
        f" ms  errors {theirs[3]}"
    )
    print(f"  ratio reelgate / bare starlette = {ours[0] / theirs[0]:.2f}")


if __name__ == "__main__":
    main()
