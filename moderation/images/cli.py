"""``moderation images index|match``: build the image index and look images up in it (CONTRACTS.md).

Both commands go on past a bad image: ``index`` reports it on stderr and counts it in the summary,
``match`` prints a line with ``error`` for it, so one broken file never loses a batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import click

from moderation.images.hashing import ImageError, hash_image
from moderation.images.index import HashIndex, IndexError_
from moderation.images.matcher import COPY_DISTANCE, find_matches

#: Files picked up when walking a folder (a file named directly is always tried, whatever its name).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})

#: Images hashed between two index writes, so a huge folder does not sit in memory.
BATCH = 512


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


def _open_index(db: str, must_exist: bool) -> HashIndex:
    if must_exist and not (Path(db) / "meta.sqlite").exists():
        raise click.ClickException(f"no image index at {db}; build one with `moderation images index`")
    try:
        return HashIndex.open(db)
    except IndexError_ as exc:
        raise click.ClickException(exc.message) from None


@click.group("images")
def images() -> None:
    """Copied-image detection: index product photos, find near-duplicates of others."""


@images.command("index")
@click.argument("paths", nargs=-1, required=True)
@click.option("--db", required=True, help="Folder of the image index (created if missing).")
@click.option("--listing-id", default=None, help="Listing the images belong to.")
@click.option("--seller-id", default=None, help="Seller the images belong to.")
def index_command(paths: tuple[str, ...], db: str, listing_id: str | None, seller_id: str | None) -> None:
    """Add image files, or folders walked recursively, to the index at DB (same id: replaced)."""
    added = failed = 0
    with _open_index(db, must_exist=False) as idx:
        batch: list[tuple[str, tuple[int, ...], str | None, str | None, str | None]] = []
        seen: set[str] = set()
        for image_id, path in expand(paths):
            try:
                hashes = hash_image(path)
            except ImageError as exc:
                failed += 1
                click.echo(f"skipped {path}: {exc.code}: {exc.message}", err=True)
                continue
            if image_id in seen:  # the same id twice in one run: the last one wins, as across runs
                batch = [b for b in batch if b[0] != image_id]
            seen.add(image_id)
            batch.append((image_id, hashes.indexed(), listing_id, seller_id, str(path)))
            if len(batch) >= BATCH:
                added += len(idx.add_many(batch))
                batch = []
        added += len(idx.add_many(batch))
        total = len(idx)
    click.echo(f"indexed {added} image(s), {failed} failed; {db} now holds {total} image(s)", err=True)


@images.command("match")
@click.argument("paths", nargs=-1, required=True)
@click.option("--db", required=True, help="Folder of the image index.")
@click.option(
    "--max-distance",
    default=COPY_DISTANCE,
    show_default=True,
    type=click.IntRange(0, 32),
    help="Largest Hamming distance (of 64 bits) reported as a copy.",
)
@click.option("--seller-id", default=None, help="Leave out matches of this seller's own images.")
def match_command(paths: tuple[str, ...], db: str, max_distance: int, seller_id: str | None) -> None:
    """One JSON line per query image, in order: its near-duplicates in DB, best first."""
    with _open_index(db, must_exist=True) as idx:
        for given in paths:
            p = Path(given)
            files = [(str(f), f) for _, f in expand((given,))] if p.is_dir() else [(given, p)]
            for shown, path in files:
                line: dict[str, object] = {"image": shown, "matches": []}
                try:
                    matches = find_matches(idx, hash_image(path), max_distance)
                except ImageError as exc:
                    line["error"] = exc.to_dict()
                else:
                    line["matches"] = [
                        m.to_dict() for m in matches if seller_id is None or m.seller_id != seller_id
                    ]
                click.echo(json.dumps(line, ensure_ascii=False))
