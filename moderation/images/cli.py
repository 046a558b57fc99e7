"""``moderation images index|match``: build the image index and look images up in it (CONTRACTS.md).

``index`` takes files, folders (walked recursively; an image's id is its path relative to the folder,
as the contract says) and/or a manifest (``--manifest``: JSON Lines or CSV with ``path`` and optional
``id``, ``listing_id``, ``seller_id``, ``brand``; relative paths are relative to the manifest), with a
progress bar on stderr. Ids never overwrite silently:

- an **explicit** id (a manifest's ``id``) that is already in the index is refused (an error) unless
  ``--replace``;
- a **derived** id (a path) already in the index for *another* image - two sellers' ``main.jpg`` - gets
  a suffix (``main.jpg#2``) and both are kept; for the same file and owner it is left as it is
  (already indexed) unless ``--replace``.

``match`` prints one JSON line per query image, in order (the contract); ``--explain`` adds the nearest
candidates with their hash distances and verification evidence, copies or not, to explain a miss.

Both go on past a bad image: it is reported (stderr for ``index``, an ``error`` line for ``match``) and
the exit status is 1 when any image failed or was refused, 0 otherwise. ``--json`` prints ``index``'s
summary as one JSON object on stdout.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from moderation.images.hashing import ImageError, load_image
from moderation.images.index import HashIndex, IndexError_
from moderation.images.matcher import CANDIDATES, Query, find_matches, index_entry

#: Files picked up when walking a folder (a file named directly is always tried, whatever its name).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

#: Images hashed between two index writes, so a huge folder does not sit in memory.
BATCH = 256


@dataclass
class Item:
    """One image to index: where it is, its id (explicit or derived from the path) and its owners."""

    path: Path
    id: str
    explicit: bool
    listing_id: str | None = None
    seller_id: str | None = None
    brand: str | None = None
    where: str = ""  # for messages: manifest line or path


def expand(paths: tuple[str, ...]) -> Iterator[tuple[str, Path]]:
    """(id, file) for each path: a file as given; a folder's image files by path relative to it."""
    for given in paths:
        p = Path(given)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    yield f.relative_to(p).as_posix(), f
        else:
            yield given, p


def read_manifest(path: Path) -> Iterator[Item | tuple[str, str]]:
    """Items of a JSONL or CSV manifest; a bad line yields (where, message) instead."""
    base = path.parent
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows: list[tuple[str, Any]] = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((f"{path.name}:{n}", json.loads(line)))
            except json.JSONDecodeError as exc:
                rows.append((f"{path.name}:{n}", f"malformed JSON: {exc.msg}"))
    else:
        reader = csv.DictReader(text.splitlines())
        rows = [(f"{path.name}:{n}", row) for n, row in enumerate(reader, 2)]
    for where, row in rows:
        if isinstance(row, str):
            yield where, row
            continue
        if not isinstance(row, dict) or not str(row.get("path") or "").strip():
            yield where, "needs a 'path'"
            continue
        p = Path(str(row["path"]).strip())
        if not p.is_absolute():
            p = base / p

        def text_of(key: str, row: dict[str, Any] = row) -> str | None:
            value = row.get(key)
            return None if value is None or str(value).strip() == "" else str(value).strip()

        explicit = text_of("id")
        yield Item(
            path=p,
            id=explicit or str(row["path"]).strip(),
            explicit=explicit is not None,
            listing_id=text_of("listing_id"),
            seller_id=text_of("seller_id"),
            brand=text_of("brand"),
            where=where,
        )


def _open_index(db: str, must_exist: bool) -> HashIndex:
    if must_exist and not (Path(db) / "meta.sqlite").exists():
        raise click.ClickException(f"no image index at {db}; build one with `moderation images index`")
    try:
        return HashIndex.open(db)
    except IndexError_ as exc:
        raise click.ClickException(exc.message) from None


@click.group("images")
def images() -> None:
    """Copied-image detection: index product photos, find copies of them."""


class _Indexer:
    def __init__(self, idx: HashIndex, replace: bool) -> None:
        self.idx = idx
        self.replace = replace
        self.counts = {
            "indexed": 0,
            "replaced": 0,
            "renamed": 0,
            "already_indexed": 0,
            "failed": 0,
            "refused": 0,
        }
        self.errors: list[dict[str, str]] = []
        self.batch: list[tuple[Any, ...]] = []
        self.batch_ids: set[str] = set()

    def error(self, kind: str, where: str, code: str, message: str) -> None:
        self.counts[kind] += 1
        self.errors.append({"image": where, "code": code, "message": message})
        click.echo(f"{'skipped' if kind == 'failed' else 'refused'} {where}: {code}: {message}", err=True)

    def _owner_of(self, image_id: str) -> dict[str, Any] | None:
        return self.idx.get(image_id)

    def add(self, item: Item) -> None:
        image_id = item.id
        existing = (
            self._owner_of(image_id) if image_id not in self.batch_ids else {"path": None, "seller_id": None}
        )
        if existing is not None and not self.replace:
            if item.explicit:
                self.error(
                    "refused",
                    item.where or str(item.path),
                    "duplicate_id",
                    f"image id {image_id!r} is already in the index (use --replace to replace it)",
                )
                return
            if existing.get("path") == str(item.path) and existing.get("seller_id") == item.seller_id:
                self.counts["already_indexed"] += 1
                return
            n = 2
            while f"{image_id}#{n}" in self.batch_ids or self._owner_of(f"{image_id}#{n}") is not None:
                n += 1
            image_id = f"{image_id}#{n}"
            self.counts["renamed"] += 1
            click.echo(
                f"{item.path}: id {item.id!r} is taken by another image; indexed as {image_id!r}", err=True
            )
        elif existing is not None and image_id in self.batch_ids:
            self.flush()  # the same id twice in a run with --replace: the later one wins, in order
        try:
            hashes, media = index_entry(load_image(item.path))
        except ImageError as exc:
            self.error("failed", item.where or str(item.path), exc.code, exc.message)
            return
        if existing is not None:
            self.counts["replaced"] += 1
        self.batch.append(
            (image_id, hashes, item.listing_id, item.seller_id, str(item.path), item.brand, media)
        )
        self.batch_ids.add(image_id)
        self.counts["indexed"] += 1
        if len(self.batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.batch:
            self.idx.add_many(self.batch, replace=True)
        self.batch = []
        self.batch_ids = set()


@images.command("index")
@click.argument("paths", nargs=-1)
@click.option("--db", required=True, help="Folder of the image index (created if missing).")
@click.option(
    "--manifest",
    "manifests",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="JSONL or CSV: path, and optional id, listing_id, seller_id, brand per image.",
)
@click.option("--listing-id", default=None, help="Listing of the images given as PATHS.")
@click.option("--seller-id", default=None, help="Seller of the images given as PATHS.")
@click.option("--brand", default=None, help="Brand of the images given as PATHS.")
@click.option("--replace", is_flag=True, help="Replace images whose id is already in the index.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def index_command(
    paths: tuple[str, ...],
    db: str,
    manifests: tuple[str, ...],
    listing_id: str | None,
    seller_id: str | None,
    brand: str | None,
    replace: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    """Add image files, folders (walked recursively) and manifests to the index at DB."""
    if not paths and not manifests:
        raise click.UsageError("give image files or folders, or --manifest")
    items: list[Item | tuple[str, str]] = [
        Item(
            path=p,
            id=i,
            explicit=False,
            listing_id=listing_id,
            seller_id=seller_id,
            brand=brand,
            where=str(p),
        )
        for i, p in expand(paths)
    ]
    for m in manifests:
        items.extend(read_manifest(Path(m)))
    with _open_index(db, must_exist=False) as idx:
        indexer = _Indexer(idx, replace)
        from tqdm import tqdm

        bar = tqdm(total=len(items), unit="img", disable=quiet or None, file=sys.stderr, desc="indexing")
        try:
            for item in items:
                if isinstance(item, tuple):
                    indexer.error("failed", item[0], "bad_manifest_line", item[1])
                else:
                    indexer.add(item)
                bar.update(1)
            indexer.flush()
        finally:
            bar.close()
        total = len(idx)
    c = indexer.counts
    summary = {"db": db, **c, "total": total, "errors": indexer.errors}
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    click.echo(
        f"indexed {c['indexed']} image(s) ({c['replaced']} replaced, {c['renamed']} renamed), "
        f"{c['already_indexed']} already indexed, {c['failed']} failed, {c['refused']} refused; "
        f"{db} now holds {total} image(s)",
        err=True,
    )
    if c["failed"] or c["refused"]:
        sys.exit(1)


@images.command("match")
@click.argument("paths", nargs=-1, required=True)
@click.option("--db", required=True, help="Folder of the image index.")
@click.option("--seller-id", default=None, help="Leave out matches of this seller's own images.")
@click.option(
    "--explain",
    is_flag=True,
    help="Also list the nearest candidates with hash distances and verification evidence.",
)
@click.option(
    "--candidates",
    default=CANDIDATES,
    show_default=True,
    type=click.IntRange(1, 200),
    help="Candidates verified per image.",
)
def match_command(
    paths: tuple[str, ...], db: str, seller_id: str | None, explain: bool, candidates: int
) -> None:
    """One JSON line per query image, in order: its copies in DB, best first."""
    failed = 0
    with _open_index(db, must_exist=True) as idx:
        for given in paths:
            p = Path(given)
            files = [(str(f), f) for _, f in expand((given,))] if p.is_dir() else [(given, p)]
            for shown, path in files:
                line: dict[str, object] = {"image": shown, "matches": []}
                try:
                    found = find_matches(idx, Query.load(path), limit=candidates, explain=True)
                except ImageError as exc:
                    line["error"] = exc.to_dict()
                    failed += 1
                else:
                    line["matches"] = [
                        m.to_dict()
                        for m in found
                        if m.is_copy and (seller_id is None or m.seller_id != seller_id)
                    ]
                    if explain:
                        line["candidates"] = [
                            m.to_dict() for m in sorted(found, key=lambda m: (m.distance, m.id))
                        ]
                click.echo(json.dumps(line, ensure_ascii=False))
    if failed:
        sys.exit(1)
