"""The per-batch function: one batch of raw records in, three Arrow tables out.

This is the whole audit's unit of work. The local process pool and the Ray actors both call
:func:`run_batch` with a Checker they built once, so both engines give the same rows for the same
batch (tested). Nothing here raises for a bad record: a malformed line, a missing id, an unknown
category or a broken image path all become rows with an error code and the line they came from.

Each output table is declared once, as columns of (name, Arrow type, how to get the value): the
schema and the row builder are the same list, so they cannot drift apart. A listing to act on
(``review``/``block``) also keeps its submitted JSON (``listing``) and its contract Check result
(``result``, the JSON ``/v1/check`` returns): ``--enqueue`` reads those two and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from moderation.audit.readers import Batch, BatchSpec, RawRecord, read_batch
from moderation.schema import CheckResult, max_severity, read_json_line


def _text(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


def _json(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


@dataclass
class Line:
    """One input record and its result: every row of every table is built from these."""

    batch: int
    source: str
    line: int
    payload: str | None
    raw: dict[str, Any]
    result: CheckResult
    id: str | None = field(init=False)
    seller_id: str | None = field(init=False)
    category: str = field(init=False)
    flagged: bool = field(init=False)

    def __post_init__(self) -> None:
        self.id = self.result.id if self.result.id is not None else _text(self.raw.get("id"))
        self.seller_id = _text(self.raw.get("seller_id"))
        self.category = _text(self.raw.get("category")) or "general"
        self.flagged = self.result.verdict in ("review", "block")

    def contract(self) -> dict[str, Any]:
        """The contract Check result, with the id the row has (also for a line that failed)."""
        return {**self.result.to_json_dict(), "id": self.id}


Getter = Callable[[Line, Any], Any]
Column = tuple[str, pa.DataType, Getter]


class Table:
    """An output table: its columns, and which items of a line make its rows (the line itself, its
    findings, its images)."""

    def __init__(self, columns: Sequence[Column], items: Callable[[Line], Iterable[Any]]) -> None:
        self.columns = list(columns)
        self.items = items
        self.schema = pa.schema([(name, kind) for name, kind, _ in self.columns])

    def build(self, lines: Iterable[Line]) -> pa.Table:
        rows = [(ln, item) for ln in lines for item in self.items(ln)]
        return pa.Table.from_pydict(
            {name: [get(ln, it) for ln, it in rows] for name, _, get in self.columns}, schema=self.schema
        )


#: Where a row comes from: every table starts with these, so rows join back to their input line.
_KEY: list[Column] = [
    ("batch", pa.int32(), lambda ln, _: ln.batch),
    ("source", pa.string(), lambda ln, _: ln.source),
    ("line", pa.int64(), lambda ln, _: ln.line),
    ("id", pa.string(), lambda ln, _: ln.id),
    ("seller_id", pa.string(), lambda ln, _: ln.seller_id),
]
_CATEGORY: Column = ("category", pa.string(), lambda ln, _: ln.category)


def _attr(name: str, kind: pa.DataType) -> Column:
    return name, kind, lambda _, item: getattr(item, name)


def _error_message(ln: Line) -> str | None:
    error = ln.result.error
    if error is None:
        return None
    return error.message if error.message.startswith("line ") else f"line {ln.line}: {error.message}"


def _explanation(r: CheckResult) -> str | None:
    spans = r.classifier.explanation if r.classifier is not None else None
    return _json([sp.model_dump(exclude_none=True) for sp in spans]) if spans else None


#: One row per input record.
LISTINGS = Table(
    [
        *_KEY,
        _CATEGORY,
        ("title", pa.string(), lambda ln, _: t if isinstance(t := ln.raw.get("title"), str) else None),
        ("verdict", pa.string(), lambda _, r: r.verdict),
        ("risk", pa.float64(), lambda _, r: r.risk),
        ("classifier_score", pa.float64(), lambda _, r: r.classifier.score if r.classifier else None),
        ("classifier_model", pa.string(), lambda _, r: r.classifier.model if r.classifier else None),
        ("n_findings", pa.int32(), lambda _, r: len(r.findings)),
        ("families", pa.list_(pa.string()), lambda _, r: sorted({f.family for f in r.findings})),
        ("rules", pa.list_(pa.string()), lambda _, r: sorted({f.rule for f in r.findings})),
        ("max_severity", pa.string(), lambda _, r: max_severity(f.severity for f in r.findings)),
        ("n_images", pa.int32(), lambda _, r: len(r.images)),
        ("image_errors", pa.int32(), lambda _, r: sum(1 for im in r.images if im.error)),
        ("copied_images", pa.int32(), lambda _, r: sum(1 for im in r.images if im.match is not None)),
        ("error_code", pa.string(), lambda _, r: r.error.code if r.error else None),
        ("error_message", pa.string(), lambda ln, _: _error_message(ln)),
        # The submitted listing (JSON) for non-pass rows only: what --enqueue puts in the review queue
        # as the snapshot a reviewer judges, without keeping every clean listing's text twice.
        ("listing", pa.string(), lambda ln, _: ln.payload if ln.flagged else None),
        # The words that drove a classifier score that sent the listing to review with no rule
        # (``classifier.explanation``, JSON list of {field, start, end, text, weight}); else null.
        ("classifier_explanation", pa.string(), lambda _, r: _explanation(r)),
        # The contract Check result (JSON) for non-pass rows only: what --enqueue gives the queue.
        ("result", pa.string(), lambda ln, _: _json(ln.contract()) if ln.flagged else None),
    ],
    lambda ln: [ln.result],
)

#: One row per finding.
FINDINGS = Table(
    [
        *_KEY,
        _CATEGORY,
        *(_attr(name, pa.string()) for name in ("rule", "family", "law", "severity", "action", "field")),
        _attr("start", pa.int32()),
        _attr("end", pa.int32()),
        *(_attr(name, pa.string()) for name in ("text", "message", "suggestion")),
        # [x1, y1, x2, y2] of the line in the picture, for findings in text read from an image (image:N)
        _attr("box", pa.list_(pa.int32())),
    ],
    lambda ln: ln.result.findings,
)


def _match(name: str, kind: pa.DataType, get: Callable[[Any], Any]) -> Column:
    return name, kind, lambda _, im: None if im.match is None else get(im.match)


def _ocr(name: str, kind: pa.DataType, get: Callable[[dict[str, Any]], Any]) -> Column:
    """A column from the image's ``ocr`` object (``--ocr`` audits; null otherwise)."""
    return name, kind, lambda _, im: get(o) if isinstance(o := getattr(im, "ocr", None), dict) else None


#: One row per listing image (checked, failed or matched).
IMAGES = Table(
    [
        *_KEY,
        _attr("image", pa.string()),
        ("error_code", pa.string(), lambda _, im: (im.error or {}).get("code")),
        ("error_message", pa.string(), lambda _, im: (im.error or {}).get("message")),
        _match("match_id", pa.string(), lambda m: m.id),
        _match("match_image", pa.string(), lambda m: m.image),
        _match("match_listing_id", pa.string(), lambda m: _text((m.model_extra or {}).get("listing_id"))),
        _match("match_seller_id", pa.string(), lambda m: _text((m.model_extra or {}).get("seller_id"))),
        _match("distance", pa.int32(), lambda m: m.distance),
        # with --ocr: the text read from the picture (kept lines joined by line breaks: the image:N field)
        _ocr("ocr_lines", pa.int32(), lambda o: len(o["lines"]) if "lines" in o else None),
        _ocr("ocr_text", pa.string(), lambda o: o.get("text")),
        _ocr("ocr_cached", pa.bool_(), lambda o: o.get("cached")),
        _ocr("ocr_width", pa.int32(), lambda o: o.get("width")),
        _ocr("ocr_height", pa.int32(), lambda o: o.get("height")),
        _ocr("ocr_error", pa.string(), lambda o: (o.get("error") or {}).get("code")),
    ],
    lambda ln: ln.result.images,
)

LISTINGS_SCHEMA, FINDINGS_SCHEMA, IMAGES_SCHEMA = LISTINGS.schema, FINDINGS.schema, IMAGES.schema
SCHEMAS = {"listings": LISTINGS_SCHEMA, "findings": FINDINGS_SCHEMA, "images": IMAGES_SCHEMA}


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
        return int(self.listings.num_rows)

    @property
    def n_errors(self) -> int:
        return int(self.listings.num_rows - self.listings.column("error_code").null_count)


def _record(rec: RawRecord) -> Any:
    """A record as ``Checker.check_many`` takes it: parsed JSON, or the error result it already is."""
    if rec.payload is None:
        return CheckResult.failed(
            None, rec.error or "unreadable", rec.message or f"line {rec.line}: unreadable"
        )
    return read_json_line(rec.payload, rec.line)


def check_records(
    checker: Any, batch: Batch, *, jsonl: bool = False, classifier_batch: int = 16
) -> BatchOutput:
    """Check every record of a batch (in order) and build its rows."""
    raws = [_record(rec) for rec in batch.records]
    results: list[CheckResult] = checker.check_many(raws, batch_size=classifier_batch)
    lines = [
        Line(batch.batch_id, rec.source, rec.line, rec.payload, raw if isinstance(raw, dict) else {}, res)
        for rec, raw, res in zip(batch.records, raws, results, strict=True)
    ]
    return BatchOutput(
        batch_id=batch.batch_id,
        listings=LISTINGS.build(lines),
        findings=FINDINGS.build(lines),
        images=IMAGES.build(lines),
        jsonl=[_json({**ln.contract(), "source": ln.source, "line": ln.line}) for ln in lines]
        if jsonl
        else None,
    )


def run_batch(
    checker: Any, spec: BatchSpec, *, jsonl: bool = False, classifier_batch: int = 16
) -> BatchOutput:
    """Read one planned batch and check it: the function both engines run."""
    return check_records(checker, read_batch(spec), jsonl=jsonl, classifier_batch=classifier_batch)
