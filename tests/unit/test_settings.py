from __future__ import annotations

import os
from pathlib import Path

import pytest

from reelgate.core.errors import ConfigError
from reelgate.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("REELGATE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_work_out_of_the_box() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///./reelgate.db"
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.base_url == "http://127.0.0.1:8000"
    assert s.sandbox_enabled


def test_environment_and_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGATE_PORT", "9000")
    monkeypatch.setenv("REELGATE_PUBLIC_URL", "https://videos.example.com/")
    s = load_settings(host="0.0.0.0")  # noqa: S104 - a value under test, nothing binds
    assert s.port == 9000
    assert s.base_url == "https://videos.example.com"
    assert load_settings(port=9100).port == 9100


def test_toml_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "reelgate.toml").write_text("port = 8123\nsandbox_run_seconds = 9\n")
    s = load_settings()
    assert (s.port, s.sandbox_run_seconds) == (8123, 9)


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("REELGATE_PORT", "abc", "REELGATE_PORT"),
        ("REELGATE_PORT", "70000", "REELGATE_PORT"),
        ("REELGATE_DATABASE_URL", "mysql://x", "REELGATE_DATABASE_URL"),
        ("REELGATE_PUBLIC_URL", "ftp://x", "REELGATE_PUBLIC_URL"),
        ("REELGATE_ALLOW_PRIVATE_NETWORKS", '["not-a-net"]', "REELGATE_ALLOW_PRIVATE_NETWORKS"),
    ],
)
def test_bad_value_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert named in info.value.message
    assert "\n" not in info.value.message


def test_unknown_key_in_toml_is_named(tmp_path: Path) -> None:
    (tmp_path / "reelgate.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "prot" in info.value.message


def test_logs_are_text_at_a_terminal_and_json_otherwise(tmp_path: Path) -> None:
    from reelgate.logs import log_format

    with (tmp_path / "log").open("w") as piped:
        assert log_format(load_settings(), piped) == "json"  # a file or pipe: a collector
        assert log_format(load_settings(log_format="text"), piped) == "text"
    leader, follower = os.openpty()  # a real (pseudo-)terminal
    try:
        with os.fdopen(follower, "w") as terminal:
            assert log_format(load_settings(), terminal) == "text"
            assert log_format(load_settings(log_format="json"), terminal) == "json"
    finally:
        os.close(leader)
