"""Part files: one Parquet file per batch and table (and one JSON Lines file with ``--jsonl``).

Each part is written to a hidden temporary name and renamed into place, so a reader (or a resumed
run) never sees half a file; Arrow's dataset reader skips names starting with a dot, which makes
``pyarrow.parquet.read_table("DIR/listings")`` read the finished parts only. Batches are the unit of
the checkpoint, so parts are the unit of output: rerunning a batch overwrites its parts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from moderation.audit.batch import BatchOutput

TABLES = ("listings", "findings", "images")
JSONL_PARTS = "results-parts"
JSONL_FILE = "results.jsonl"
#: Everything an audit writes into its output folder (``--restart`` removes exactly these).
OUTPUTS = (
    *TABLES,
    JSONL_PARTS,
    JSONL_FILE,
    "manifest.sqlite",
    "manifest.sqlite-wal",
    "manifest.sqlite-shm",
    "summary.json",
    "report.html",
    "diff.json",
    "diff.html",
)


def part_name(batch_id: int, suffix: str) -> str:
    return f"part-{batch_id:06d}.{suffix}"


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_parts(out_dir: Path, output: BatchOutput) -> None:
    """Write a batch's parts; images only when the batch had any (most catalogues have few)."""
    for name in TABLES:
        table: pa.Table = getattr(output, name)
        folder = out_dir / name
        path = folder / part_name(output.batch_id, "parquet")
        if name == "images" and table.num_rows == 0:
            path.unlink(missing_ok=True)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_parquet(table, path)
    if output.jsonl is not None:
        folder = out_dir / JSONL_PARTS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / part_name(output.batch_id, "jsonl")
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in output.jsonl)
        os.replace(tmp, path)


def clean_temporary(out_dir: Path) -> None:
    """Remove the temporary files a killed run left behind."""
    for name in (*TABLES, JSONL_PARTS):
        folder = out_dir / name
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def remove_outputs(out_dir: Path) -> None:
    """Forget a previous audit in ``out_dir`` (``--restart``); other files there are left alone."""
    for name in OUTPUTS:
        path = out_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def concat_jsonl(out_dir: Path, batch_ids: list[int]) -> Path:
    """Join the JSON Lines parts into ``results.jsonl`` in input order, then drop the parts."""
    parts = out_dir / JSONL_PARTS
    final = out_dir / JSONL_FILE
    tmp = out_dir / f".{JSONL_FILE}.tmp"
    with open(tmp, "wb") as out:
        for bid in sorted(batch_ids):
            with open(parts / part_name(bid, "jsonl"), "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
    os.replace(tmp, final)
    shutil.rmtree(parts, ignore_errors=True)
    return final


def read_table(out_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """A whole output table (small outputs, tests); reports stream part by part instead."""
    from moderation.audit.batch import SCHEMAS

    schema = SCHEMAS[name]  # parts of an older output version read their missing columns as null
    files = part_files(out_dir, name)
    if not files:
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    return pa.concat_tables(pq.read_table(f, columns=columns, schema=schema) for f in files)


def part_files(out_dir: Path, name: str) -> list[Path]:
    folder = out_dir / name
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []
