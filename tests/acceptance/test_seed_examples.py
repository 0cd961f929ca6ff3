"""The seed's own curl, Python, JavaScript and Go examples, verbatim but for host, token and id.

The examples are read from the seed document (``docs/seed``, a copy of ``shared/seeds``) at test
time, so a drift between the documented examples and reelgate fails here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, LiveServer

SEED = REPO / "docs" / "seed" / "000_ee56b4e7099eed87.txt"
SHARED_SEED = REPO.parent / "shared" / "seeds" / SEED.name
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def example(lang: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", SEED.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, f"expected one {lang} example in the seed"
    return blocks[0]


def substitute(code: str, server: LiveServer, task_id: str) -> str:
    code = code.replace("https://your-domain.com", server.url)
    code = code.replace("YOUR_API_KEY", server.token)
    return code.replace("task_abc123xyz456", task_id)


def new_task(server: LiveServer, prompt: str, wait: bool) -> str:
    with server.client() as c:
        r = c.post(
            "/v1/video/generations",
            json={"model": "sandbox-t2v", "prompt": prompt, "duration": 1, "size": "160x120"},
        )
    task_id: str = r.json()["task_id"]
    if wait:
        server.wait_terminal(task_id)
    return task_id


def assert_success_output(out: str, server: LiveServer) -> str:
    assert "视频生成成功!" in out, out
    url = re.search(r"视频地址:? (\S+)", out)
    assert url, out
    video = httpx.get(url.group(1), timeout=30)
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"  # an MP4 container
    return url.group(1)


def run(cmd: list[str], cwd: Path, timeout: float = 120) -> str:
    done = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_seed_copy_matches_shared() -> None:
    if not SHARED_SEED.exists():
        pytest.skip(f"{SHARED_SEED} is not beside this checkout")
    assert SEED.read_bytes() == SHARED_SEED.read_bytes()


def test_curl_example(live_server: LiveServer, tmp_path: Path) -> None:
    task_id = new_task(live_server, "curl example", wait=True)
    script = tmp_path / "example.sh"
    script.write_text(substitute(example("bash"), live_server, task_id))
    body = json.loads(run(["bash", str(script)], tmp_path))
    assert body["code"] == "success"
    assert body["data"]["task_id"] == task_id
    assert body["data"]["status"] == "success"
    assert httpx.get(body["data"]["fail_reason"]).status_code == 200


def test_python_example_polls_to_success(live_server: LiveServer, tmp_path: Path) -> None:
    # Not pre-completed: the example's own 5 s loop watches the task move.
    task_id = new_task(live_server, "python example", wait=False)
    script = tmp_path / "example.py"
    script.write_text(substitute(example("python"), live_server, task_id))
    started = time.monotonic()
    out = run([sys.executable, str(script)], tmp_path)
    assert time.monotonic() - started < 60
    assert "状态: success, 进度: 100%" in out
    assert_success_output(out, live_server)


def test_python_example_reports_failure(live_server: LiveServer, tmp_path: Path) -> None:
    task_id = new_task(live_server, "python failure [sandbox:fail]", wait=True)
    script = tmp_path / "example.py"
    script.write_text(substitute(example("python"), live_server, task_id))
    out = run([sys.executable, str(script)], tmp_path)
    assert "状态: failure, 进度: 100%" in out
    assert "任务失败: task failed: the sandbox was asked to fail it" in out


def test_javascript_example(live_server: LiveServer, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        if IN_CI:
            pytest.fail("node is required under CI (.ci/run installs it)")
        pytest.skip("node (>= 18) is not installed")
    task_id = new_task(live_server, "javascript example", wait=True)
    script = tmp_path / "example.mjs"
    script.write_text(substitute(example("javascript"), live_server, task_id))
    out = run([node, str(script)], tmp_path)
    assert "状态: success, 进度: 100%" in out
    assert_success_output(out, live_server)


def test_go_example(live_server: LiveServer, tmp_path: Path) -> None:
    go = shutil.which("go")
    if go is None:
        if IN_CI:
            pytest.fail("go is required under CI (.ci/run installs Debian's golang-go)")
        pytest.skip("no Go toolchain (apt-get install golang-go)")
    task_id = new_task(live_server, "go example", wait=True)
    (tmp_path / "main.go").write_text(substitute(example("go"), live_server, task_id))
    out = run([go, "run", "main.go"], tmp_path, timeout=300)
    assert "状态: success, 进度: 100%" in out
    assert_success_output(out, live_server)
