"""``reelgate video …`` as people run it: a subprocess against a live server (sandbox)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

from reelgate.render import probe_video
from tests.conftest import LiveServer, free_port

FAST = '{"queue_seconds": 0.2, "run_seconds": 0.3}'
SLOW = '{"queue_seconds": 60}'
SMALL = ("--duration", "1", "--size", "160x120")


def video(
    server: LiveServer, *args: str, token: str | None = None, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with the server's URL and token in the environment, as a user would."""
    env = {
        **server.env,
        "REELGATE_API_URL": url or server.url,
        "REELGATE_API_TOKEN": token or server.token,
    }
    return subprocess.run(
        [sys.executable, "-m", "reelgate", "video", *args],
        cwd=server.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def task_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    task: dict[str, Any] = json.loads(done.stdout)
    return task


def test_create_wait_out_writes_a_playable_mp4(live_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "boat.mp4"
    done = video(
        live_server,
        "create",
        *("--model", "sandbox-t2v", "--prompt", "a paper boat"),
        *SMALL,
        *("--metadata", FAST, "--wait", "--out", str(out)),
    )
    task = task_of(done)
    assert task["status"] == "success"
    assert task["result_url"].startswith("http://")
    assert task["task_id"] in done.stderr  # "created task_…" for the impatient
    info = probe_video(out)
    assert (info.width, info.height, info.codec) == (160, 120, "h264")
    assert "Traceback" not in done.stderr


def test_an_image_file_is_sent_as_the_first_frame(live_server: LiveServer, tmp_path: Path) -> None:
    first = tmp_path / "first.png"
    Image.new("RGB", (160, 120), (200, 40, 40)).save(first)
    done = video(
        live_server,
        "create",
        *("-m", "sandbox-i2v", "-p", "from a red frame", "--image", str(first)),
        *SMALL,
        *("--metadata", FAST, "--wait"),
    )
    assert task_of(done)["status"] == "success"


def test_get_list_cancel_download(live_server: LiveServer, tmp_path: Path) -> None:
    queued = task_of(
        video(live_server, "create", "-m", "sandbox-t2v", "-p", "q", "--metadata", SLOW)
    )
    task_id = queued["task_id"]
    assert queued["status"] == "queued"
    assert task_of(video(live_server, "get", task_id))["status"] == "queued"

    listing = video(live_server, "list", "--status", "queued", "--limit", "100")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if task_id in line)
    assert "queued" in row
    assert "sandbox-t2v" in row

    cancelled = task_of(video(live_server, "cancel", task_id))
    assert (cancelled["status"], cancelled["error"]["code"]) == ("failure", "cancelled")
    assert task_of(video(live_server, "get", task_id, "--wait", "1"))["status"] == "failure"
    listing = video(live_server, "list", "--status", "failure", "--limit", "100").stdout
    assert "cancelled" in next(line for line in listing.splitlines() if task_id in line)
    again = video(live_server, "cancel", task_id)  # cancelling twice is fine
    assert again.returncode == 0, again.stderr

    finished = task_of(
        video(
            live_server,
            "create",
            "-m",
            "sandbox-t2v",
            "-p",
            "d",
            *SMALL,
            "--metadata",
            FAST,
            "--wait",
        )
    )
    done = video(live_server, "download", finished["task_id"], "--out", str(tmp_path / "d.mp4"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "d.mp4")
    assert probe_video(tmp_path / "d.mp4").height == 120
    frame = video(
        live_server,
        "download",
        finished["task_id"],
        "--out",
        str(tmp_path),
        "--variant",
        "last_frame",
    )
    with Image.open(frame.stdout.strip()) as image:
        assert image.size == (160, 120)


def test_url_and_token_options_override_the_environment(live_server: LiveServer) -> None:
    done = video(
        live_server,
        "list",
        *("--url", live_server.url, "--token", live_server.token),
        url=f"http://127.0.0.1:{free_port()}",
        token="rg_wrong",
    )
    assert done.returncode == 0, done.stderr


def test_errors_are_one_line_without_a_traceback(live_server: LiveServer) -> None:
    cases = [
        (
            video(live_server, "get", "task_x", token="rg_not_a_token"),
            1,
            "reelgate: invalid_token: ",
        ),
        (video(live_server, "get", "task_nope"), 1, "reelgate: task_not_found: "),
        (video(live_server, "create", "-m", "nope", "-p", "x"), 1, "reelgate: model_not_found: "),
        (
            video(live_server, "list", url=f"http://127.0.0.1:{free_port()}"),
            1,
            "reelgate: connection_error: ",
        ),
        (
            video(live_server, "create", "-m", "sandbox-t2v", "-p", "x", "--metadata", "[1]"),
            2,
            "reelgate: invalid_parameter: --metadata",
        ),
        (
            video(live_server, "create", "-m", "sandbox-t2v", "-p", "x", "--image", "nope.png"),
            2,
            "reelgate: invalid_parameter: --image",
        ),
    ]
    for done, code, start in cases:
        assert done.returncode == code, (done.args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(start), lines[0]
        assert done.stdout == ""


def test_a_failed_task_exits_non_zero_with_its_code(live_server: LiveServer) -> None:
    done = video(
        live_server,
        "create",
        *("-m", "sandbox-t2v", "-p", "doomed [sandbox:fail]"),
        *SMALL,
        *("--metadata", FAST, "--wait"),
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["status"] == "failure"
    assert done.stderr.strip().splitlines()[-1].startswith("reelgate: sandbox_failure: ")
