"""The web console over HTTP (no browser): pages, policy headers, assets, and its two JSON routes.

A live gateway on loopback with an admin token; the browser tests drive the same pages.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from reelgate.api.console import PAGES, summarize_ref
from tests.conftest import REPO, LiveServer, server_env
from tests.integration.test_seed_api import png_data_uri

ADMIN = "admin-secret-for-console-tests"
CONSOLE = REPO / "src" / "reelgate" / "console"
# An absolute URL in markup, a stylesheet or a script means a request to another origin.
EXTERNAL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# Namespace names are identifiers, never fetched.
NAMESPACES = ("http://www.w3.org/2000/svg",)


def console_gateway(factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A live gateway whose operator signs in with ``ADMIN`` (the browser tests use it too)."""
    workdir = factory.mktemp("console")
    server = LiveServer(workdir, server_env(workdir, REELGATE_ADMIN_TOKEN=ADMIN))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from console_gateway(tmp_path_factory)


@pytest.fixture
def web(gateway: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def page_paths() -> list[str]:
    return [f"/console{path or '/'}" for path, *_ in PAGES] + ["/console/tasks/task_abc"]


def test_serve_prints_the_console_url(gateway: LiveServer) -> None:
    assert f"{gateway.url}/console/" in gateway.output


@pytest.mark.parametrize("path", page_paths())
def test_every_page_is_html_under_a_strict_policy(
    web: httpx.Client, gateway: LiveServer, path: str
) -> None:
    r = web.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert r.headers["referrer-policy"] == "no-referrer"
    html = r.text
    assert '<html lang="en">' in html
    assert '<main id="main"' in html
    assert "<script>" not in html  # no inline script: the policy would refuse it
    assert "style=" not in html
    assert gateway.token not in html
    assert ADMIN not in html
    for ref in re.findall(r'(?:src|href|action)="([^"]*)"', html):
        assert ref.startswith(("/", "#")), ref


def test_pages_a_signed_in_person_sees_depend_on_no_secret(web: httpx.Client) -> None:
    # The server never knows who is signed in: the same bytes for everyone.
    auth = {"Authorization": f"Bearer {ADMIN}"}
    assert web.get("/console/tasks", headers=auth).text == web.get("/console/tasks").text


def test_the_sign_in_field_has_no_name_so_a_plain_submit_sends_nothing(web: httpx.Client) -> None:
    html = web.get("/console/").text
    field = re.search(r"<input id=\"token\"[^>]*>", html)
    assert field is not None
    assert "name=" not in field.group(0)
    assert 'type="password"' in field.group(0)
    assert 'method="post"' in html


def test_an_unknown_page_or_a_malformed_task_id_is_a_404(web: httpx.Client) -> None:
    r = web.get("/console/tasks/<script>")
    assert r.status_code == 404
    assert "<script>" not in r.text.split("</head>")[1]
    assert web.get("/console/nowhere").status_code == 404


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("console.js", "text/javascript"),
        ("tasks.js", "text/javascript"),
        ("admin.js", "text/javascript"),
        ("console.css", "text/css"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_assets_are_served_by_reelgate(web: httpx.Client, name: str, content_type: str) -> None:
    r = web.get(f"/console/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(content_type)
    assert r.content == (CONSOLE / "static" / name).read_bytes()


def test_no_template_or_asset_names_another_origin() -> None:
    files = sorted(p for p in CONSOLE.rglob("*") if p.is_file())
    assert len(files) >= 10
    for path in files:
        text = path.read_text()
        for namespace in NAMESPACES:
            text = text.replace(namespace, "")
        assert EXTERNAL.findall(text) == [], path.name


def test_package_data_ships_every_console_file() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["reelgate"]
    package = REPO / "src" / "reelgate"
    for path in CONSOLE.rglob("*"):
        if path.is_file():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch(relative, g) for g in globs), relative


def test_whoami_tells_the_admin_from_a_token(web: httpx.Client, gateway: LiveServer) -> None:
    def role(token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return web.get("/console/api/whoami", headers=headers)

    assert role(ADMIN).json()["data"] == {"role": "admin"}
    assert role(gateway.token).json()["data"] == {"role": "user", "name": "default"}
    assert role(None).status_code == 401
    assert role(None).json()["code"] == "missing_token"
    assert role("rg_wrong").status_code == 401
    assert role(ADMIN + "x").status_code == 401
    assert role(gateway.token).headers["cache-control"] == "no-store"


def test_task_details_show_the_request_and_upstream_id_to_the_owner_only(
    web: httpx.Client, gateway: LiveServer
) -> None:
    image = png_data_uri()
    with gateway.client() as c:
        r = c.post(
            "/v1/video/generations",
            json={
                "model": "sandbox-i2v",
                "prompt": "from red",
                "image": image,
                "duration": 1,
                "size": "160x120",
            },
            headers={"X-Request-Id": "console-trace-1"},
        )
        assert r.status_code == 200, r.text
        task_id = r.json()["task_id"]
    gateway.wait_terminal(task_id)
    auth = {"Authorization": f"Bearer {gateway.token}"}
    data = web.get(f"/console/api/tasks/{task_id}", headers=auth).json()["data"]
    assert data["task_id"] == task_id
    assert data["provider"] == "sandbox"
    assert data["upstream_id"].startswith("sbx-")
    assert (data["channel"], data["request_id"]) == ("sandbox", "console-trace-1")
    assert data["request"]["prompt"] == "from red"
    assert data["request"]["images"] == [summarize_ref(image)]
    assert "base64" not in str(data)
    assert data["created_at"] <= data["submitted_at"]

    assert web.get(f"/console/api/tasks/{task_id}").status_code == 401
    with httpx.Client(base_url=gateway.url, timeout=30) as admin:
        made = admin.post(
            "/v1/admin/tokens",
            json={"name": "someone else"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ).json()["data"]["token"]
    other = web.get(f"/console/api/tasks/{task_id}", headers={"Authorization": f"Bearer {made}"})
    assert other.status_code == 404
    assert other.json()["code"] == "task_not_found"


def test_no_token_reaches_the_server_log(web: httpx.Client, gateway: LiveServer) -> None:
    auth = {"Authorization": f"Bearer {gateway.token}"}
    assert web.get("/console/api/whoami", headers=auth).status_code == 200
    assert web.get("/console/api/tasks/task_missing", headers=auth).status_code == 404
    log = (gateway.workdir / "server.log").read_text()
    assert gateway.token not in log
    assert ADMIN not in log


@pytest.mark.parametrize(
    ("ref", "shown"),
    [
        ("https://example.com/a.png", "https://example.com/a.png"),
        ("data:image/png;base64,AAAA", "image/png data, 3 bytes"),
        ("data:,hello", "data data, 5 bytes"),
        ("data:image/png;name=a.png;base64,AAAAAAAA", "image/png data, 6 bytes"),
    ],
)
def test_image_references_are_summarized(ref: str, shown: str) -> None:
    assert summarize_ref(ref) == shown


def test_every_console_page_is_listed_once() -> None:
    paths = [p for p, *_ in PAGES]
    assert len(paths) == len(set(paths))
    templates = {t for _, t, *_ in PAGES} | {"task.html", "missing.html", "base.html"}
    assert templates == {p.name for p in (CONSOLE / "templates").glob("*.html")}
    assert all(Path(CONSOLE / "templates" / t).exists() for t in templates)
