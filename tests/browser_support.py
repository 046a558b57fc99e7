"""Browser tests' shared parts: a live server on a fresh SQLite database seeded with the demo listings
and users, Chromium's launch arguments, viewports and a keyboard login. Not a test module itself."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from moderation.api import create_app
from moderation.api.demo import seed
from moderation.checker import Checker

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
#: Users every browser test may sign in as (name → (role, password)).
USERS = {
    "xiaoli": ("reviewer", "review-pass-1"),
    "xiaowang": ("reviewer", "review-pass-2"),
    "zuzhang": ("lead", "lead-pass-1"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Live:
    """The running server: its URL and app (for setting state up directly)."""

    def __init__(self, url: str, app: Any) -> None:
        self.url = url
        self.app = app


@pytest.fixture(name="live")
def live_fixture(tmp_path: Path, rules_checker: Checker) -> Iterator[Live]:
    app = create_app(f"sqlite:///{tmp_path / 'console.db'}", rules_checker)
    seed(app.state.queue, rules_checker, echo=lambda *_: None)
    for name, (role, password) in USERS.items():
        app.state.accounts.create_user(name, role, password)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield Live(f"http://127.0.0.1:{port}", app)
    srv.should_exit = True
    thread.join(10)
    assert app.state.queue.verify() == []
    app.state.queue.close()


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing: apt-get install -y chromium")


def login(page: Any, url: str, user: str, start: str = "/review") -> None:
    """Sign in with the keyboard alone (the user name field has autofocus)."""
    from playwright.sync_api import expect

    page.goto(url + start)
    # Autofocus can land after the load event; typing before it loses keystrokes.
    expect(page.get_by_label("用户名")).to_be_focused()
    page.keyboard.type(user)
    expect(page.get_by_label("用户名")).to_have_value(user)
    page.keyboard.press("Tab")
    page.keyboard.type(USERS[user][1])
    page.keyboard.press("Enter")
    expect(page).to_have_url(url + start)
