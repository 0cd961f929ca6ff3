"""reelgate and LiteLLM's proxy in front of the same Ark simulator, one core each in turn.

Measured, with the server under test pinned to CPU 0 and the load and the simulator on CPU 1:

- status GET req/s, p50/p99 of one running task: LiteLLM's ``GET /v1/videos/{id}`` against
  reelgate's ``GET /v1/videos/{id}`` (the same OpenAI shape) and ``GET /v1/video/generations/{id}``;
- upstream calls per client GET: the simulator's call counts (``/_sim/stats``) before and after
  each load, divided by the GETs answered;
- create latency, one client, sequential: the simulator's create called directly with an Ark
  body, reelgate's ``POST /v1/video/generations``, reelgate's Ark-native create with the same
  Ark body, and LiteLLM's ``POST /v1/videos``. reelgate's create only stores the task (its worker
  submits it asynchronously), so the delay from the POST to the simulator receiving the task
  is reported apart.

LiteLLM (``litellm[proxy]``, ``BENCH_LITELLM_VERSION``, default 1.110.2) is installed with
``--install`` into its own virtualenv, ``bench/.litellm-venv`` (git-ignored, never reelgate's
``.venv``), and started with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (no internet here) and a
config naming ``volcengine/<seedance model>`` with ``api_base`` at the simulator. Without it
(``--skip-litellm``, or when it cannot be installed or started) the reelgate rows still run and
the JSON says why LiteLLM is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from procs import stop
from status_get import LOAD_PIN, PIN, load, row, start_reelgate, wait_healthy

HERE = Path(__file__).parent
VENV = HERE / ".litellm-venv"
VERSION = os.environ.get("BENCH_LITELLM_VERSION", "1.110.2")
KEY = "bench-key"
MASTER_KEY = "sk-bench"
MODEL = "doubao-seedance-1-0-pro-250528"
SIM_PORT, REELGATE_PORT, LITELLM_PORT = 18730, 18731, 18732
CREATES = int(os.environ.get("BENCH_CREATES", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "64"))
RUNNING = "[sim:queued=0][sim:running=86400]"  # stays running for the whole bench
TASKS = "/api/v3/contents/generations/tasks"


# -- LiteLLM in its own virtualenv ------------------------------------------------------------


def venv_python() -> Path:
    return VENV / "bin" / "python"


def installed_version() -> str | None:
    if not venv_python().exists():
        return None
    done = subprocess.run(
        [venv_python(), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [venv_python(), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        check=False,
    )


PROXY_EXTRA = """\
import importlib.metadata as m
from packaging.requirements import Requirement
for text in m.requires("litellm") or []:
    req = Requirement(text)
    proxy_only = req.marker is not None and req.marker.evaluate({"extra": "proxy"})
    if proxy_only and not req.marker.evaluate({"extra": ""}) and req.name not in SKIP:
        req.marker = None
        print(req)
"""


def ensure_litellm(install: bool) -> tuple[str | None, str]:
    """(the installed version, or None; a note on how it was installed or why it is not)."""
    have = installed_version()
    if have == VERSION and (VENV / "bin" / "litellm").exists():
        return have, ""
    if not install:
        return None, f"litellm[proxy]=={VERSION} is not installed in {VENV} (run with --install)"
    if not venv_python().exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", VENV], capture_output=True, text=True, check=False
        )
        if made.returncode:
            return None, f"python -m venv {VENV} failed: {made.stderr.strip()[-300:]}"
    done = pip(f"litellm[proxy]=={VERSION}")
    if done.returncode == 0:
        return installed_version(), ""
    # The index may lack the proxy's own companion packages (litellm-proxy, litellm-proxy-extras
    # for Prisma migrations, litellm-enterprise) at the pinned version: the proxy server itself
    # ships in the litellm wheel, so install it with the rest of the extra's requirements.
    error = _pip_error(done)
    base = pip(f"litellm=={VERSION}")
    if base.returncode:
        return None, f"pip install litellm[proxy]=={VERSION} failed: {error}"
    skip = {"litellm-proxy", "litellm-proxy-extras", "litellm-enterprise"}
    listed = subprocess.run(
        [venv_python(), "-c", f"SKIP = {sorted(skip)!r}\n{PROXY_EXTRA}"],
        capture_output=True,
        text=True,
        check=False,
    )
    requirements = listed.stdout.split("\n")
    rest = pip(*(r for r in requirements if r.strip()))
    if listed.returncode or rest.returncode:
        return None, f"pip install litellm[proxy]=={VERSION} failed: {error}; {_pip_error(rest)}"
    for name in sorted(skip):  # whichever of them the index has
        pip(f"{name}")
    return installed_version(), (
        f"`pip install litellm[proxy]=={VERSION}` failed here ({error}), so litellm=={VERSION}"
        " was installed with the proxy extra's other requirements"
    )


def _pip_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    return " ".join(lines)[-400:] or done.stderr.strip()[-400:]


CONFIG = """\
model_list:
  - model_name: seedance
    litellm_params:
      model: volcengine/{model}
      api_base: http://127.0.0.1:{sim_port}/api/v3
      api_key: {key}
general_settings:
  master_key: {master_key}
litellm_settings:
  telemetry: false
"""


@contextlib.contextmanager
def litellm_proxy(work: Path) -> Iterator[str]:
    """LiteLLM's proxy pinned to CPU 0, one uvicorn worker; yields its base URL."""
    conf = work / "litellm.yaml"
    conf.write_text(CONFIG.format(model=MODEL, sim_port=SIM_PORT, key=KEY, master_key=MASTER_KEY))
    log = work / "litellm.log"
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *PIN,
                *(VENV / "bin" / "litellm", "--config", conf, "--host", "127.0.0.1"),
                *("--port", str(LITELLM_PORT), "--num_workers", "1"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{LITELLM_PORT}"
    try:
        deadline = time.monotonic() + 240  # it imports a great deal before it listens
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health/liveliness", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"LiteLLM's proxy did not come up: {tail}")
            time.sleep(0.5)
        yield base
    finally:
        stop(proc)


# -- the simulator and reelgate on it ---------------------------------------------------------


@contextlib.contextmanager
def simulator() -> Iterator[str]:
    """``reelgate simulate ark`` on CPU 1 (with the load); yields its base URL."""
    proc = subprocess.Popen(
        [
            *(*LOAD_PIN, sys.executable, "-m", "reelgate", "simulate", "ark"),
            *("--port", str(SIM_PORT), "--key", KEY, "--queued-seconds", "0"),
            *("--running-seconds", "86400"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{SIM_PORT}"
    try:
        wait_healthy(f"{base}/_sim/stats")
        yield base
    finally:
        stop(proc)


def upstream_calls(sim: str) -> int:
    calls: dict[str, int] = httpx.get(f"{sim}/_sim/stats", timeout=10).json()["calls"]
    return sum(calls.values())


def reelgate_env(sim: str) -> dict[str, str]:
    return {
        "REELGATE_SANDBOX_ENABLED": "false",
        "REELGATE_ARK_API_KEY": KEY,
        "REELGATE_ARK_BASE_URL": f"{sim}/api/v3",
        "REELGATE_ALLOW_PRIVATE_NETWORKS": '["127.0.0.0/8"]',
        # Ark's 120-queued cap is not what this measures: a new task counts as queued until
        # its first look, and the create run makes a few hundred in a few seconds.
        "REELGATE_ARK_MAX_QUEUED": "1000000",
    }


def ark_body(prompt: str) -> dict[str, Any]:
    return {"model": MODEL, "content": [{"type": "text", "text": prompt}], "duration": 5}


# -- measuring ----------------------------------------------------------------------------------


PROBE_GETS = 100


def status_load(port: int, path: str, token: str, sim: str) -> dict[str, float]:
    """One warm-up run, then the measured one with the upstream calls made meanwhile; then
    ``PROBE_GETS`` sequential GETs, counted exactly, for the upstream calls per client GET (the
    load's own count also holds the calls of GETs still in flight when wrk stopped)."""
    load(port, path, token, CLIENTS, SECONDS)
    before = upstream_calls(sim)
    figures = row(load(port, path, token, CLIENTS, SECONDS))
    time.sleep(1)  # let GETs cut off at the end finish upstream
    calls = upstream_calls(sim) - before
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        before = upstream_calls(sim)
        for _ in range(PROBE_GETS):
            client.get(f"http://127.0.0.1:{port}{path}").raise_for_status()
        probe = upstream_calls(sim) - before
    return figures | {
        "gets": round(figures["rps"] * SECONDS),
        "upstream_calls": calls,
        "upstream_calls_per_get": probe / PROBE_GETS,
    }


def creates(
    client: httpx.Client, url: str, body: Callable[[int], dict[str, Any]], n: int
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """``n`` sequential creates, 20 ms apart (latency, not throughput: the worker's submissions
    run in the gaps). Returns the latencies' summary and (task id, wall time sent) pairs."""
    latencies, sent = [], []
    for i in range(n):
        start_wall, start = time.time(), time.perf_counter()
        resp = client.post(url, json=body(i))
        latencies.append((time.perf_counter() - start) * 1000)
        resp.raise_for_status()
        made = resp.json()
        sent.append((str(made.get("task_id") or made.get("id")), start_wall))
        time.sleep(0.02)
    return summary(latencies), sent


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p90_ms": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "mean_ms": statistics.fmean(ordered),
    }


def submit_delays(sim: str, sent: list[tuple[str, float]], within_s: float) -> dict[str, float]:
    """From each POST to the simulator receiving the task (matched by the ``rg-<task id>``
    marker reelgate sets), waiting up to ``within_s`` for the last submissions."""
    deadline = time.monotonic() + within_s
    while True:
        rows = httpx.get(f"{sim}/_sim/tasks", timeout=30).json()["items"]
        upstream = {r["marker"]: r["created_at"] for r in rows if r.get("marker")}
        delays = [
            (upstream[f"rg-{task}"] - at) * 1000 for task, at in sent if f"rg-{task}" in upstream
        ]
        if len(delays) == len(sent) or time.monotonic() > deadline:
            return summary(delays) | {"not_submitted": len(sent) - len(delays)}
        time.sleep(0.2)


def measure_reelgate(sim: str, work: Path, result: dict[str, Any]) -> None:
    proc, token = start_reelgate(work, REELGATE_PORT, reelgate_env(sim))
    base = f"http://127.0.0.1:{REELGATE_PORT}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        wait_healthy(f"{base}/healthz")
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            made = client.post(
                "/v1/video/generations",
                json={"model": MODEL, "prompt": f"status {RUNNING}", "duration": 5},
            )
            made.raise_for_status()
            task = made.json()["task_id"]
            deadline = time.monotonic() + 30
            while client.get(f"/v1/videos/{task}").json()["status"] != "in_progress":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"reelgate did not submit {task} to the simulator")
                time.sleep(0.1)
            result["status"]["reelgate /v1/videos/{id}"] = status_load(
                REELGATE_PORT, f"/v1/videos/{task}", token, sim
            )
            result["status"]["reelgate /v1/video/generations/{id}"] = status_load(
                REELGATE_PORT, f"/v1/video/generations/{task}", token, sim
            )
            seed, sent = creates(
                client,
                "/v1/video/generations",
                lambda i: {"model": MODEL, "prompt": f"seed create {i} {RUNNING}", "duration": 5},
                CREATES,
            )
            ark, sent_ark = creates(
                client, TASKS, lambda i: ark_body(f"ark create {i} {RUNNING}"), CREATES
            )
            result["create"]["reelgate POST /v1/video/generations"] = seed
            result["create"]["reelgate POST /api/v3/.../tasks (Ark body)"] = ark
            result["submit_delay"] = submit_delays(sim, sent + sent_ark, 30)
    finally:
        stop(proc)


def measure_litellm(sim: str, work: Path, result: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    with (
        litellm_proxy(work) as base,
        httpx.Client(base_url=base, headers=headers, timeout=60) as client,
    ):
        made = client.post(
            "/v1/videos", json={"model": "seedance", "prompt": f"status {RUNNING}", "seconds": "5"}
        )
        if made.status_code != 200:
            raise RuntimeError(f"LiteLLM's POST /v1/videos: {made.status_code} {made.text}")
        video = made.json()["id"]
        polled = client.get(f"/v1/videos/{video}")
        if polled.status_code != 200:
            raise RuntimeError(f"LiteLLM's GET /v1/videos/{{id}} answered {polled.status_code}")
        result["status"]["litellm /v1/videos/{id}"] = status_load(
            LITELLM_PORT, f"/v1/videos/{video}", MASTER_KEY, sim
        )
        before = upstream_calls(sim)
        result["create"]["litellm POST /v1/videos"], _ = creates(
            client,
            "/v1/videos",
            lambda i: {"model": "seedance", "prompt": f"litellm create {i} {RUNNING}"},
            CREATES,
        )
        result["litellm"]["upstream_calls_per_create"] = (upstream_calls(sim) - before) / CREATES


def measure(litellm: str | None, why_not: str) -> dict[str, Any]:
    result: dict[str, Any] = {
        "clients": CLIENTS,
        "seconds": SECONDS,
        "creates": CREATES,
        "model": MODEL,
        "status": {},
        "create": {},
        "litellm": {"version": litellm, "note": why_not},
    }
    with tempfile.TemporaryDirectory() as tmp, simulator() as sim:
        work = Path(tmp)
        with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as direct:
            result["create"]["simulator direct (Ark body)"], _ = creates(
                direct, f"{sim}{TASKS}", lambda i: ark_body(f"direct create {i} {RUNNING}"), CREATES
            )
        measure_reelgate(sim, work, result)
        if litellm:
            try:
                measure_litellm(sim, work, result)
            except (RuntimeError, httpx.HTTPError, KeyError, ValueError) as exc:
                result["litellm"]["error"] = f"{type(exc).__name__}: {exc}"[:2000]
    direct_p50 = result["create"]["simulator direct (Ark body)"]["p50_ms"]
    for figures in result["create"].values():
        figures["extra_p50_ms"] = figures["p50_ms"] - direct_p50
    theirs = result["status"].get("litellm /v1/videos/{id}")
    if theirs and theirs["rps"]:
        result["ratios"] = {
            f"{name} / litellm": ours["rps"] / theirs["rps"]
            for name, ours in result["status"].items()
            if name.startswith("reelgate")
        }
    return result


def print_figures(r: dict[str, Any]) -> None:
    print(
        f"status GET of one running task, {r['clients']} connections, {r['seconds']:g}s,"
        " server on 1 core; the Ark simulator and the load on the other"
    )
    for name, s in r["status"].items():
        print(
            f"  {name:38} {s['rps']:9.1f} req/s  p50 {s['p50_ms']:8.2f} ms  p99"
            f" {s['p99_ms']:8.2f} ms  errors {s['errors']}  upstream calls/GET"
            f" {s['upstream_calls_per_get']:.2f} (under load: {s['upstream_calls']} in"
            f" ~{s['gets']} GETs)"
        )
    for name, ratio in r.get("ratios", {}).items():
        print(f"  ratio {name} = {ratio:.0f}x (target >= 200x)")
    print(f"create latency, {r['creates']} sequential creates each, one client")
    for name, c in r["create"].items():
        print(
            f"  {name:44} p50 {c['p50_ms']:7.2f} ms  p99 {c['p99_ms']:7.2f} ms"
            f"  extra p50 vs direct {c['extra_p50_ms']:+7.2f} ms"
        )
    if "submit_delay" in r:
        d = r["submit_delay"]
        print(
            f"  reelgate POST -> upstream create received: p50 {d['p50_ms']:.1f} ms,"
            f" p99 {d['p99_ms']:.1f} ms ({d['not_submitted']} not submitted)"
        )
    llm = r["litellm"]
    if llm.get("error") or not llm["version"]:
        print(f"  LiteLLM: {llm.get('error') or llm['note']}")
    elif llm.get("note"):
        print(f"  LiteLLM {llm['version']}: {llm['note']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install LiteLLM if missing")
    parser.add_argument("--skip-litellm", action="store_true", help="reelgate rows only")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    version, note = (None, "left out (--skip-litellm)")
    if not args.skip_litellm:
        version, note = ensure_litellm(args.install)
    result = measure(version, note)
    print_figures(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
