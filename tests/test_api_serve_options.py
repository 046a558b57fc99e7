"""``moderation serve``'s process layout: one worker process by default on either backend (a second
one duplicates the classifier and the rules process, about 0.5 GiB, and bought no queue throughput on
two cores: docs/queue.md), and with ``--workers N`` a supervisor that leaves the migration to a child
process and hands the settings to the workers through the environment. ``uvicorn.run`` is replaced,
so no server starts."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI

from moderation.api.app import ENV_CLASSIFIER, ENV_DATABASE_URL
from moderation.api.cli import serve
from tests.queue_support import db_url_fixture  # noqa: F401  (fixture)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """What ``serve`` hands ``uvicorn.run``; ``serve``'s process-wide tuning kept out of the test run."""
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: calls.append((app, options)))
    monkeypatch.setattr(gc, "freeze", lambda: None)
    monkeypatch.setattr(sys, "setswitchinterval", lambda _: None)
    monkeypatch.setenv("MODERATION_ISOLATE_HEAVY", "0")  # no rules process to start or stop
    return calls


def test_serve_runs_one_worker_by_default(db_url: str, runs: list[tuple[Any, dict[str, Any]]]) -> None:
    result = CliRunner().invoke(serve, ["--db", db_url, "--no-classifier"])
    assert result.exit_code == 0, result.output
    assert "workers: 1" in result.output
    ((app, options),) = runs
    assert isinstance(app, FastAPI)  # this process serves the app itself: no supervisor, no factory
    assert "workers" not in options
    assert app.state.settings.serve_db.startswith(db_url.split(":", 1)[0])
    app.state.queue.close()


def test_serve_workers_migrate_in_a_child_and_hand_settings_on(
    tmp_path: Path, runs: list[tuple[Any, dict[str, Any]]]
) -> None:
    from moderation.queue.db import Database
    from moderation.queue.migrate import current

    url = f"sqlite:///{tmp_path / 'workers.db'}"
    saved = dict(os.environ)
    try:
        result = CliRunner().invoke(serve, ["--db", url, "--no-classifier", "--workers", "2"])
        assert result.exit_code == 0, result.output
        ((app, options),) = runs
        assert app == "moderation.api.app:app_from_env"
        assert options["workers"] == 2 and options["factory"] is True
        assert os.environ[ENV_DATABASE_URL] == url
        assert os.environ[ENV_CLASSIFIER] == "0"
    finally:
        os.environ.clear()
        os.environ.update(saved)
    database = Database(url)
    assert current(database.engine) is not None  # migrated before any worker starts
    database.dispose()
