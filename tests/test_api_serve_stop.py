"""``moderation serve`` stops promptly on SIGTERM while worst-case checks are in flight: the checks
end at once (their requests get 503 with Retry-After) instead of the process hanging until they finish."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from moderation.api.accounts import Accounts
from moderation.api.settings import Settings
from moderation.queue import ReviewQueue

pytestmark = pytest.mark.slow  # a real server process

ROOT = Path(__file__).resolve().parent.parent


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_sigterm_ends_in_flight_checks_promptly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    queue = ReviewQueue(url)
    accounts = Accounts(queue.db, settings=Settings(password_hashing="cheap"))
    token = accounts.create_token(accounts.create_user("svc", "service").id, "t")
    queue.close()
    port = _port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from moderation.cli import main; main()",
            "serve",
            "--db",
            url,
            "--port",
            str(port),
            "--no-classifier",
        ],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if _get(port, "/health") == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        body = json.dumps({"id": "worst", "title": "最佳 " * 280_000}, ensure_ascii=False).encode()
        answers: list[tuple[int, str | None]] = []

        def send() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                conn.request(
                    "POST",
                    "/v1/check",
                    body=body,
                    headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                answers.append((response.status, response.getheader("retry-after")))
            except (OSError, http.client.HTTPException) as exc:
                answers.append((0, type(exc).__name__))
            finally:
                conn.close()

        senders = [threading.Thread(target=send) for _ in range(2)]
        for t in senders:
            t.start()
        time.sleep(1.0)  # both in flight: the rules process is still loading, or checking
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        stopped_after = time.monotonic() - started
        for t in senders:
            t.join(30)
        assert stopped_after < 5, stopped_after
        assert all(status in (200, 503) for status, _ in answers), answers
        assert any(status == 503 and retry == "1" for status, retry in answers), answers
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
