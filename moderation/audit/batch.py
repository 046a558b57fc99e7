"""The per-batch function: one batch of raw records in, three Arrow tables out.

This is the whole audit's unit of work. The local process pool and the Ray actors both call
:func:`run_batch` with a Checker they built once, so both engines give the same rows for the same
batch (tested). Nothing here raises for a bad record: a malformed line, a missing id, an unknown
category or a broken image path all become rows with an error code and the line they came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from moderation.audit.readers import Batch, BatchSpec, read_batch
from moderation.schema import CheckResult, max_severity, read_json_line

#: Where a row comes from: every table starts with these, so rows join back to their input line.
_ROW_KEY: list[tuple[str, pa.DataType]] = [
    ("batch", pa.int32()),
    ("source", pa.string()),
    ("line", pa.int64()),
    ("id", pa.string()),
    ("seller_id", pa.string()),
]

#: One row per input record.
LISTINGS_SCHEMA = pa.schema(
    [
        *_ROW_KEY,
        ("category", pa.string()),
        ("title", pa.string()),
        ("verdict", pa.string()),
        ("risk", pa.float64()),
        ("classifier_score", pa.float64()),
        ("classifier_model", pa.string()),
        ("n_findings", pa.int32()),
        ("families", pa.list_(pa.string())),
        ("rules", pa.list_(pa.string())),
        ("max_severity", pa.string()),
        ("n_images", pa.int32()),
        ("image_errors", pa.int32()),
        ("copied_images", pa.int32()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        # The submitted listing (JSON) for non-pass rows only: what --enqueue puts in the review queue
        # as the snapshot a reviewer judges, without keeping every clean listing's text twice.
        ("listing", pa.string()),
        # The words that drove a classifier score that sent the listing to review with no rule
        # (``classifier.explanation``, JSON list of {field, start, end, text, weight}); else null.
        ("classifier_explanation", pa.string()),
    ]
)

#: One row per finding.
FINDINGS_SCHEMA = pa.schema(
    [
        *_ROW_KEY,
        ("category", pa.string()),
        ("rule", pa.string()),
        ("family", pa.string()),
        ("law", pa.string()),
        ("severity", pa.string()),
        ("action", pa.string()),
        ("field", pa.string()),
        ("start", pa.int32()),
        ("end", pa.int32()),
        ("text", pa.string()),
        ("message", pa.string()),
        ("suggestion", pa.string()),
        # [x1, y1, x2, y2] of the line in the picture, for findings in text read from an image (image:N)
        ("box", pa.list_(pa.int32())),
    ]
)

#: One row per listing image (checked, failed or matched).
IMAGES_SCHEMA = pa.schema(
    [
        *_ROW_KEY,
        ("image", pa.string()),
        ("error_code", pa.string()),
        ("error_message", pa.string()),
        ("match_id", pa.string()),
        ("match_image", pa.string()),
        ("match_listing_id", pa.string()),
        ("match_seller_id", pa.string()),
        ("distance", pa.int32()),
        # with --ocr: the text read from the picture (kept lines joined by line breaks: the image:N field)
        ("ocr_lines", pa.int32()),
        ("ocr_text", pa.string()),
        ("ocr_cached", pa.bool_()),
        ("ocr_width", pa.int32()),
        ("ocr_height", pa.int32()),
        ("ocr_error", pa.string()),
    ]
)


@dataclass
class BatchOutput:
    """What one batch produced: the three tables and, when asked, contract JSON Lines."""

    batch_id: int
    listings: pa.Table
    findings: pa.Table
    images: pa.Table
    jsonl: list[str] | None = None

    @property
    def n_listings(self) -> int:
        return self.listings.num_rows

    @property
    def n_errors(self) -> int:
        return self.listings.num_rows - self.listings.column("error_code").null_count


def _record(payload: str | None, error: str | None, message: str | None, line: int) -> Any:
    """A record as ``Checker.check_many`` takes it: parsed JSON, or the error result it already is."""
    if payload is None:
        return CheckResult.failed(None, error or "unreadable", message or f"line {line}: unreadable")
    return read_json_line(payload, line)


def _text(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def check_records(checker: Any, batch: Batch, *, jsonl: bool = False, classifier_batch: int = 16) -> BatchOutput:
    """Check every record of a batch (in order) and flatten the results into rows."""
    raws = [_record(*r) for r in zip(batch.payloads, batch.errors, batch.messages, batch.lines, strict=True)]
    final: list[CheckResult] = checker.check_many(raws, batch_size=classifier_batch)

    lrows: dict[str, list[Any]] = {name: [] for name in LISTINGS_SCHEMA.names}
    frows: dict[str, list[Any]] = {name: [] for name in FINDINGS_SCHEMA.names}
    irows: dict[str, list[Any]] = {name: [] for name in IMAGES_SCHEMA.names}
    lines_out: list[str] | None = [] if jsonl else None
    bid = batch.batch_id
    for source, line, payload, raw, res in zip(batch.sources, batch.lines, batch.payloads, raws, final, strict=True):
        raw = raw if isinstance(raw, dict) else {}
        listing_id = res.id if res.id is not None else _text(raw.get("id"))
        seller = _text(raw.get("seller_id"))
        category = _text(raw.get("category")) or "general"
        title = raw.get("title")
        error = res.error
        message = None
        if error is not None:
            message = error.message if error.message.startswith("line ") else f"line {line}: {error.message}"
        families = sorted({f.family for f in res.findings})
        rules = sorted({f.rule for f in res.findings})
        max_sev = max_severity(f.severity for f in res.findings)
        image_errors = sum(1 for im in res.images if im.error)
        copies = sum(1 for im in res.images if im.match is not None)
        lrows["batch"].append(bid)
        lrows["source"].append(source)
        lrows["line"].append(line)
        lrows["id"].append(listing_id)
        lrows["seller_id"].append(seller)
        lrows["category"].append(category)
        lrows["title"].append(title if isinstance(title, str) else None)
        lrows["verdict"].append(res.verdict)
        lrows["risk"].append(res.risk)
        lrows["classifier_score"].append(res.classifier.score if res.classifier else None)
        lrows["classifier_model"].append(res.classifier.model if res.classifier else None)
        lrows["n_findings"].append(len(res.findings))
        lrows["families"].append(families)
        lrows["rules"].append(rules)
        lrows["max_severity"].append(max_sev)
        lrows["n_images"].append(len(res.images))
        lrows["image_errors"].append(image_errors)
        lrows["copied_images"].append(copies)
        lrows["error_code"].append(error.code if error else None)
        lrows["error_message"].append(message)
        lrows["listing"].append(payload if res.verdict in ("review", "block") else None)
        spans = res.classifier.explanation if res.classifier is not None else None
        lrows["classifier_explanation"].append(
            json.dumps([sp.model_dump(exclude_none=True) for sp in spans], ensure_ascii=False) if spans else None)
        for f in res.findings:
            frows["batch"].append(bid)
            frows["source"].append(source)
            frows["line"].append(line)
            frows["id"].append(listing_id)
            frows["seller_id"].append(seller)
            frows["category"].append(category)
            frows["rule"].append(f.rule)
            frows["family"].append(f.family)
            frows["law"].append(f.law)
            frows["severity"].append(f.severity)
            frows["action"].append(f.action)
            frows["field"].append(f.field)
            frows["start"].append(f.start)
            frows["end"].append(f.end)
            frows["text"].append(f.text)
            frows["message"].append(f.message)
            frows["suggestion"].append(f.suggestion)
            frows["box"].append(f.box)
        for im in res.images:
            m = im.match
            extra = (m.model_extra or {}) if m is not None else {}
            irows["batch"].append(bid)
            irows["source"].append(source)
            irows["line"].append(line)
            irows["id"].append(listing_id)
            irows["seller_id"].append(seller)
            irows["image"].append(im.image)
            irows["error_code"].append((im.error or {}).get("code"))
            irows["error_message"].append((im.error or {}).get("message"))
            irows["match_id"].append(m.id if m else None)
            irows["match_image"].append(m.image if m else None)
            irows["match_listing_id"].append(_text(extra.get("listing_id")))
            irows["match_seller_id"].append(_text(extra.get("seller_id")))
            irows["distance"].append(m.distance if m else None)
            ocr = getattr(im, "ocr", None)
            ocr = ocr if isinstance(ocr, dict) else {}
            irows["ocr_lines"].append(len(ocr["lines"]) if "lines" in ocr else None)
            irows["ocr_text"].append(ocr.get("text"))
            irows["ocr_cached"].append(ocr.get("cached"))
            irows["ocr_width"].append(ocr.get("width"))
            irows["ocr_height"].append(ocr.get("height"))
            irows["ocr_error"].append((ocr.get("error") or {}).get("code"))
        if lines_out is not None:
            data = res.to_json_dict()
            data["id"] = listing_id
            data["source"] = source
            data["line"] = line
            lines_out.append(json.dumps(data, ensure_ascii=False))
    return BatchOutput(
        batch_id=bid,
        listings=pa.Table.from_pydict(lrows, schema=LISTINGS_SCHEMA),
        findings=pa.Table.from_pydict(frows, schema=FINDINGS_SCHEMA),
        images=pa.Table.from_pydict(irows, schema=IMAGES_SCHEMA),
        jsonl=lines_out,
    )


def run_batch(checker: Any, spec: BatchSpec, *, jsonl: bool = False, classifier_batch: int = 16) -> BatchOutput:
    """Read one planned batch and check it: the function both engines run."""
    return check_records(checker, read_batch(spec), jsonl=jsonl, classifier_batch=classifier_batch)
