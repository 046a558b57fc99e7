"""Probe a running ``moderation serve`` from outside, as an attacker and a faulty environment would
(issue 12), on SQLite and PostgreSQL, and print the figures the issue's bars ask for:

1. malformed requests (~450: integers past the column range, inf/nan/1e300, tampered cursors, NUL and
   unpaired surrogates in every text field, over-long ids, broken JSON, odd headers) → how many 5xx;
2. adversarial listings (up to 2 MB): server CPU and wall time per listing, and the answer;
3. ``/health`` p50/p99 while two clients send worst-case listings back to back (and their 503s);
4. logins: 20 wrong passwords for one account → how many refused, is the right one refused too;
   32 concurrent logins (argon2id, 64 MiB each) → server memory peak (summed RSS and PSS over the
   whole process tree) and other users' p95;
5. 16 reviewers drain the queue while (PostgreSQL) every server connection is terminated every 0.5 s,
   and (both) while the server is SIGKILLed and restarted every 3 s → 5xx during and after,
   decisions lost or doubled, orphaned claims and how long until their leases return them;
6. SIGTERM with worst-case checks in flight → seconds until the server has exited.

Everything runs against 127.0.0.1 with bounded loops. The server is the real ``moderation serve``
(defaults: classifier loaded, one worker process; ``--serve-arg=--workers=2`` for more).

    .venv/bin/python scripts/probe_hostile.py                    # both backends, every probe
    .venv/bin/python scripts/probe_hostile.py --backend sqlite --skip load,logins
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote as _quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from moderation.api.accounts import Accounts  # noqa: E402
from moderation.api.settings import Settings  # noqa: E402
from moderation.queue import ReviewQueue  # noqa: E402
from moderation.queue.db import temporary_schema  # noqa: E402
from moderation.queue.roles import Actor  # noqa: E402
from moderation.schema import CheckResult, Finding, Listing  # noqa: E402

PG_URL = os.environ.get("PROBE_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery staple"
BIG, HUGE, I64 = str(2**31), "9" * 40, str(2**63)


def quote(value: str, safe: str = "/") -> str:
    """Percent-encode, passing unpaired surrogates through as their (invalid UTF-8) bytes."""
    return _quote(value, safe=safe, errors="surrogatepass")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- the server --------------------------------------------------------------------------------------


class Server:
    """``moderation serve`` in its own process group."""

    def __init__(self, url: str, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.cmd = [
            str(ROOT / ".venv/bin/moderation"),
            "serve",
            "--db",
            url,
            "--port",
            str(self.port),
            *(extra or []),
        ]
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(self.port, "GET", "/health")[0] == 200:
                    return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError("server did not start")

    def pids(self) -> list[int]:
        """The server's whole process tree: ``serve``, its uvicorn workers, their rules processes and
        multiprocessing's resource tracker, however deep."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():
                    with contextlib.suppress(OSError):
                        todo += [int(c) for c in (task / "children").read_text().split()]
        return out

    def cpu_seconds(self) -> float:
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def memory_mib(self) -> dict[str, float]:
        """The tree's memory two ways: ``rss`` summed over processes (counts a page shared by two
        processes twice: what ``ps``-style tools and a naive outside probe add up) and ``pss``
        (``/proc/<pid>/smaps_rollup``: each shared page split between its sharers, so the sum is the
        memory the tree really holds), with the number of processes."""
        rss = pss = 0
        processes = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                        processes += 1
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        return {"rss": rss / 1024, "pss": pss / 1024, "processes": processes}

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        if own:
            conn.close()


def api(port: int, method: str, path: str, token: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    raw = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    status, data, _ = request(
        port,
        method,
        path,
        raw,
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers},
    )
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data[:200]


# -- setup --------------------------------------------------------------------------------------------


def fresh_database(backend: str, workdir: Path, tag: str) -> tuple[str, Any]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'probe.db'}", lambda: None
    url, drop = temporary_schema(PG_URL, "probe_")
    return f"{url}&application_name={tag}", drop


def setup(url: str, login_users: int) -> dict[str, Any]:
    """Users with API tokens (cheap hashes: they never log in) and ``login_users`` console users
    with strong argon2id hashes, like real ones."""
    queue = ReviewQueue(url)
    cheap = Accounts(queue.db, settings=Settings(password_hashing="cheap"))
    strong = Accounts(
        queue.db, settings=Settings(password_hashing="strong", login_max_waiting=64, login_wait_s=60)
    )
    tokens: dict[str, str] = {}
    for role in ("admin", "lead", "service", "auditor"):
        tokens[role] = cheap.create_token(cheap.create_user(role, role).id, "probe")
    reviewers = [cheap.create_token(cheap.create_user(f"rev{i}", "reviewer").id, "probe") for i in range(32)]
    for i in range(login_users):
        strong.create_user(f"person{i}", "reviewer", PASSWORD)
    queue.close()
    return {"tokens": tokens, "reviewers": reviewers}


def seed(url: str, items: int, prefix: str) -> None:
    queue = ReviewQueue(url)
    service = Actor(id=0, username="probe", role="service")
    for i in range(items):
        listing = Listing(id=f"{prefix}-{i}", title=f"全网最低价 保温杯 {i}", seller_id=f"s-{i % 20}")
        result = CheckResult(
            id=listing.id,
            verdict="block",
            risk=0.9,
            findings=[
                Finding(
                    rule="absolute.scoped_superlative",
                    family="absolute_claims",
                    law="广告法第九条第三项",
                    severity="critical",
                    field="title",
                    start=0,
                    end=5,
                    text="全网最低价",
                    message="绝对化用语",
                )
            ],
        )
        queue.intake.enqueue(listing, result, service)
    queue.close()


# -- 1. malformed requests ----------------------------------------------------------------------------


def malformed_requests(
    port: int, tokens: dict[str, str]
) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    """(method, path, body, headers): ~450 requests a careless or hostile client could send."""
    admin = {"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "application/json"}
    out: list[tuple[str, str, bytes | None, dict[str, str]]] = []

    def add(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> None:
        raw = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        out.append((method, path, raw, headers or admin))

    # a real item, a real listing and cursors to tamper with
    listing = {"id": "probe-real", "title": "全网最低价 销量第一", "enqueue": True}
    _, checked = api(port, "POST", "/v1/check", tokens["service"], listing)
    item = checked["queue"]["item_id"]
    api(port, "POST", "/v1/check", tokens["service"], {**listing, "id": "probe-real-2"})
    _, page = api(port, "GET", "/v1/queue/items?limit=1", tokens["lead"])
    cursor = page.get("next_cursor") or "x.y"
    payload, _, tag = cursor.partition(".")

    bad_ints = [
        BIG,
        HUGE,
        I64,
        "-" + I64 + "1",
        "-1",
        "0",
        "1e3",
        "nan",
        "inf",
        "%00",
        "abc",
        "1.5",
        "0x10",
        "%ff",
    ]
    item_paths = [
        "/v1/queue/items/{}",
        "/v1/queue/items/{}/claim",
        "/v1/queue/items/{}/heartbeat",
        "/v1/queue/items/{}/release",
        "/v1/queue/items/{}/decision",
        "/v1/queue/items/{}/escalate",
        "/v1/queue/items/{}/comments",
        "/v1/queue/items/{}/undo",
        "/v1/queue/items/{}/revert",
        "/v1/queue/items/{}/assign",
        "/v1/queue/items/{}/appeal",
        "/review/items/{}",
    ]
    for template in item_paths:
        method = "GET" if template.endswith("/{}") else "POST"
        for value in bad_ints:
            add(method, template.format(value), None if method == "GET" else {})
    for value in bad_ints:
        add("PATCH", f"/v1/queue/items/{value}", {"version": 1, "priority": 1})
        add("DELETE", f"/v1/users/admin/tokens/{value}")
    int_bodies = [int(BIG), int(HUGE), int(I64), -int(I64) * 2, 1e300, -1, "1", None, True, [1], {"a": 1}]
    decision = {"outcome": "approved", "claim_token": "t", "version": 1, "listing_revision": 1}
    for value in int_bodies:
        add("POST", f"/v1/queue/items/{item}/decision", {**decision, "version": value})
        add("POST", f"/v1/queue/items/{item}/decision", {**decision, "listing_revision": value})
        add("PATCH", f"/v1/queue/items/{item}", {"version": value, "priority": 1})
        add("PATCH", f"/v1/queue/items/{item}", {"version": 1, "priority": value})
        add("POST", "/v1/queue/bulk-decide", {"item_ids": [value], "outcome": "approved"})
        add("POST", "/v1/outbox/ack", {"ids": [value]})
        add("POST", "/v1/outbox/lease", {"limit": value, "lease_seconds": value})
        add("POST", f"/v1/queue/items/{item}/escalate", {"version": value})
    for name in ("min_age_hours", "max_age_hours", "min_risk"):
        for value in (
            "inf",
            "-inf",
            "nan",
            "1e300",
            "-1e300",
            "1e-300",
            "1e309",
            "0x10",
            "",
            "%00",
            "1" * 400,
        ):
            add("GET", f"/v1/queue/items?{name}={value}")
    for value in ("inf", "nan", "1e300", "0", "-1", "1e-300"):
        add("GET", f"/v1/queue/stats?hours={value}")
        add("GET", f"/review?age={value}")
    for name, base in (
        ("limit", "/v1/queue/items"),
        ("after", "/v1/queue/events"),
        ("item_id", "/v1/queue/events"),
        ("after", "/v1/outbox"),
        ("limit", "/v1/outbox"),
        ("after", "/v1/audit/logins"),
    ):
        for value in (BIG, HUGE, I64, "-1", "nan", "1e3", "%00"):
            add("GET", f"{base}?{name}={value}")
    forged = [
        base64.urlsafe_b64encode(json.dumps(["priority", int(HUGE), "2026-01-01", 1]).encode()).decode()
        + "."
        + tag,
        payload + "." + tag[:-2] + "AA",
        payload[:-3] + "." + tag,
        payload,
        "." + tag,
        cursor + "x",
        "W10=",
        "..",
        "%00",
        "A" * 499,
        cursor.replace(".", "%00"),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ]
    for value in forged:
        add("GET", f"/v1/queue/items?limit=1&cursor={quote(value, safe='')}")
        add("GET", f"/review?cursor={quote(value, safe='')}")
    add("GET", f"/v1/queue/items?limit=1&sort=oldest&cursor={quote(cursor, safe='')}")
    texts = ["\x00", "a\x00b", "\ud800", "\udfff x", "x" * 100_000, "\u202e\u200b", "%s%n{0}", "' OR 1=1 --"]
    for value in texts:
        add("POST", f"/v1/queue/items/{item}/comments", {"text": value})
        add("POST", f"/v1/queue/items/{item}/escalate", {"note": value})
        add("POST", f"/v1/queue/items/{item}/revert", {"reason": value})
        add("POST", f"/v1/queue/items/{item}/appeal", {"reason": value})
        add("POST", f"/v1/queue/items/{item}/assign", {"username": value})
        add("POST", f"/v1/queue/items/{item}/decision", {**decision, "claim_token": value})
        add(
            "POST",
            f"/v1/queue/items/{item}/decision",
            {**decision, "seller_message": value, "outcome": "rejected", "reason_codes": [value]},
        )
        add("POST", "/v1/queue/claim-next", {"family": value[:80], "category": value[:40]})
        add(
            "POST", "/v1/users", {"username": value[:100], "role": "reviewer", "password": value + "12345678"}
        )
        add("POST", "/v1/users/admin/tokens", {"name": value[:100]})
        add("GET", f"/v1/queue/items?seller={quote(value[:200])}&family={quote(value[:80])}")
        add("GET", f"/v1/users/{quote(value[:100], safe='')}/tokens")
        add("DELETE", f"/v1/listings/{quote(value, safe='')}")
        add(
            "POST",
            "/v1/check",
            {
                "id": value,
                "title": "最佳" + value,
                "seller_id": value,
                "brand": value,
                "attributes": {value[:50]: value},
                "images": [],
                "enqueue": True,
            },
        )
    odd_listings: list[Any] = [
        {"id": "x" * 300, "title": "最佳", "enqueue": True},
        {"id": "x" * 5000, "title": "最佳", "enqueue": True},
        {"id": "s", "title": "最佳", "seller_id": "s" * 300, "enqueue": True},
        {"id": 10**400, "title": "最佳"},
        {"id": 1e308, "title": "最佳"},
        {"id": True, "title": "最佳"},
        {"id": "a", "title": 5},
        {"id": "a", "title": "最佳", "attributes": {"k": {"deep": 1}}},
        {"id": "a", "title": "最佳", "attributes": {str(i): "v" for i in range(20_000)}, "enqueue": True},
        {"id": "a", "title": "最佳", "images": ["x"] * 50_000},
        {"id": "a", "title": "最佳", "category": "\x00"},
        {"id": "a", "title": "最佳", "enqueue": "yes"},
        {"id": "a", "title": "最佳", "category": None, "enqueue": True},
        {"id": "a", "title": "最佳", "description": None},
        [],
        "text",
        1,
        None,
    ]
    for body in odd_listings:
        add("POST", "/v1/check", body)
    for raw in (
        b"{",
        b"",
        b"\xff\xfe\x00",
        b"\xef\xbb\xbf{}",
        b'{"id": "a", "title": "\xed\xa0\x80"}',
        b'{"id": "a", "title": "' + b"[" * 100_000 + b'"}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"id": "a", "title": "x", "attributes": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000 + b"}",
        b'{"id": "a", "title": "x", "id": "b"}',
        b"null",
        b"1e999999",
    ):
        add("POST", "/v1/check", raw)
        add("POST", "/v1/queue/bulk-decide", raw)
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin-1",
    ):
        add(
            "POST",
            "/v1/check",
            b'{"id": "a", "title": "\xe6\x9c\x80"}',
            {"Authorization": admin["Authorization"], "Content-Type": content_type},
        )
    bad_headers = [
        {"Authorization": "Bearer " + "x" * 8000},
        {"Authorization": "Bearer \xff\xfe"},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer"},
        {"Cookie": "msession=%00"},
        {"Cookie": "msession=" + "x" * 4000},
        {"Cookie": "msession=\xff"},
    ]
    for headers in bad_headers:
        add("GET", "/v1/me", None, headers)
        add("POST", "/v1/queue/claim-next", b"{}", {**headers, "X-CSRF-Token": "\xff"})
    for key in ("k" * 300, "\xff\xfe", "%00", "a b"):
        add("POST", f"/v1/queue/items/{item}/decision", decision, {**admin, "Idempotency-Key": key})
    for form in (
        b"username=%00&password=x&csrf_token=x",
        b"username=" + b"a" * 500 + b"&password=x&csrf_token=x",
        b"username=a&password=%ff%fe&csrf_token=x",
        b"password=x",
        b"\xff\xfe",
        b"username=a&password=" + b"p" * 100_000 + b"&csrf_token=x",
    ):
        add("POST", "/review/login", form, {"Content-Type": "application/x-www-form-urlencoded"})
    for method in ("PUT", "TRACE", "OPTIONS", "DELETE"):
        add(method, "/v1/check", b"{}")
    add("GET", "/v1/queue/items?" + "&".join(f"p{i}=x" for i in range(2000)))
    add("GET", "/v1/users/" + "u" * 5000 + "/tokens")
    add("PATCH", "/v1/users/%00", {"active": False})
    add("PATCH", "/v1/users/rev1", {"active": "no"})
    add("POST", "/review/views", {"name": "\x00", "query": "x"})
    add("DELETE", f"/review/views/{HUGE}")
    return out


def probe_malformed(port: int, tokens: dict[str, str]) -> dict[str, Any]:
    cases = malformed_requests(port, tokens)
    statuses: dict[int, int] = {}
    fives: list[str] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for method, path, body, headers in cases:
        try:
            status, data, _ = request(port, method, path, body, headers, conn=conn)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            fives.append(f"{method} {path[:80]}: {type(exc).__name__}")
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            fives.append(f"{method} {path[:80]} -> {status} {data[:120]!r}")
    conn.close()
    return {
        "requests": len(cases),
        "statuses": dict(sorted(statuses.items())),
        "5xx": len(fives),
        "examples": fives[:10],
    }


# -- 2./3. adversarial listings and /health under load ------------------------------------------------

ADVERSARIAL = {
    "最佳 ×280,000 (1.96 MB)": lambda: "最佳 " * 280_000,
    "1 MB plain ASCII": lambda: ("the quick brown fox jumps over the lazy dog " * 24_000)[:1_000_000],
    "全网最低价第一 ×90,000 (1.9 MB)": lambda: "全网最低价第一" * 90_000,
    "zuì jiā pinyin ×200,000 (1.8 MB)": lambda: "zuì jiā " * 200_000,
}


def probe_adversarial(server: Server, token: str) -> list[dict[str, Any]]:
    rows = []
    for name, make in ADVERSARIAL.items():
        body = json.dumps(
            {"id": f"adv-{uuid.uuid4().hex[:6]}", "title": make()[: 1_900_000 // 3 * 3], "enqueue": True},
            ensure_ascii=False,
        ).encode()[: 2 * 1024 * 1024 - 64]
        if not body.endswith(b"}"):
            body = json.dumps(
                {"id": "adv", "title": make()[:600_000], "enqueue": True}, ensure_ascii=False
            ).encode()
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        status, data, _ = request(
            server.port,
            "POST",
            "/v1/check",
            body,
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=600,
        )
        wall, cpu = time.monotonic() - t0, server.cpu_seconds() - cpu0
        answer = json.loads(data) if status == 200 else {}
        rows.append(
            {
                "listing": name,
                "bytes": len(body),
                "status": status,
                "wall_s": round(wall, 2),
                "server_cpu_s": round(cpu, 2),
                "error": (answer.get("error") or {}).get("code"),
                "findings": len(answer.get("findings", [])),
                "truncated": answer.get("truncated"),
                "queued": (answer.get("queue") or {}).get("action"),
            }
        )
    return rows


def probe_health_under_load(server: Server, token: str, seconds: float) -> dict[str, Any]:
    worst = json.dumps({"id": "load", "title": "最佳 " * 280_000}, ensure_ascii=False).encode()
    stop = time.monotonic() + seconds
    sent: dict[int, int] = {}
    latencies: list[float] = []

    def attacker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        while time.monotonic() < stop:
            try:
                status, _, headers = request(
                    server.port,
                    "POST",
                    "/v1/check",
                    worst,
                    {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    conn=conn,
                )
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
                continue
            sent[status] = sent.get(status, 0) + 1
            if status == 503:
                time.sleep(float(headers.get("retry-after", "1")))
        conn.close()

    # same-run baseline: /health with nobody else sending
    quiet: list[float] = []
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    for _ in range(100):
        t0 = time.perf_counter()
        request(server.port, "GET", "/health", conn=conn)
        quiet.append(time.perf_counter() - t0)
        time.sleep(0.02)
    conn.close()
    stop = time.monotonic() + seconds
    attackers = [threading.Thread(target=attacker) for _ in range(2)]
    cpu0 = server.cpu_seconds()
    for t in attackers:
        t.start()
    time.sleep(1.0)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    while time.monotonic() < stop:
        t0 = time.perf_counter()
        request(server.port, "GET", "/health", conn=conn)
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.05)
    conn.close()
    for t in attackers:
        t.join(900)
    return {
        "seconds": seconds,
        "quiet_p50_ms": round(pct(quiet, 0.5) * 1000, 1),
        "quiet_p99_ms": round(pct(quiet, 0.99) * 1000, 1),
        "health_requests": len(latencies),
        "health_p50_ms": round(pct(latencies, 0.5) * 1000, 1),
        "health_p99_ms": round(pct(latencies, 0.99) * 1000, 1),
        "health_max_ms": round(max(latencies) * 1000, 1),
        "attacker_answers": sent,
        "server_cpu_s": round(server.cpu_seconds() - cpu0, 1),
    }


# -- 4. logins ----------------------------------------------------------------------------------------


def login(port: int, username: str, password: str, headers: dict[str, str] | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        status, page, response_headers = request(port, "GET", "/review/login", conn=conn)
        csrf = page.split(b'name="csrf_token" value="', 1)[1].split(b'"', 1)[0].decode()
        cookie = response_headers.get("set-cookie", "").split(";", 1)[0]
        form = f"username={quote(username)}&password={quote(password)}&csrf_token={csrf}".encode()
        status, _, _ = request(
            port,
            "POST",
            "/review/login",
            form,
            {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, **(headers or {})},
            conn=conn,
        )
        return status
    finally:
        conn.close()


def probe_logins(server: Server, tokens: dict[str, str], reviewers: list[str], people: int) -> dict[str, Any]:
    wrong = [login(server.port, "person0", f"wrong-{i}") for i in range(20)]
    right = login(server.port, "person0", PASSWORD)
    # 32 concurrent logins of other accounts (correct passwords) while 4 users list the queue
    stop = threading.Event()
    latencies: list[float] = []

    def other_user(token: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        while not stop.is_set():
            t0 = time.perf_counter()
            request(
                server.port,
                "GET",
                "/v1/queue/items?limit=20",
                None,
                {"Authorization": f"Bearer {token}"},
                conn=conn,
            )
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.02)
        conn.close()

    users = [threading.Thread(target=other_user, args=(t,)) for t in reviewers[:4]]
    for t in users:
        t.start()
    time.sleep(2)
    before = list(latencies)
    latencies.clear()
    memory0 = server.memory_mib()
    peak = {"rss": 0.0, "pss": 0.0}
    outcomes: list[int] = []
    gate = threading.Barrier(32)

    def person(i: int) -> None:
        gate.wait()
        outcomes.append(login(server.port, f"person{1 + i % (people - 1)}", PASSWORD))

    logins = [threading.Thread(target=person, args=(i,)) for i in range(32)]
    for t in logins:
        t.start()
    while any(t.is_alive() for t in logins):
        memory = server.memory_mib()
        peak = {k: max(peak[k], memory[k]) for k in peak}
        time.sleep(0.02)
    time.sleep(0.5)
    stop.set()
    for t in users:
        t.join()
    counts: dict[int, int] = {}
    for status in outcomes:
        counts[status] = counts.get(status, 0) + 1
    return {
        "20_wrong": {s: wrong.count(s) for s in sorted(set(wrong))},
        "then_right_password": right,
        "32_logins": counts,
        "processes": memory0["processes"],
        "rss_before_mib": round(memory0["rss"]),
        "rss_peak_mib": round(peak["rss"]),
        "pss_before_mib": round(memory0["pss"]),
        "pss_peak_mib": round(peak["pss"]),
        "others_p95_ms_before": round(pct(before, 0.95) * 1000, 1),
        "others_p95_ms_during": round(pct(latencies, 0.95) * 1000, 1),
    }


# -- 5. terminated database connections under reviewers -----------------------------------------------


def probe_kill_connections(
    server: Server,
    url: str,
    tag: str,
    reviewers: list[str],
    items: int,
    seconds: float,
    fault: str = "connections",
) -> dict[str, Any]:
    """16 reviewers drain the queue while a fault repeats: ``connections`` terminates every
    PostgreSQL backend of the server every 0.5 s; ``server`` SIGKILLs the whole server every few
    seconds and starts it again."""
    from sqlalchemy import create_engine, text

    seed(url, items, f"kill-{uuid.uuid4().hex[:4]}")
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT") if fault == "connections" else None
    stop_killing = threading.Event()
    killed = [0]

    def killer() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop_killing.is_set():
            if fault == "server":
                time.sleep(3.0)
                os.killpg(server.proc.pid, signal.SIGKILL)
                server.proc.wait()
                killed[0] += 1
                server.start()
                continue
            assert admin is not None
            with admin.connect() as conn:
                killed[0] += len(
                    conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :tag"
                        ),
                        {"tag": tag},
                    ).all()
                )
            time.sleep(0.5)

    statuses: dict[str, dict[int, int]] = {"during": {}, "after": {}}
    confirmed: list[int] = []
    lock = threading.Lock()

    def count(phase: str, status: int) -> None:
        with lock:
            statuses[phase][status] = statuses[phase].get(status, 0) + 1

    kill_thread = threading.Thread(target=killer)

    def reviewer(token: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for _ in range(items * 3):
            phase = "during" if kill_thread.is_alive() else "after"
            try:
                status, data, _ = request(server.port, "POST", "/v1/queue/claim-next", b"{}", h, conn=conn)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                time.sleep(0.2)  # the server is down (being restarted)
                continue
            count(phase, status)
            if status != 200:
                time.sleep(0.2)
                continue
            claim = json.loads(data)
            if claim["item"] is None:
                if phase == "after":
                    break
                time.sleep(0.2)
                continue
            body = json.dumps(
                {
                    "outcome": "rejected",
                    "reason_codes": ["absolute_claim"],
                    "claim_token": claim["claim_token"],
                    "version": claim["version"],
                    "listing_revision": claim["item"]["listing_revision"],
                }
            ).encode()
            key = uuid.uuid4().hex
            for _attempt in range(50):  # a 503 or a dead server: retried with the same Idempotency-Key
                try:
                    status, data, _ = request(
                        server.port,
                        "POST",
                        f"/v1/queue/items/{claim['item']['id']}/decision",
                        body,
                        {**h, "Idempotency-Key": key},
                        conn=conn,
                    )
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
                    time.sleep(0.2)
                    continue
                count(phase, status)
                if status == 200:
                    with lock:
                        confirmed.append(json.loads(data)["decision_id"])
                    break
                if status != 503:
                    break
                time.sleep(0.2)
        conn.close()

    threads = [threading.Thread(target=reviewer, args=(t,)) for t in reviewers[:16]]
    kill_thread.start()
    for t in threads:
        t.start()
    kill_thread.join()
    for t in threads:
        t.join(600)
    if admin is not None:
        admin.dispose()
    queue = ReviewQueue(url.split("&application_name=")[0], upgrade=False)
    with queue.db.read() as conn:
        live = dict(
            conn.execute(
                text("SELECT item_id, count(*) FROM decisions WHERE undone_at IS NULL GROUP BY item_id")
            ).all()
        )
        decision_ids = set(conn.execute(text("SELECT id FROM decisions")).scalars())
        claimed = [
            r[0] for r in conn.execute(text("SELECT lease_expires_at FROM items WHERE status = 'claimed'"))
        ]
        pending = conn.execute(text("SELECT count(*) FROM items WHERE status = 'pending'")).scalar()
    problems = queue.verify()
    queue.close()
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    stamps = [datetime.fromisoformat(t) if isinstance(t, str) else t for t in claimed]  # SQLite: text
    lease_left = [((t if t.tzinfo else t.replace(tzinfo=UTC)) - now).total_seconds() for t in stamps]
    return {
        "fault": fault,
        "seconds": seconds,
        "faults_injected": killed[0],
        "statuses_during": statuses["during"],
        "statuses_after": statuses["after"],
        "decisions_confirmed": len(confirmed),
        "confirmed_missing_in_db": len(set(confirmed) - decision_ids),
        "items_with_2+_live_decisions": sum(1 for n in live.values() if n > 1),
        "orphaned_claims": len(claimed),
        "orphan_lease_left_max_s": round(max(lease_left), 1) if lease_left else None,
        "still_pending": pending,
        "note": "escalated items (from the malformed probe) are for leads and stay open",
        "replay_problems": len(problems),
    }


# -- 6. SIGTERM with checks in flight ------------------------------------------------------------------


def probe_sigterm(server: Server, token: str) -> dict[str, Any]:
    worst = json.dumps({"id": "term", "title": "最佳 " * 280_000}, ensure_ascii=False).encode()
    answers: list[Any] = []

    def send() -> None:
        try:
            answers.append(
                request(
                    server.port,
                    "POST",
                    "/v1/check",
                    worst,
                    {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                    timeout=600,
                )[0]
            )
        except (OSError, http.client.HTTPException) as exc:
            answers.append(type(exc).__name__)

    senders = [threading.Thread(target=send) for _ in range(3)]
    for t in senders:
        t.start()
    time.sleep(1.5)
    t0 = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(120)
        exited = round(time.monotonic() - t0, 2)
    except subprocess.TimeoutExpired:
        exited = None
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
    for t in senders:
        t.join(60)
    return {"exit_after_sigterm_s": exited, "in_flight_answers": answers}


# -- main -----------------------------------------------------------------------------------------------


def run(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="probe-"))
    tag = f"probe_{uuid.uuid4().hex[:8]}"
    url, drop = fresh_database(backend, workdir, tag)
    out: dict[str, Any] = {"backend": backend, "loadavg_start": os.getloadavg()[0]}
    try:
        people = 33
        made = setup(url, people)
        tokens, reviewers = made["tokens"], made["reviewers"]
        server = Server(url, args.serve_args)
        try:
            skip = set(args.skip.split(",")) if args.skip else set()
            if "malformed" not in skip:
                out["malformed"] = probe_malformed(server.port, tokens)
                print(json.dumps({backend: {"malformed": out["malformed"]}}, ensure_ascii=False), flush=True)
            if "adversarial" not in skip:
                out["adversarial"] = probe_adversarial(server, tokens["service"])
                print(
                    json.dumps({backend: {"adversarial": out["adversarial"]}}, ensure_ascii=False), flush=True
                )
            if "load" not in skip:
                out["health_under_load"] = probe_health_under_load(
                    server, tokens["service"], args.load_seconds
                )
                print(json.dumps({backend: {"health_under_load": out["health_under_load"]}}), flush=True)
            if "logins" not in skip:
                out["logins"] = probe_logins(server, tokens, reviewers, people)
                print(json.dumps({backend: {"logins": out["logins"]}}), flush=True)
            if "kill" not in skip and backend == "postgresql":
                out["kill_connections"] = probe_kill_connections(
                    server, url, tag, reviewers, args.items, args.kill_seconds
                )
                print(json.dumps({backend: {"kill_connections": out["kill_connections"]}}), flush=True)
            if "crash" not in skip:
                out["kill_server"] = probe_kill_connections(
                    server, url, tag, reviewers, args.items, args.kill_seconds, fault="server"
                )
                print(json.dumps({backend: {"kill_server": out["kill_server"]}}), flush=True)
            if "sigterm" not in skip:
                out["sigterm"] = probe_sigterm(server, tokens["service"])
                print(json.dumps({backend: {"sigterm": out["sigterm"]}}), flush=True)
        finally:
            server.stop()
    finally:
        drop()
    out["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps({backend: {"loadavg": [out["loadavg_start"], out["loadavg_end"]]}}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--skip", default="", help="comma list: malformed,adversarial,load,logins,kill,crash,sigterm"
    )
    parser.add_argument("--load-seconds", type=float, default=20.0)
    parser.add_argument("--kill-seconds", type=float, default=15.0)
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument(
        "--serve-arg",
        dest="serve_args",
        action="append",
        default=[],
        help="extra argument for moderation serve (repeatable), e.g. --serve-arg=--no-classifier",
    )
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    results = [run(b, args) for b in backends]
    print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
