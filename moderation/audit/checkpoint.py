"""The checkpoint manifest: which batches are done, and with what settings the run was started.

A batch counts as done only once its part files are in place *and* its row is committed here (the
worker writes parts by rename first, then the coordinator commits). A kill between the two leaves a
part file with no manifest row; the rerun redoes that batch and overwrites the file, so no listing is
missing or written twice. SQLite gives the atomic, durable commit for free and stays a single small
file next to the output.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MANIFEST = "manifest.sqlite"


class Manifest:
    """The audit's manifest in ``DIR/manifest.sqlite``."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS batches (
                batch_id INTEGER PRIMARY KEY,
                source TEXT NOT NULL,
                first_line INTEGER NOT NULL,
                n_listings INTEGER NOT NULL,
                n_findings INTEGER NOT NULL,
                n_errors INTEGER NOT NULL,
                seconds REAL NOT NULL,
                done_at REAL NOT NULL
            );
            CREATE TABLE IF NOT EXISTS enqueued (
                listing_id TEXT PRIMARY KEY,
                item_id TEXT,
                risk REAL,
                at REAL NOT NULL
            );
            """
        )

    def close(self) -> None:
        self.db.close()

    # -- settings --------------------------------------------------------------------------------

    def get(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, ensure_ascii=False, sort_keys=True)),
        )

    # -- batches ---------------------------------------------------------------------------------

    def done_batches(self) -> builtins.set[int]:
        return {r[0] for r in self.db.execute("SELECT batch_id FROM batches")}

    def record_batch(
        self,
        batch_id: int,
        source: str,
        first_line: int,
        n_listings: int,
        n_findings: int,
        n_errors: int,
        seconds: float,
    ) -> None:
        """Mark a batch done (its parts are already in place): one committed statement."""
        self.db.execute(
            "INSERT OR REPLACE INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (batch_id, source, first_line, n_listings, n_findings, n_errors, seconds, time.time()),
        )

    def totals(self) -> dict[str, int]:
        row = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(n_listings), 0), COALESCE(SUM(n_findings), 0), "
            "COALESCE(SUM(n_errors), 0) FROM batches"
        ).fetchone()
        return {"batches": row[0], "listings": row[1], "findings": row[2], "errors": row[3]}

    # -- review queue ----------------------------------------------------------------------------

    def enqueued(self) -> builtins.set[str]:
        return {r[0] for r in self.db.execute("SELECT listing_id FROM enqueued")}

    def record_enqueued(self, rows: Iterable[tuple[str, str | None, float | None]]) -> None:
        now = time.time()
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR IGNORE INTO enqueued VALUES (?, ?, ?, ?)",
            [(lid, item, risk, now) for lid, item, risk in rows],
        )
        self.db.execute("COMMIT")
