"""An app on a fresh database (SQLite and PostgreSQL), with one user and API token per role."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from fastapi.testclient import TestClient

from moderation.api import create_app
from moderation.api.accounts import Accounts
from moderation.api.settings import Settings
from moderation.checker import Checker

ROLES = ("admin", "lead", "reviewer", "reviewer2", "triage", "auditor", "service")
PASSWORD = "correct horse battery"


@dataclass
class Api:
    client: TestClient
    accounts: Accounts
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)

    def h(self, who: str, **extra: str) -> dict[str, str]:
        """Headers authenticating as ``who``."""
        return {"Authorization": f"Bearer {self.tokens[who]}", **extra}

    def app_queue(self):  # the app's ReviewQueue
        return self.client.app.state.queue  # type: ignore[attr-defined]


@pytest.fixture(name="api")
def api_fixture(db_url: str, rules_checker: Checker) -> Iterator[Api]:
    app = create_app(
        db_url, rules_checker, undo_seconds=120, settings=Settings.from_env(password_hashing="cheap")
    )
    accounts: Accounts = app.state.accounts
    api = Api(client=TestClient(app), accounts=accounts)
    for name in ROLES:
        role = "reviewer" if name == "reviewer2" else name
        user = accounts.create_user(name, role, PASSWORD)
        api.ids[name] = user.id
        api.tokens[name] = accounts.create_token(user.id, "test")
    with api.client:
        yield api
    problems = app.state.queue.verify()
    app.state.queue.close()
    assert problems == []


def bad_listing() -> dict[str, object]:
    return {
        "id": "sku-bad",
        "title": "全网最低价 销量第一 國家級工艺 保温杯",
        "category": "general",
        "seller_id": "s-1",
    }
