"""Fixtures and helpers for the queue and API tests: one fresh database per test, on SQLite and on
PostgreSQL, and a barrier-driven thread runner.

PostgreSQL is not optional: when it is unreachable the fixture tries to start the local cluster and
then fails the test (a skipped concurrency test would hide exactly the bugs these tests exist for).
Each test gets its own schema (``search_path``) so parallel or repeated runs never collide.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from moderation.queue import ReviewQueue
from moderation.queue.db import temporary_schema
from moderation.queue.roles import Actor
from moderation.schema import CheckResult, Finding, Listing

PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")

_pg_checked = False


def _pg_reachable() -> bool:
    try:
        engine = create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def ensure_postgres() -> None:
    """Reach PostgreSQL, starting the local cluster once if needed; fail (never skip) otherwise."""
    global _pg_checked
    if _pg_checked:
        return
    if not _pg_reachable():
        versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
        for version in versions:
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                check=False,
                capture_output=True,
                timeout=60,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _pg_reachable():
            time.sleep(0.5)
        if not _pg_reachable():
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (tried pg_ctlcluster start)")
    _pg_checked = True


def fresh_database_url(backend: str, tmp_path: Path) -> tuple[str, Callable[[], None]]:
    """A URL to an empty database of ``backend`` and a function that drops it."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}", lambda: None
    ensure_postgres()
    # synchronous_commit=off: durability is not under test and fsync per commit is ~7 ms here.
    return temporary_schema(PG_URL, "t_", "%20-csynchronous_commit%3Doff")


@pytest.fixture(params=BACKENDS, name="db_url")
def db_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url, drop = fresh_database_url(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture(name="queue")
def queue_fixture(db_url: str) -> Iterator[ReviewQueue]:
    """A migrated queue; after the test, replaying every item's events must give its row (test 13)."""
    q = ReviewQueue(db_url, lease_seconds=300, undo_seconds=120, pool_size=20)
    yield q
    problems = q.verify()
    q.close()
    assert problems == [], "event replay disagrees with state:\n" + "\n".join(problems[:20])


def reviewer(n: int = 1) -> Actor:
    return Actor(id=100 + n, username=f"reviewer{n}", role="reviewer")


def lead(n: int = 1) -> Actor:
    return Actor(id=200 + n, username=f"lead{n}", role="lead")


TRIAGE = Actor(id=300, username="triage", role="triage")
SERVICE = Actor(id=400, username="svc", role="service")
AUDITOR = Actor(id=500, username="auditor", role="auditor")


def listing(i: int | str, title: str = "全网最低价 销量第一 保温杯", **extra: Any) -> Listing:
    return Listing(id=f"sku-{i}", title=title, seller_id=extra.pop("seller_id", f"s-{i}"), **extra)


def result_for(
    item: Listing,
    *,
    verdict: str = "review",
    risk: float = 0.8,
    rule: str = "absolute.superlative",
    severity: str = "critical",
) -> CheckResult:
    start = max(item.title.find("最"), 0)
    return CheckResult(
        id=item.id,
        verdict=verdict,
        risk=risk,  # type: ignore[arg-type]
        findings=[
            Finding(
                rule=rule,
                family=rule.split(".")[0] + "_claims",
                law="广告法第九条第三项",
                severity=severity,
                field="title",
                start=start,
                end=start + 2,  # type: ignore[arg-type]
                text=item.title[start : start + 2],
                message="绝对化用语",
                suggestion="删除",
            )
        ],
    )


def add_items(q: ReviewQueue, n: int, start: int = 0) -> list[int]:
    ids = []
    for i in range(start, start + n):
        item = listing(i)
        out = q.intake.enqueue(item, result_for(item), SERVICE)
        ids.append(out["item_id"])
    return ids


def run_threads(n: int, fn: Callable[[int], Any], *, barrier: bool = True) -> list[Any]:
    """Run ``fn(i)`` in ``n`` real threads released together by a barrier; results or exceptions."""
    gate = threading.Barrier(n) if barrier else None
    results: list[Any] = [None] * n

    def body(i: int) -> None:
        if gate is not None:
            gate.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results
