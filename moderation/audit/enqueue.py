"""``--enqueue``: put an audit's non-pass listings into the review queue, highest risk first.

Each non-pass row of ``listings/`` carries the submitted listing (``listing``) and its contract Check
result (``result``, the JSON ``/v1/check`` returns), so the queue gets exactly what the checker said.
Those rows are gathered part by part into a scratch SQLite table (bounded memory whatever the
catalogue size), then read back ordered by risk and handed to the queue's own intake service, which
records the listing revision and creates or attaches to the listing's one open item. Each listing sent
is recorded in the audit manifest right after, so a rerun (or a resumed enqueue after a kill) skips
them: no duplicate signals, and the queue's one-open-item constraint covers the instant between the
two commits.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from moderation.audit.checkpoint import Manifest
from moderation.audit.writers import part_files
from moderation.schema import CheckResult, ListingError, parse_listing

log = logging.getLogger(__name__)

_COLUMNS = ["id", "risk", "listing", "result"]


def _gather(out_dir: Path, scratch: sqlite3.Connection, skip: set[str]) -> None:
    scratch.execute("CREATE TABLE flagged (listing_id TEXT, risk REAL, listing TEXT, result TEXT)")
    for part in part_files(out_dir, "listings"):
        table = pq.read_table(part, columns=_COLUMNS)
        rows = table.filter(pc.is_valid(table.column("result"))).to_pylist()
        scratch.executemany(
            "INSERT INTO flagged VALUES (?, ?, ?, ?)",
            [(r["id"], r["risk"] or 0.0, r["listing"], r["result"]) for r in rows if r["id"] not in skip],
        )
    scratch.execute("CREATE INDEX flagged_risk ON flagged (risk DESC, listing_id)")


def enqueue_flagged(out_dir: Path, manifest: Manifest, *, database_url: str | None = None) -> int:
    """Send every not-yet-sent non-pass listing of the audit to the review queue; returns how many."""
    from moderation.queue import ReviewQueue

    scratch_path = out_dir / ".enqueue.sqlite"
    scratch_path.unlink(missing_ok=True)
    scratch = sqlite3.connect(scratch_path)
    queue = ReviewQueue(database_url)
    sent = 0
    try:
        already = manifest.enqueued()
        _gather(out_dir, scratch, already)
        cursor = scratch.execute(
            "SELECT listing_id, risk, listing, result FROM flagged ORDER BY risk DESC, listing_id"
        )
        for listing_id, risk, listing_json, result_json in cursor:
            if listing_id in already:
                continue  # the same id twice in one catalogue: the first (riskier) row is queued
            try:
                listing = parse_listing(json.loads(listing_json))
            except (
                ListingError,
                json.JSONDecodeError,
                TypeError,
            ) as exc:  # pragma: no cover - checked before
                log.warning("not queueing %s: %s", listing_id, exc)
                continue
            result = CheckResult.model_validate_json(result_json)
            answer = queue.intake.enqueue(listing, result, source="audit")
            manifest.record_enqueued([(listing_id, str(answer.get("item_id")), risk)])
            already.add(listing_id)
            sent += 1
    finally:
        queue.close()
        scratch.close()
        scratch_path.unlink(missing_ok=True)
    return sent
