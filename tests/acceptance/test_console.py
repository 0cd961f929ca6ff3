"""The web console in a real browser: headless Chromium (Debian's) driven by Playwright.

A live gateway on loopback with short sandbox timings; each test signs in as a person would,
checks what the page shows, that no request leaves the gateway's origin and that no script
error or policy violation happened. Screenshots go to ``test-artifacts/console/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from tests.conftest import REPO, LiveServer
from tests.integration.test_console_pages import ADMIN, console_gateway

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO / "test-artifacts" / "console"
WAIT_MS = 30_000
# Long enough for a page to load before the task ends (even on a busy machine), so the page is
# seen to follow it; short enough to finish in about three seconds.
LIVE = {"queue_seconds": 1.5, "run_seconds": 1.5}
FAST = {"queue_seconds": 0.2, "run_seconds": 0.3}


def _playwright() -> Any:
    """Playwright's sync entry point, or a skip (a failure under CI=true) naming what is missing."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing is None and not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests must run under CI: {missing}")
        pytest.skip(f"browser tests need Chromium: {missing}")
    return sync_playwright


@pytest.fixture(scope="module")
def browser(pytestconfig: pytest.Config) -> Iterator[Any]:
    sync_playwright = _playwright()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
    # Past output capture, so the path shows in every run.
    with pytestconfig.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\nconsole screenshots: {ARTIFACTS}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    yield from console_gateway(tmp_path_factory)


@dataclass
class Tab:
    """One page in its own browser context, with everything it requested and complained about."""

    page: Any
    origin: str
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(self.origin + path)

    def sign_in(self, token: str) -> None:
        self.goto("/console/")
        self.page.get_by_label("Token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url("**/console/t*", timeout=WAIT_MS)

    def nav(self, name: str) -> None:
        self.page.get_by_role("navigation").get_by_role("link", name=name).click()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def check_clean(self, *secrets: str) -> None:
        """Nothing outside the gateway's origin, no secret in a URL, no error in the page."""
        outside = [u for u in self.requests if not _same_origin(u, self.origin)]
        assert outside == []
        assert self.requests, "the page made no request at all"
        for secret in secrets:
            assert not [u for u in self.requests if secret in u]
        assert self.problems == []


def _same_origin(url: str, origin: str) -> bool:
    if url.startswith(("data:", "blob:")):
        return True
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" == origin


@pytest.fixture
def open_tab(browser: Any, gateway: LiveServer) -> Iterator[Any]:
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 900) -> Tab:
        context = browser.new_context(viewport={"width": width, "height": height})
        contexts.append(context)
        page = context.new_page()
        tab = Tab(page, gateway.url)
        page.on("request", lambda r: tab.requests.append(r.url))
        page.on("pageerror", lambda e: tab.problems.append(f"script error: {e}"))
        page.on(
            "console",
            lambda m: (
                tab.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        return tab

    yield make
    for context in contexts:
        context.close()


def create_task(server: LiveServer, timing: dict[str, float] = FAST) -> str:
    body = {"model": "sandbox-t2v", "prompt": "a paper boat", "duration": 1, "size": "320x180"}
    with server.client() as c:
        r = c.post("/v1/video/generations", json={**body, "metadata": timing})
    assert r.status_code == 200, r.text
    return str(r.json()["task_id"])


def test_a_wrong_token_is_refused_on_the_sign_in_page(open_tab: Any) -> None:
    tab = open_tab()
    tab.goto("/console/")
    tab.page.get_by_label("Token").fill("rg_not-a-token")
    tab.page.get_by_role("button", name="Sign in").click()
    alert = tab.page.locator("#signin-error")
    alert.wait_for(state="visible", timeout=WAIT_MS)
    assert "not valid" in alert.inner_text()
    assert tab.page.url.endswith("/console/")
    # The refused sign-in's 401s are the only errors the page may log.
    tab.problems = [p for p in tab.problems if "401" not in p]
    tab.check_clean("rg_not-a-token")


def test_create_from_the_form_watch_it_finish_and_play_it(
    open_tab: Any, gateway: LiveServer
) -> None:
    tab = open_tab()
    page = tab.page
    tab.sign_in(gateway.token)
    tab.nav("New video")
    page.get_by_label("Model").select_option("sandbox-t2v")
    page.get_by_label("Prompt").fill("a paper boat on a rainy street")
    page.get_by_label("Duration (seconds)").fill("1")
    page.get_by_label("Size").fill("320x180")
    # The options come from GET /v1/models: the sandbox's timing knobs.
    page.get_by_label("queue_seconds").fill(str(LIVE["queue_seconds"]))
    page.get_by_label("run_seconds").fill(str(LIVE["run_seconds"]))
    tab.shot("new")
    page.get_by_role("button", name="Create video").click()
    page.wait_for_url("**/console/tasks/task_*", timeout=WAIT_MS)

    status = page.locator("#status")
    page.wait_for_function("() => document.getElementById('status').textContent !== 'loading'")
    assert status.inner_text() in ("queued", "in progress")
    page.evaluate("window.stillTheSamePage = true")
    status.filter(has_text="success").wait_for(timeout=WAIT_MS)
    # Reached success from the event stream, without a reload.
    assert page.evaluate("window.stillTheSamePage") is True

    duration = page.wait_for_function(
        """() => { const v = document.getElementById('player');
                   return v.readyState >= 1 && Number.isFinite(v.duration) && v.duration > 0
                          ? v.duration : false; }""",
        timeout=WAIT_MS,
    ).json_value()
    assert 0.5 < duration < 2
    page.evaluate("const v = document.getElementById('player'); v.muted = true; v.play()")
    page.wait_for_function(
        "() => document.getElementById('player').currentTime > 0", timeout=WAIT_MS
    )
    page.wait_for_function("() => document.getElementById('last-frame').naturalWidth === 320")
    facts = page.locator("#facts").inner_text()
    assert "sandbox" in facts
    assert "sbx-" in facts  # the upstream id
    assert "a paper boat on a rainy street" in page.locator("#request").inner_text()
    timeline = page.locator("#timeline li")
    assert timeline.count() == 4
    assert page.locator("#timeline li.pending").count() == 0
    page.evaluate("document.getElementById('player').pause()")
    tab.shot("task")
    tab.check_clean(gateway.token)


def test_an_uploaded_image_becomes_the_first_frame(
    open_tab: Any, gateway: LiveServer, tmp_path: Path
) -> None:
    first = tmp_path / "first.png"
    Image.new("RGB", (320, 180), (200, 40, 40)).save(first)
    tab = open_tab()
    page = tab.page
    tab.sign_in(gateway.token)
    tab.nav("New video")
    image = page.get_by_label("First frame (image)")
    assert not image.is_visible()  # text-to-video takes no image
    page.get_by_label("Model").select_option("sandbox-i2v")
    page.get_by_label("Prompt").fill("from a red frame")
    page.get_by_label("Duration (seconds)").fill("1")
    image.set_input_files(str(first))
    page.locator("#image-preview").wait_for()
    page.get_by_role("button", name="Create video").click()
    page.wait_for_url("**/console/tasks/task_*", timeout=WAIT_MS)
    page.locator("#status").filter(has_text="success").wait_for(timeout=WAIT_MS)
    assert "image/png data" in page.locator("#request").inner_text()
    tab.check_clean(gateway.token)


def test_the_tasks_table_follows_a_task_live_and_filters(
    open_tab: Any, gateway: LiveServer
) -> None:
    task_id = create_task(gateway, LIVE)
    tab = open_tab()
    page = tab.page
    tab.sign_in(gateway.token)
    row = page.locator(f"#row-{task_id}")
    row.wait_for(timeout=WAIT_MS)
    assert row.get_attribute("data-status") in ("queued", "in_progress")
    page.evaluate("window.stillTheSamePage = true")
    page.locator(f"#row-{task_id}[data-status=success]").wait_for(timeout=WAIT_MS)
    assert page.evaluate("window.stillTheSamePage") is True
    assert "success" in row.locator("td").nth(1).inner_text()
    page.locator("#announcer").filter(has_text="is now success").wait_for(timeout=WAIT_MS)
    tab.shot("tasks")

    page.get_by_label("Status").select_option("failure")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/tasks?status=failure*")
    page.locator("#tasks-empty").wait_for(state="visible", timeout=WAIT_MS)
    assert page.locator(f"#row-{task_id}").count() == 0
    tab.check_clean(gateway.token)


def test_an_admin_creates_and_revokes_a_token(open_tab: Any, gateway: LiveServer) -> None:
    create_task(gateway)
    tab = open_tab()
    page = tab.page
    tab.sign_in(ADMIN)
    page.wait_for_url("**/console/tokens")
    page.get_by_label("Name").fill("short-lived")
    page.get_by_label("Creates per minute").fill("30")
    page.get_by_role("button", name="Create token").click()
    secret = page.locator("#new-token-value")
    secret.wait_for(state="visible", timeout=WAIT_MS)
    token = secret.inner_text()
    assert token.startswith("rg_")
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/v1/models", headers=auth).status_code == 200
        row = page.locator("#tokens tbody tr").filter(has_text="short-lived")
        assert "30/min" in row.inner_text()
        tab.shot("tokens")
        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Revoke").click()
        page.locator("tr[data-state=revoked]").filter(has_text="short-lived").wait_for(
            timeout=WAIT_MS
        )
        assert c.get("/v1/models", headers=auth).status_code == 401

    tab.nav("Usage")
    page.locator("#chart svg rect").first.wait_for(timeout=WAIT_MS)
    assert "Every token" in page.locator("#usage-scope").inner_text()
    tab.shot("usage")
    tab.nav("Channels")
    page.locator(
        "#channels tbody tr, #channels-error:not(:empty), #channels-empty:visible"
    ).first.wait_for(timeout=WAIT_MS)
    tab.shot("channels")
    tab.check_clean(ADMIN, token)


def test_a_phone_wide_screen_needs_no_horizontal_scroll(open_tab: Any, gateway: LiveServer) -> None:
    create_task(gateway)
    tab = open_tab(width=390, height=844)
    page = tab.page
    tab.sign_in(gateway.token)
    page.locator("#tasks tbody tr").first.wait_for(timeout=WAIT_MS)
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    tab.shot("tasks-390px")
    tab.nav("New video")
    page.get_by_label("Prompt").wait_for()
    page.locator("#option-fields input").first.wait_for()
    assert page.evaluate(overflow) <= 0
    tab.check_clean(gateway.token)
