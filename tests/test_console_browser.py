"""The reviewer console in a real browser (Debian's Chromium driven by Playwright).

Logs in, claims with the keyboard, decides, undoes, decides-and-takes-the-next, and checks that keys
are ignored while typing. Screenshots go to artifacts/ for a human look.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from moderation.api import create_app
from moderation.api.demo import seed
from moderation.checker import Checker

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, rules_checker: Checker) -> Iterator[str]:
    app = create_app(f"sqlite:///{tmp_path / 'console.db'}", rules_checker)
    seed(app.state.queue, rules_checker, echo=lambda *_: None)
    app.state.accounts.create_user("xiaoli", "reviewer", "review-pass-1")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    assert app.state.queue.verify() == []
    app.state.queue.close()


def test_keyboard_review_flow(server: str) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, locale="zh-CN")
        page.goto(f"{server}/review")
        expect(page).to_have_url(f"{server}/review/login")
        page.fill('input[name="username"]', "xiaoli")
        page.fill('input[name="password"]', "review-pass-1")
        page.click('button[type="submit"]')
        expect(page).to_have_url(f"{server}/review")
        expect(page.locator("#queue tr.row").first).to_be_visible()
        page.keyboard.press("j")
        expect(page.locator("#queue tr.row.selected")).to_have_count(1)
        page.screenshot(path=str(ARTIFACTS / "console-queue.png"), full_page=False)

        page.keyboard.press("n")  # claim the next item
        page.wait_for_url(f"{server}/review/items/*")
        first_url = page.url
        item = page.locator("#item")
        expect(item).to_have_attribute("data-held-by-me", "yes")
        expect(page.locator("mark.hl").first).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "console-item.png"), full_page=True)

        page.click("#internal-note")  # keys are ignored while typing
        page.keyboard.type("ar")
        expect(page.locator("#internal-note")).to_have_value("ar")
        expect(item).to_have_attribute("data-status", "claimed")
        page.keyboard.press("Escape")

        page.keyboard.press("a")  # approve
        expect(page.locator("#toast")).to_contain_text("已通过")
        expect(page.locator("#item")).to_have_attribute("data-status", "decided")
        page.keyboard.press("u")  # undo: back in my hands
        expect(page.locator("#toast")).to_contain_text("已撤销")
        expect(page.locator("#item")).to_have_attribute("data-status", "claimed")
        assert page.url == first_url

        page.keyboard.press("n")  # decide with the preselected outcome and take the next
        page.wait_for_url(lambda url: url != first_url and "/review/items/" in url)
        expect(page.locator("#toast")).to_be_visible()
        expect(page.locator("#item")).to_have_attribute("data-held-by-me", "yes")
        page.keyboard.press("?")
        expect(page.locator("#help")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "console-help.png"))
        page.keyboard.press("Escape")
        browser.close()
