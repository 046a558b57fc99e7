"""Streaming readers: JSON Lines, CSV and Parquet files (or a folder of them) as numbered raw records.

Every record leaves the reader as JSON *text* plus where it came from (file and line/row). Parsing the
JSON and validating the listing happen in the worker that checks the batch, so the reading process
stays cheap (it is the one serial step of a parallel run) and a malformed line becomes an error
result with its line number in the worker, exactly like any other bad listing.

Batches are planned deterministically from the input (files in sorted order, ``batch_size`` records
at a time, never spanning two files), and each plan entry says where its first record starts (a
byte offset, or a row for Parquet). That makes a checkpointed run resumable (batch 17 is the same
listings on every run over the same input) and lets any worker, or a Ray actor, read just its batch.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

#: File suffixes the audit reads, by format.
FORMATS: dict[str, str] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: CSV cells are at most this long (the default of 128 KiB would turn a long description into an error).
csv.field_size_limit(16 * 1024 * 1024)


@dataclass(frozen=True)
class RawRecord:
    """One input record: its JSON text (``None`` when it could not even be read) and its position."""

    source: str
    line: int
    payload: str | None
    error: str | None = None  # an error code found while reading, e.g. "malformed_csv"
    message: str | None = None


@dataclass
class Batch:
    """A unit of work and of checkpointing: consecutive records with a stable number."""

    batch_id: int
    records: list[RawRecord]


def discover(input_path: str | os.PathLike[str]) -> list[Path]:
    """The input files: the file itself, or every readable file under a folder in sorted order."""
    path = Path(input_path)
    if path.is_file():
        if _format_of(path) is None:
            raise ValueError(f"{path}: unknown input format; expected one of {', '.join(sorted(FORMATS))}")
        return [path]
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and _format_of(p) is not None and not p.name.startswith(".")
        )
        if not files:
            raise ValueError(f"{path}: no .jsonl, .csv or .parquet files in this folder")
        return files
    raise FileNotFoundError(f"{path}: no such file or folder")


def _format_of(path: Path) -> str | None:
    return FORMATS.get(path.suffix.lower())


def source_name(path: Path, root: Path) -> str:
    """How a result names its input file: relative to the folder given, or the file name."""
    if root.is_dir():
        return path.relative_to(root).as_posix()
    return path.name


@dataclass(frozen=True)
class BatchSpec:
    """Where a batch's records are: enough for any process (or Ray worker) to read just that batch.

    ``offset`` is a byte offset for JSON Lines and CSV (the start of the batch's first record) and a
    row offset for Parquet, so reading batch 900 does not re-read batches 0-899.
    """

    batch_id: int
    path: str
    source: str
    fmt: str
    offset: int
    first_line: int
    count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BatchSpec:
        """From ``to_dict`` (Ray hands the values back as numpy scalars)."""
        values: dict[str, Any] = {f.name: (int if f.type == "int" else str)(d[f.name]) for f in fields(cls)}
        return cls(**values)


def plan_batches(files: list[Path], root: Path, batch_size: int) -> Iterator[BatchSpec]:
    """Cut the input into numbered batches of at most ``batch_size`` records; a batch never spans files.

    One fast pass per text file (no JSON parsing; CSV is tokenised to find where records start, since a
    quoted cell may span lines); Parquet needs only its footer.
    """
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    batch_id = 0
    for path in files:
        fmt, source = str(_format_of(path)), source_name(path, root)
        starts = _STARTS[fmt](path)
        while chunk := list(itertools.islice(starts, batch_size)):  # (offset, line) of each record
            yield BatchSpec(batch_id, str(path), source, fmt, *chunk[0], len(chunk))
            batch_id += 1


def read_batch(spec: BatchSpec) -> Batch:
    """The records of one planned batch."""
    records = _READERS[spec.fmt](Path(spec.path), spec.source, spec.offset, spec.first_line)
    batch = Batch(spec.batch_id, list(itertools.islice(records, spec.count)))
    if len(batch.records) < spec.count:
        raise RuntimeError(
            f"{spec.source}: the file changed while being audited (batch {spec.batch_id} is short)"
        )
    return batch


def iter_all(files: list[Path], root: Path) -> Iterator[RawRecord]:
    """Every record of every file in order (tests and small tools; the runners read by batch)."""
    for path in files:
        yield from _READERS[str(_format_of(path))](path, source_name(path, root))


# -- JSON Lines ------------------------------------------------------------------------------------


def _jsonl_starts(path: Path) -> Iterator[tuple[int, int]]:
    offset = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if raw.strip():
                yield offset, lineno
            offset += len(raw)


def _jsonl(path: Path, source: str, offset: int = 0, first_line: int = 1) -> Iterator[RawRecord]:
    # Binary read + per-line decode: an undecodable line is that line's error, not the file's.
    with open(path, "rb") as fh:
        fh.seek(offset)
        for lineno, raw in enumerate(fh, first_line):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield RawRecord(
                    source, lineno, None, "malformed_json", f"line {lineno}: not UTF-8 ({exc.reason})"
                )
                continue
            if lineno == 1:
                text = text.lstrip("\ufeff")
            yield RawRecord(source, lineno, text.rstrip("\r\n"))


# -- CSV -------------------------------------------------------------------------------------------

#: Image list separators in a CSV cell that is not a JSON list.
_IMAGE_SEPARATORS = ("|", ";", "\n")


class _Lines:
    """Physical lines of a file from a byte offset, decoded for ``csv.reader``, remembering where the
    next unread line starts (so the position of each record's first line is known)."""

    def __init__(self, fh: io.BufferedReader, offset: int, lineno: int) -> None:
        fh.seek(offset)
        self.fh = fh
        self.next_offset = offset
        self.next_line = lineno

    def __iter__(self) -> Iterator[str]:
        for raw in self.fh:
            text = raw.decode("utf-8", errors="replace")
            if self.next_offset == 0:
                text = text.lstrip("\ufeff")
            self.next_offset += len(raw)
            self.next_line += 1
            yield text


def _csv_rows(
    path: Path, offset: int, first_line: int
) -> Iterator[tuple[int, int, list[str] | None, str | None]]:
    """(offset, line, cells or None, error) per non-blank record, from a record start."""
    with open(path, "rb") as fh:
        lines = _Lines(fh, offset, first_line)
        reader = csv.reader(iter(lines))
        while True:
            start_offset, start_line = lines.next_offset, lines.next_line
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start_offset, start_line, None, str(exc)
                continue
            if not cells or all(not c.strip() for c in cells):
                continue
            yield start_offset, start_line, cells, None


def _csv_header(path: Path) -> tuple[list[str], int, int] | None:
    """The header cells and the offset and line number just after the header record."""
    with open(path, "rb") as fh:
        lines = _Lines(fh, 0, 1)
        reader = csv.reader(iter(lines))
        for cells in reader:
            if cells and any(c.strip() for c in cells):
                return [c.strip() for c in cells], lines.next_offset, lines.next_line
    return None


def _csv_starts(path: Path) -> Iterator[tuple[int, int]]:
    header = _csv_header(path)
    if header is None:
        return
    _, offset, line = header
    for start_offset, start_line, _, _ in _csv_rows(path, offset, line):
        yield start_offset, start_line


def _csv(
    path: Path, source: str, offset: int | None = None, first_line: int | None = None
) -> Iterator[RawRecord]:
    header_info = _csv_header(path)
    if header_info is None:
        return
    header, body_offset, body_line = header_info
    offset = body_offset if offset is None else offset
    first_line = body_line if first_line is None else first_line
    for _, lineno, cells, error in _csv_rows(path, offset, first_line):
        if cells is None:
            yield RawRecord(source, lineno, None, "malformed_csv", f"line {lineno}: {error}")
        elif len(cells) > len(header):
            yield RawRecord(
                source,
                lineno,
                None,
                "malformed_csv",
                f"line {lineno}: {len(cells)} fields but the header has {len(header)}",
            )
        else:
            row = dict(zip(header, cells, strict=False))
            yield RawRecord(source, lineno, json.dumps(csv_row_to_listing(row), ensure_ascii=False))


def csv_row_to_listing(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row as a Listing dict.

    Spreadsheets export everything as text, so this is where a row gets its shape back: empty cells
    are dropped, ``attributes`` (a JSON object) and ``attributes.<name>``/``attr.<name>`` columns are
    gathered into ``attributes``, and ``images`` is a JSON list or a ``|``/``;``-separated cell.
    """
    out: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value == "":
            continue
        if key.startswith(("attributes.", "attr.")):
            attributes[key.split(".", 1)[1]] = value
        elif key == "attributes":
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                attributes.update(parsed)
            else:
                out["attributes"] = value  # validation reports it as an invalid listing
        elif key == "images":
            out["images"] = _split_images(value)
        else:
            out[key] = value
    if attributes:
        out["attributes"] = attributes
    return out


def _split_images(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        try:
            parsed = json.loads(value)
            if isinstance(parsed, list):
                return [str(v) for v in parsed]
        except json.JSONDecodeError:
            pass
    for sep in _IMAGE_SEPARATORS:
        if sep in value:
            return [v.strip() for v in value.split(sep) if v.strip()]
    return [value]


# -- Parquet ---------------------------------------------------------------------------------------


def _parquet_starts(path: Path) -> Iterator[tuple[int, int]]:
    import pyarrow.parquet as pq

    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception:
        yield 0, 0  # one pseudo-record: read_batch reports the unreadable file
        return
    for row in range(rows):
        yield row, row + 1


def _jsonable(v: Any) -> Any:
    """Arrow values as JSON: maps arrive as lists of (key, value) pairs, dates as objects."""
    if isinstance(v, list) and v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
        return {str(k): _jsonable(val) for k, val in v}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(val) for k, val in v.items()}
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if v is None or isinstance(v, str | int | float | bool):
        return v
    return str(v)


def _parquet(
    path: Path, source: str, offset: int = 0, _first_line: int = 1, rows_per_read: int = 4096
) -> Iterator[RawRecord]:
    """Rows from row ``offset``; a row's ``line`` is its 1-based number in the file."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        yield RawRecord(source, 0, None, "unreadable_file", f"{source}: not a readable Parquet file: {exc}")
        return
    # Start at the row group holding ``offset``; iter_batches then reads group by group (bounded memory).
    meta = pf.metadata
    first_group, group_start = 0, 0
    for g in range(meta.num_row_groups):
        n = meta.row_group(g).num_rows
        if group_start + n > offset:
            first_group = g
            break
        group_start += n
    else:
        return
    row = group_start
    groups = list(range(first_group, meta.num_row_groups))
    for record_batch in pf.iter_batches(batch_size=rows_per_read, row_groups=groups):
        if row + record_batch.num_rows <= offset:
            row += record_batch.num_rows
            continue
        skip = max(0, offset - row)
        row += skip
        for rec in record_batch.slice(skip).to_pylist():
            row += 1
            data = {k: _jsonable(v) for k, v in rec.items() if v is not None}
            if data.get("attributes") == []:
                data["attributes"] = {}
            yield RawRecord(source, row, json.dumps(data, ensure_ascii=False))


#: Where each format's records start (``plan_batches``), and its records from one (``read_batch``).
_STARTS: dict[str, Callable[[Path], Iterator[tuple[int, int]]]] = {
    "jsonl": _jsonl_starts,
    "csv": _csv_starts,
    "parquet": _parquet_starts,
}
_READERS: dict[str, Callable[..., Iterator[RawRecord]]] = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}
