"""Schemathesis over the whole OpenAPI document, in process, on SQLite and PostgreSQL: valid and
invalid requests for every operation, and not one answered 5xx (or raising in the app).

Bounded: ``EXAMPLES`` cases per operation and generation mode (about 12 s and 700 requests per backend
on a quiet machine), and at most ``TIME_LIMIT_S`` of generating per backend on a busy one.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from queue_support import db_url_fixture  # noqa: F401  (fixture "db_url")
from schemathesis import GenerationMode

from moderation.api import create_app
from moderation.api.settings import Settings
from moderation.checker import Checker
from moderation.schema import Listing

pytestmark = pytest.mark.slow  # every OpenAPI operation on both backends

EXAMPLES = 12
#: Cases per operation and mode in the first round, which always covers the whole document.
FIRST_ROUND = 3
#: Stop generating new cases after this many seconds per backend (the cases already run count).
TIME_LIMIT_S = 22.0


def test_schemathesis_finds_no_5xx(db_url: str, rules_checker: Checker, tmp_path: Path) -> None:
    app = create_app(db_url, rules_checker, settings=Settings(password_hashing="cheap"))
    accounts = app.state.accounts
    queue = app.state.queue
    filler = accounts.create_user("filler", "reviewer", "correct horse battery")
    for _ in range(40):  # so that small generated token ids do not revoke the admin's own token
        accounts.create_token(filler.id, "filler")
    admin = accounts.create_user("admin", "admin", "correct horse battery")
    auth = {"Authorization": f"Bearer {accounts.create_token(admin.id, 'schemathesis')}"}
    for i in range(3):  # a few items so ids 1-3 exist
        listing = Listing(id=f"sku-{i}", title="全网最低价 销量第一", seller_id="s-1")
        queue.intake.enqueue(listing, rules_checker.check(listing))

    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=auth)
    failures: list[str] = []
    calls = 0
    codes: dict[int, int] = {}
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30

    def cases(operation: Any, mode: GenerationMode, examples: int) -> None:
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal calls
            calls += 1
            try:
                response = case.call(headers=auth)
            except Exception as exc:  # the app raised: the test client surfaces it
                failures.append(f"{case.method} {case.formatted_path}: {type(exc).__name__}: {exc}")
                return
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:200]}"
                )

        with contextlib.suppress(hypothesis.errors.Unsatisfiable):
            run()

    # Every operation and mode gets a few cases first (the whole document, always); then more, while
    # the time allows.
    for examples in (FIRST_ROUND, EXAMPLES):
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if examples > FIRST_ROUND and time.monotonic() - started > TIME_LIMIT_S:
                    break
                cases(operation, mode, examples)
    problems = queue.verify()
    queue.close()
    assert calls >= 150, calls
    assert sum(n for code, n in codes.items() if code < 300) >= 50, codes  # not all refused
    assert failures == [], "\n".join(sorted(set(failures))[:20])
    assert problems == []
