"""The Alembic migrations build exactly the tables of moderation/queue/models.py, on SQLite and
PostgreSQL, and 0002 carries an existing 0001 outbox over (undone decisions stay unsent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from queue_support import db_url_fixture  # noqa: F401  (fixture "db_url")
from sqlalchemy import text
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from moderation.queue import ReviewQueue
from moderation.queue.db import Database
from moderation.queue.migrate import current, upgrade


def _real_differences(diffs: list[Any]) -> list[Any]:
    """Autogenerate's differences, less one that is not one: SQLModel's unbounded ``str`` columns are
    ``AutoString()`` in the models and ``TEXT`` in the database (the same type)."""
    real = []
    for diff in diffs:
        changes = diff if isinstance(diff, list) else [diff]
        for change in changes:
            if (
                change[0] == "modify_type"
                and isinstance(change[-1], AutoString)
                and change[-1].length is None
                and str(change[-2]).upper() == "TEXT"
            ):
                continue
            real.append(change)
    return real


def test_migrations_match_the_models(db_url: str) -> None:
    database = Database(db_url)
    database.upgrade()
    with database.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    database.dispose()
    assert _real_differences(diffs) == []


def test_0002_carries_the_outbox_over(db_url: str) -> None:
    database = Database(db_url)
    upgrade(database.engine, "0001")
    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    rows = {
        "items": [(1, "sku-1"), (2, "sku-2"), (3, "sku-3")],
        # decisions: 1 live, 2 undone with its notification never sent, 3 undone after being sent
        "decisions": [(1, 1, None), (2, 2, t0 + timedelta(seconds=30)), (3, 3, t0 + timedelta(hours=1))],
        "outbox": [
            (1, 1, 1, "seller_notification", None),
            (2, 2, 2, "seller_notification", None),
            (3, 2, 2, "decision_withdrawn", None),
            (4, 3, 3, "seller_notification", t0),
            (5, 3, 3, "decision_withdrawn", None),
        ],
    }
    with database.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, display_name, role, active, created_at) "
                "VALUES (1, 'r', 'r', 'reviewer', true, :t)"
            ),
            {"t": t0},
        )
        for item_id, listing_id in rows["items"]:
            conn.execute(
                text(
                    "INSERT INTO items (id, listing_id, listing_revision, kind, status, escalated, priority, risk, "
                    "families, category, title, attempt, version, event_seq, signal_count, created_at, updated_at) "
                    "VALUES (:id, :listing, 1, 'check', 'pending', false, 0, 0, '', 'general', '', 2, 1, 0, 0, :t, :t)"
                ),
                {"id": item_id, "listing": listing_id, "t": t0},
            )
        for decision_id, item_id, undone in rows["decisions"]:
            conn.execute(
                text(
                    "INSERT INTO decisions (id, item_id, attempt, outcome, reason_codes, seller_message, internal_note, "
                    "listing_revision, decided_by, created_at, bulk, undone_at) VALUES (:id, :item, 1, 'rejected', "
                    "'[]', '', '', 1, 1, :t, false, :undone)"
                ),
                {"id": decision_id, "item": item_id, "t": t0, "undone": undone},
            )
        for outbox_id, item_id, decision_id, kind, sent in rows["outbox"]:
            conn.execute(
                text(
                    "INSERT INTO outbox (id, item_id, decision_id, kind, payload, created_at, sent_at) "
                    "VALUES (:id, :item, :decision, :kind, '{}', :t, :sent)"
                ),
                {
                    "id": outbox_id,
                    "item": item_id,
                    "decision": decision_id,
                    "kind": kind,
                    "t": t0,
                    "sent": sent,
                },
            )
    database.upgrade()
    assert current(database.engine) == "0005"
    queue = ReviewQueue(db=database, upgrade=False)
    records = queue.outbox.records(status="all")["records"]
    assert [(r["id"], r["listing_id"], r["state"]) for r in records] == [
        (1, "sku-1", "ready"),
        (2, "sku-2", "cancelled"),
        (3, "sku-2", "cancelled"),
        (4, "sku-3", "delivered"),
        (5, "sku-3", "ready"),
    ]
    assert all(r["available_at"] == r["created_at"] and r["attempts"] == 0 for r in records)
    assert [r["id"] for r in queue.outbox.lease(limit=10)["records"]] == [1, 5]
    queue.close()
