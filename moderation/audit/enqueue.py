"""``--enqueue``: put an audit's non-pass listings into the review queue, highest risk first.

The flagged rows are gathered part by part into a scratch SQLite table (bounded memory whatever the
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
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from moderation.audit.checkpoint import Manifest
from moderation.audit.writers import part_files, part_name
from moderation.schema import CheckResult, ClassifierScore, Finding, ImageResult, ListingError, parse_listing

log = logging.getLogger(__name__)

_FINDING_FIELDS = ("rule", "family", "law", "severity", "action", "field", "start", "end", "text", "message",
                   "suggestion", "box")


def _result(row: dict[str, Any], findings: list[dict[str, Any]], images: list[dict[str, Any]]) -> CheckResult:
    """The contract Check result of one flagged listing, rebuilt from its output rows."""
    score = row["classifier_score"]
    return CheckResult(
        id=row["id"],
        verdict=row["verdict"],
        risk=row["risk"],
        findings=[Finding(**{k: f[k] for k in _FINDING_FIELDS if f.get(k) is not None}) for f in findings],
        classifier=ClassifierScore(score=score, model=row["classifier_model"] or "") if score is not None else None,
        images=[
            ImageResult(
                image=im["image"],
                match=(
                    {"id": im["match_id"], "image": im["match_image"], "distance": im["distance"],
                     "listing_id": im["match_listing_id"], "seller_id": im["match_seller_id"]}
                    if im["match_id"] is not None else None
                ),
                error=({"code": im["error_code"], "message": im["error_message"] or ""}
                       if im["error_code"] is not None else None),
                **_ocr(im),
            )
            for im in images
        ],
    )


def _ocr(im: dict[str, Any]) -> dict[str, Any]:
    """The image's ``ocr`` object (--ocr audits) for the console: text, size and lines (without boxes:
    the findings carry theirs)."""
    if im.get("ocr_error") is not None:
        return {"ocr": {"error": {"code": im["ocr_error"], "message": ""}}}
    if im.get("ocr_lines") is None:
        return {}
    text = im.get("ocr_text") or ""
    return {"ocr": {"text": text, "width": im.get("ocr_width"), "height": im.get("ocr_height"),
                    "lines": [{"text": t} for t in text.split("\n")] if text else []}}


def _gather(out_dir: Path, scratch: sqlite3.Connection, skip: set[str]) -> int:
    scratch.execute("CREATE TABLE flagged (listing_id TEXT, risk REAL, listing TEXT, result TEXT)")
    n = 0
    for part in part_files(out_dir, "listings"):
        table = pq.read_table(part)
        rows = [r for r in table.to_pylist() if r["verdict"] in ("review", "block") and r["id"] not in skip]
        if not rows:
            continue
        bid = rows[0]["batch"]
        by_line: dict[int, list[dict[str, Any]]] = defaultdict(list)
        fpath = out_dir / "findings" / part_name(bid, "parquet")
        if fpath.exists():
            for f in pq.read_table(fpath).to_pylist():
                by_line[f["line"]].append(f)
        imgs: dict[int, list[dict[str, Any]]] = defaultdict(list)
        ipath = out_dir / "images" / part_name(bid, "parquet")
        if ipath.exists():
            for im in pq.read_table(ipath).to_pylist():
                imgs[im["line"]].append(im)
        scratch.executemany(
            "INSERT INTO flagged VALUES (?, ?, ?, ?)",
            [
                (r["id"], r["risk"] or 0.0, r["listing"],
                 json.dumps(_result(r, by_line[r["line"]], imgs[r["line"]]).to_json_dict(), ensure_ascii=False))
                for r in rows
            ],
        )
        n += len(rows)
    scratch.execute("CREATE INDEX flagged_risk ON flagged (risk DESC, listing_id)")
    return n


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
        cursor = scratch.execute("SELECT listing_id, risk, listing, result FROM flagged ORDER BY risk DESC, listing_id")
        for listing_id, risk, listing_json, result_json in cursor:
            if listing_id in already:
                continue  # the same id twice in one catalogue: the first (riskier) row is queued
            try:
                listing = parse_listing(json.loads(listing_json))
            except (ListingError, json.JSONDecodeError, TypeError) as exc:  # pragma: no cover - checked before
                log.warning("not queueing %s: %s", listing_id, exc)
                continue
            result = CheckResult.model_validate(json.loads(result_json))
            answer = queue.intake.enqueue(listing, result, source="audit")
            manifest.record_enqueued([(listing_id, str(answer.get("item_id")), risk)])
            already.add(listing_id)
            sent += 1
    finally:
        queue.close()
        scratch.close()
        scratch_path.unlink(missing_ok=True)
    return sent
