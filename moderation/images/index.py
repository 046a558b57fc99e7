"""A Hamming-distance index of 64-bit image hashes that answers "within distance d" without a full scan.

Multi-index hashing (Norouzi et al.): every 64-bit hash is cut into four 16-bit substrings. If two hashes
differ in at most ``d`` bits, then by the pigeonhole principle at least one of the four substrings differs
in at most ``d // 4`` bits. So a query looks up, in each of four tables, every 16-bit key within
``d // 4`` bits of its own substring, and only those rows are compared in full.

Each table is a permutation sorted by that substring plus the offsets at which each of the 65,536 keys
starts (what ``np.searchsorted`` of every possible key into the sorted substrings returns, precomputed),
so a probe is two array reads. The permutation holds flat positions into the hash array
(``row * slots + slot``) and the offsets are absolute positions into the concatenated permutations, so
a candidate is verified with a single gather and no per-candidate arithmetic. :meth:`HashIndex.probe`
does all the lookups of one image (every view, slot and probe key) with one gather per array, not a
Python loop. Per indexed image and slot that is 8 bytes of hash plus 4 x 4 bytes of permutation: 24
bytes; with the three slots hashed per image (:data:`INDEXED_VIEWS`) 72 bytes, plus a fixed 3 MiB of
offsets.

Layout of a file store (the folder given by ``--db``)::

    meta.sqlite      images (id, listing, seller, path, hash version, row), tombstones, settings
    hashes.npy       uint64 [rows, slots]           main segment, memory-mapped on load
    perm.npy         uint32 [slots, 4, rows]        row * slots + slot, sorted by each 16-bit substring
    offsets.npy      uint32 [slots, 4, 65537]       start of every key in the flattened perm

(``int64`` instead of ``uint32`` once positions pass 2**32, i.e. above ~357 million images.)

Images added after the last build live in a small *delta* segment (their hashes are in SQLite and scanned
linearly in memory); deletes are tombstones. :meth:`HashIndex.compact` rebuilds the main segment
without deleted rows and is run automatically once the delta or the tombstones grow past a fraction of
the main segment, so adds stay cheap and queries stay sub-linear. One writer at a time.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np

from moderation.images.hashing import HASH_VERSION, INDEXED_VIEWS

CHUNKS = 4
CHUNK_BITS = 16
_KEYS = 1 << CHUNK_BITS
_SHIFTS = np.array([48, 32, 16, 0], dtype=np.uint64)
_CHUNK_MASK = np.uint64(_KEYS - 1)

#: Compact once the delta segment exceeds this many rows or this fraction of the main segment.
DELTA_MIN_ROWS = 4096
DELTA_FRACTION = 0.125
#: ...or once this fraction of all rows are tombstones.
TOMBSTONE_FRACTION = 0.25

#: Thumbnails of checked images (shown next to their match in the console) are kept this long.
QUERY_THUMB_DAYS = 180

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    row INTEGER NOT NULL UNIQUE,
    listing_id TEXT,
    seller_id TEXT,
    path TEXT,
    version TEXT NOT NULL,
    hashes TEXT NOT NULL,
    brand TEXT
);
CREATE TABLE IF NOT EXISTS tombstones (row INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS media (id TEXT PRIMARY KEY, features BLOB, thumb BLOB);
CREATE TABLE IF NOT EXISTS query_thumbs (key TEXT PRIMARY KEY, thumb BLOB NOT NULL, created REAL NOT NULL);
"""


class IndexError_(Exception):
    """The index on disk cannot be used (another hash version, missing or damaged files)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _hex_row(hashes: Iterable[int]) -> str:
    return " ".join(f"{int(h):016x}" for h in hashes)


def _probe_masks(radius: int) -> np.ndarray:
    """All 16-bit XOR masks with at most ``radius`` bits set, fewest bits first."""
    values = np.arange(_KEYS, dtype=np.uint32)
    pop = np.bitwise_count(values)
    keep = values[pop <= radius]
    return keep[np.argsort(np.bitwise_count(keep), kind="stable")]


_MASKS: dict[int, np.ndarray] = {}


def probe_masks(radius: int) -> np.ndarray:
    if radius not in _MASKS:
        _MASKS[radius] = _probe_masks(radius)
    return _MASKS[radius]


def chunks_of(hashes: np.ndarray) -> np.ndarray:
    """[n] uint64 -> [n, 4] substrings, most significant first."""
    return ((hashes[:, None] >> _SHIFTS[None, :]) & _CHUNK_MASK).astype(np.uint32)


def _position_dtype(largest: int) -> type[np.integer]:
    """uint32 while every position fits (half the memory of int64), int64 beyond."""
    return np.uint32 if largest < 2**32 else np.int64


def build_tables(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The multi-index tables of a main segment's hashes [n, slots]: (perm, offsets).

    ``perm[s, c]`` lists the flat positions ``row * slots + s`` of slot ``s``'s hashes in
    ``hashes.reshape(-1)``, sorted by their ``c``-th 16-bit substring; ``offsets[s, c, k]`` is where key
    ``k``'s bucket starts in ``perm.reshape(-1)`` (table (s, c) starts at ``(s * 4 + c) * n``). Both are
    absolute so that a probe reads a bucket's bounds with one gather each and verifies its candidates
    with one gather from the hashes, with no per-candidate row, slot or table arithmetic.
    """
    n, slots = hashes.shape
    perm = np.empty((slots, CHUNKS, n), dtype=_position_dtype(n * slots))
    offsets = np.empty((slots, CHUNKS, _KEYS + 1), dtype=_position_dtype(slots * CHUNKS * n + 1))
    for s in range(slots):
        keys = chunks_of(np.ascontiguousarray(hashes[:, s]))
        for c in range(CHUNKS):
            k = keys[:, c].astype(np.uint16)
            perm[s, c] = np.argsort(k, kind="stable") * slots + s
            offsets[s, c, 0] = 0
            np.cumsum(np.bincount(k, minlength=_KEYS), out=offsets[s, c, 1:])
            offsets[s, c] += (s * CHUNKS + c) * n
    return perm, offsets


@dataclass(frozen=True)
class _ProbePlan:
    """The probe keys of a lookup request, as arrays over its probes (one per query, substring and mask).

    Depends only on which slot and probe radius each query hash has, not on the hash values, so the
    matcher's requests (the same plan for every image, up to the views that coincide) reuse it.
    """

    owner: np.ndarray  # [P] intp: the query each probe belongs to
    source: np.ndarray  # [P] intp: the probed substring in the queries viewed as little-endian uint16
    flip: np.ndarray  # [P] int64: XOR mask applied to the substring (the probe key's bits that differ)
    base: np.ndarray  # [P] int64: start of the probed (slot, substring) table in the flat offsets


@functools.lru_cache(maxsize=256)
def _probe_plan(slots_key: bytes, radii_key: bytes) -> _ProbePlan:
    """Plan for int64 ``slots`` and ``radii`` given as bytes (hashable, so plans are cached)."""
    slots = np.frombuffer(slots_key, dtype=np.int64)
    radii = np.frombuffer(radii_key, dtype=np.int64)
    owners, chunks, flips = [], [], []
    for r in np.unique(radii).tolist():
        sel = np.flatnonzero(radii == r)
        masks = probe_masks(r).astype(np.int64)
        owners.append(np.repeat(sel, CHUNKS * masks.size))
        chunks.append(np.tile(np.repeat(np.arange(CHUNKS), masks.size), sel.size))
        flips.append(np.tile(masks, CHUNKS * sel.size))
    owner, chunk, flip = (np.concatenate(parts) for parts in (owners, chunks, flips))
    base = (slots[owner] * CHUNKS + chunk) * (_KEYS + 1)
    # Substring c (0 = most significant) of hash i is uint16 number 4 * i + 3 - c of the LE bytes.
    source = owner * CHUNKS + (CHUNKS - 1 - chunk)
    return _ProbePlan(owner.astype(np.intp), source.astype(np.intp), flip, base)


_ARANGE = np.arange(1 << 16, dtype=np.int64)


def _arange(n: int) -> np.ndarray:
    """``np.arange(n)`` as a view of a cached array: the probe needs one per call, up to ~10**5 long."""
    global _ARANGE
    if _ARANGE.size < n:
        _ARANGE = np.arange(max(n, 2 * _ARANGE.size), dtype=np.int64)
    return _ARANGE[:n]


_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Run ``method`` holding the index's lock (the SQLite connection and arrays are shared by threads)."""

    @functools.wraps(method)
    def wrapper(self: HashIndex, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_F, wrapper)


class DuplicateIds(ValueError):
    """Ids that are already in the index, added without ``replace``."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(f"{len(ids)} image id(s) already in the index: {', '.join(ids[:5])}")
        self.ids = ids


@dataclass(frozen=True)
class Hit:
    """One indexed row within the radius of one query hash."""

    query: int  # position of the query hash in the request
    row: int
    distance: int


class HashIndex:
    """Images' 64-bit hashes (``slots`` per image) with metadata, searchable by Hamming distance.

    ``HashIndex.open(None)`` (or no argument) is a throwaway in-memory index with the same API as a
    file store; ``HashIndex.open(folder)`` creates or opens one on disk.
    """

    def __init__(self, path: Path | None, slots: int, version: str) -> None:
        self.path = path
        self.slots = slots
        self.version = version
        # One connection shared by every thread that uses the index (a server's worker threads), each
        # use under ``self._lock``: reads are short, and SQLite serialises writers anyway.
        self._lock = threading.RLock()
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path / "meta.sqlite", check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
        else:
            self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.executescript(_SCHEMA)
        self._check_settings()
        self._set_main(*build_tables(np.zeros((0, slots), dtype=np.uint64)), np.zeros((0, slots), np.uint64))
        self._load_main()
        self._load_delta_and_tombstones()

    # ------------------------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls, path: str | os.PathLike[str] | None = None, slots: int | None = None, version: str | None = None
    ) -> HashIndex:
        return cls(
            Path(path) if path is not None else None,
            slots if slots is not None else len(INDEXED_VIEWS),
            version or HASH_VERSION,
        )

    @_locked
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HashIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_settings(self) -> None:
        rows = dict(self._db.execute("SELECT key, value FROM settings").fetchall())
        if not rows:
            with self._db:
                self._db.executemany(
                    "INSERT INTO settings VALUES (?, ?)",
                    [("version", self.version), ("slots", str(self.slots)), ("main_rows", "0")],
                )
            return
        if rows.get("version") != self.version:
            raise IndexError_(
                "index_version_mismatch",
                f"the index holds hashes of version {rows.get('version')!r}, this code computes "
                f"{self.version!r}; re-index the images into a new --db",
            )
        self.slots = int(rows["slots"])

    def _setting(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return str(row[0])

    def _load_main(self) -> None:
        n = int(self._setting("main_rows"))
        if n == 0 or self.path is None:
            return
        try:
            hashes = np.load(self.path / "hashes.npy", mmap_mode="r")
            perm = np.load(self.path / "perm.npy", mmap_mode="r")
            offsets = np.load(self.path / "offsets.npy", mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise IndexError_(
                "index_damaged", f"cannot load the index arrays in {self.path}: {exc}"
            ) from None
        if (
            hashes.shape != (n, self.slots)
            or perm.shape != (self.slots, CHUNKS, n)
            or offsets.shape != (self.slots, CHUNKS, _KEYS + 1)
        ):
            raise IndexError_("index_damaged", f"index arrays in {self.path} do not match its metadata")
        self._set_main(perm, offsets, hashes)

    def _set_main(self, perm: np.ndarray, offsets: np.ndarray, hashes: np.ndarray) -> None:
        """Install a main segment, with the flat plain-ndarray views the probe gathers from."""
        self._main_hashes, self._perm, self._offsets = hashes, perm, offsets
        # np.asarray drops the memmap subclass: gathers from a plain view skip memmap's wrapping.
        self._flat_hashes = np.asarray(hashes).reshape(-1)
        self._flat_perm = np.asarray(perm).reshape(-1)
        self._flat_offsets = np.asarray(offsets).reshape(-1)

    def _load_delta_and_tombstones(self) -> None:
        n = self.main_rows
        rows = self._db.execute("SELECT row, hashes FROM images WHERE row >= ? ORDER BY row", (n,)).fetchall()
        self._delta_rows = np.array([r for r, _ in rows], dtype=np.int64)
        self._delta_hashes = np.array(
            [[int(h, 16) for h in text.split()] for _, text in rows], dtype=np.uint64
        ).reshape(-1, self.slots)
        self._next_row = int(self._db.execute("SELECT COALESCE(MAX(row) + 1, 0) FROM images").fetchone()[0])
        self._next_row = max(self._next_row, n)
        dead = self._db.execute("SELECT row FROM tombstones WHERE row < ?", (n,)).fetchall()
        self._dead = np.zeros(n, dtype=bool)
        if dead:
            self._dead[np.array([r for (r,) in dead], dtype=np.int64)] = True
        self._dead_count = len(dead)

    @property
    def main_rows(self) -> int:
        return int(self._main_hashes.shape[0])

    def __len__(self) -> int:
        return self.main_rows - self._dead_count + int(self._delta_rows.size)

    # ------------------------------------------------------------------------------------- writing

    def add(
        self,
        image_id: str,
        hashes: Sequence[int],
        *,
        listing_id: str | None = None,
        seller_id: str | None = None,
        path: str | None = None,
        brand: str | None = None,
        media: tuple[bytes | None, bytes | None] | None = None,
    ) -> int:
        """Add (or replace) one image; returns its row."""
        return int(self.add_many([(image_id, hashes, listing_id, seller_id, path, brand, media)])[0])

    @_locked
    def add_many(self, items: Iterable[Sequence[Any]], *, replace: bool = True) -> list[int]:
        """Add many images in one transaction; returns their rows.

        Each item is ``(id, hashes, listing_id, seller_id, path[, brand[, media]])`` where ``media`` is
        ``(features_blob, thumbnail_jpeg)`` or None. An id already in the index is replaced, or with
        ``replace=False`` the whole batch is refused with :class:`DuplicateIds`.
        """
        items = [tuple(it) + (None,) * (7 - len(it)) for it in items]
        if not items:
            return []
        ids = [it[0] for it in items]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate image ids in one batch")
        for it in items:
            if len(it[1]) != self.slots:
                raise ValueError(f"image {it[0]!r} has {len(it[1])} hashes; this index stores {self.slots}")
        if not replace:
            existing = self.existing(ids)
            if existing:
                raise DuplicateIds(sorted(existing))
        with self._db:
            self._delete_ids(ids)
            self._db.executemany("DELETE FROM media WHERE id = ?", [(i,) for i in ids])
            start = self._next_row
            rows = list(range(start, start + len(items)))
            self._db.executemany(
                "INSERT INTO images (id, row, listing_id, seller_id, path, version, hashes, brand) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (iid, row, lid, sid, p, self.version, _hex_row(hs), brand)
                    for row, (iid, hs, lid, sid, p, brand, _media) in zip(rows, items, strict=True)
                ],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO media (id, features, thumb) VALUES (?, ?, ?)",
                [(it[0], it[6][0], it[6][1]) for it in items if it[6] is not None],
            )
        self._next_row = start + len(items)
        new = np.array([[int(h) for h in it[1]] for it in items], dtype=np.uint64).reshape(-1, self.slots)
        self._delta_rows = np.concatenate([self._delta_rows, np.array(rows, dtype=np.int64)])
        self._delta_hashes = np.concatenate([self._delta_hashes, new])
        self._maybe_compact()
        return self.rows_of(ids)

    @_locked
    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are in the index."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            marks = ",".join("?" * len(part))
            found.update(r for (r,) in self._db.execute(f"SELECT id FROM images WHERE id IN ({marks})", part))
        return found

    @_locked
    def features_of(self, ids: Sequence[str]) -> dict[str, bytes]:
        """Image id -> its stored local-features blob (images indexed without media are left out)."""
        out: dict[str, bytes] = {}
        for i in range(0, len(ids), 500):
            part = list(ids[i : i + 500])
            marks = ",".join("?" * len(part))
            for iid, blob in self._db.execute(
                f"SELECT id, features FROM media WHERE id IN ({marks}) AND features IS NOT NULL", part
            ):
                out[iid] = bytes(blob)
        return out

    @_locked
    def thumbnail(self, image_id: str) -> bytes | None:
        """The JPEG thumbnail stored for an indexed image at index time."""
        row = self._db.execute("SELECT thumb FROM media WHERE id = ?", (image_id,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    @_locked
    def put_query_thumbnail(self, key: str, thumb: bytes) -> None:
        """Keep a checked image's thumbnail (by content key) so the console can show it next to its match."""
        now = time.time()
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO query_thumbs (key, thumb, created) VALUES (?, ?, ?)", (key, thumb, now)
            )
            self._thumb_writes = getattr(self, "_thumb_writes", 0) + 1
            if self._thumb_writes % 1000 == 1:  # now and then, forget thumbnails past the retention
                self._db.execute(
                    "DELETE FROM query_thumbs WHERE created < ?", (now - QUERY_THUMB_DAYS * 86400,)
                )

    @_locked
    def query_thumbnail(self, key: str) -> bytes | None:
        row = self._db.execute("SELECT thumb FROM query_thumbs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    @_locked
    def add_arrays(self, hashes: np.ndarray, id_prefix: str = "", metadata: bool = True) -> None:
        """Bulk-load many anonymous rows (ids ``<prefix><n>``): for benchmarks and migrations.

        ``metadata=False`` (in-memory indexes only) skips the SQLite rows, so a benchmark can load ten
        million hashes in seconds; such rows are found by :meth:`search` but have no metadata and are
        dropped by the next :meth:`compact` that renumbers rows, so use it only on a fresh index.
        """
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64).reshape(-1, self.slots)
        if not metadata and self.path is not None:
            raise ValueError("a file store keeps metadata for every row")
        start = self._next_row
        if metadata:
            with self._db:
                self._db.executemany(
                    "INSERT INTO images (id, row, version, hashes) VALUES (?, ?, ?, ?)",
                    (
                        (f"{id_prefix}{start + i}", start + i, self.version, _hex_row(row))
                        for i, row in enumerate(hashes.tolist())
                    ),
                )
        self._next_row = start + hashes.shape[0]
        new_rows = np.arange(start, self._next_row, dtype=np.int64)
        self._delta_rows = np.concatenate([self._delta_rows, new_rows])
        self._delta_hashes = np.concatenate([self._delta_hashes, hashes])
        if metadata:
            self._maybe_compact()
        else:
            self._build_in_memory()

    def _build_in_memory(self) -> None:
        hashes = np.concatenate([np.asarray(self._main_hashes), self._delta_hashes])
        self._set_main(*build_tables(hashes), hashes)
        self._dead = np.concatenate([self._dead, np.zeros(self._delta_rows.size, dtype=bool)])
        self._delta_rows = np.zeros(0, dtype=np.int64)
        self._delta_hashes = np.zeros((0, self.slots), dtype=np.uint64)
        self._next_row = hashes.shape[0]

    @_locked
    def delete(self, image_id: str) -> bool:
        """Remove one image; returns whether it was there."""
        with self._db:
            self._db.execute("DELETE FROM media WHERE id = ?", (image_id,))
            return self._delete_ids([image_id]) > 0

    def _delete_ids(self, ids: list[str]) -> int:
        found: list[int] = []
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            found.extend(
                r for (r,) in self._db.execute(f"SELECT row FROM images WHERE id IN ({marks})", part)
            )
        if not found:
            return 0
        self._db.executemany("DELETE FROM images WHERE row = ?", [(r,) for r in found])
        # (media rows are keyed by id: replaced by the caller's insert, or removed by ``delete``)
        n = self.main_rows
        main_dead = [r for r in found if r < n]
        if main_dead:
            self._db.executemany("INSERT OR IGNORE INTO tombstones VALUES (?)", [(r,) for r in main_dead])
            newly = [r for r in main_dead if not self._dead[r]]
            self._dead[np.array(main_dead, dtype=np.int64)] = True
            self._dead_count += len(newly)
        delta_dead = np.array([r for r in found if r >= n], dtype=np.int64)
        if delta_dead.size:
            keep = ~np.isin(self._delta_rows, delta_dead)
            self._delta_rows, self._delta_hashes = self._delta_rows[keep], self._delta_hashes[keep]
        return len(found)

    def _maybe_compact(self) -> None:
        n = self.main_rows
        if self._delta_rows.size > max(DELTA_MIN_ROWS, DELTA_FRACTION * n) or (
            n and self._dead_count > TOMBSTONE_FRACTION * n
        ):
            self.compact()

    @_locked
    def compact(self) -> None:
        """Rebuild the main segment from every live row (renumbering rows), drop tombstones."""
        live_main = np.flatnonzero(~self._dead)
        hashes = np.concatenate([np.asarray(self._main_hashes[live_main]), self._delta_hashes])
        old_rows = np.concatenate([live_main, self._delta_rows])
        n = int(hashes.shape[0])
        perm, offsets = build_tables(hashes)
        with self._db:
            # Renumber through negative rows so the UNIQUE constraint never sees two rows at once.
            if old_rows.size:
                pairs = [(-1 - new, int(old)) for new, old in enumerate(old_rows.tolist()) if new != old]
                self._db.executemany("UPDATE images SET row = ? WHERE row = ?", pairs)
                self._db.execute("UPDATE images SET row = -1 - row WHERE row < 0")
            self._db.execute("DELETE FROM tombstones")
            if self.path is not None:
                self._write_arrays(hashes, perm, offsets)
            self._db.execute("UPDATE settings SET value = ? WHERE key = 'main_rows'", (str(n),))
        if self.path is not None:
            self._load_main()
        else:
            self._set_main(perm, offsets, hashes)
        self._load_delta_and_tombstones()

    def _write_arrays(self, hashes: np.ndarray, perm: np.ndarray, offsets: np.ndarray) -> None:
        assert self.path is not None
        # Drop our maps of the old files first, then replace each file atomically.
        empty = np.zeros((0, self.slots), dtype=np.uint64)
        self._set_main(*build_tables(empty), empty)
        for name, arr in (("hashes", hashes), ("perm", perm), ("offsets", offsets)):
            tmp = self.path / f".{name}.tmp.npy"
            np.save(tmp, arr)
            os.replace(tmp, self.path / f"{name}.npy")

    # ------------------------------------------------------------------------------------- reading

    def search(
        self, queries: Sequence[int] | np.ndarray, slot: int, radius: int, probe_radius: int | None = None
    ) -> list[Hit]:
        """Live rows whose hash in ``slot`` is within ``radius`` bits of a query hash.

        Exact when ``probe_radius`` is left at ``radius // 4``. A smaller ``probe_radius`` probes far fewer
        buckets and is still exact up to ``4 * probe_radius + 3`` bits; beyond that a row is found only
        when one of its four substrings is within ``probe_radius`` of the query's. The matcher uses that
        trade (see :meth:`probe`).
        """
        q = np.asarray(queries, dtype=np.uint64).reshape(-1)
        probe = radius // CHUNKS if probe_radius is None else min(probe_radius, radius // CHUNKS)
        qi, rows, dist = self.probe(q, np.full(q.size, slot), np.full(q.size, probe), radius)
        return [Hit(a, b, c) for a, b, c in zip(qi.tolist(), rows.tolist(), dist.tolist(), strict=True)]

    @_locked
    def probe(
        self, queries: np.ndarray, slots: np.ndarray, probe_radii: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Many lookups in one vectorised pass: (query position, row, distance) arrays, each pair once.

        Query hash ``i`` is looked up in slot ``slots[i]``, probing every key within ``probe_radii[i]``
        bits of each of its four substrings (at most ``radius // 4`` makes it exact); every candidate is
        verified against ``radius``. All probe keys of all queries are built as one array (from a cached
        :class:`_ProbePlan`), their buckets read with one gather from the offsets, the candidates' hash
        positions with one gather from the permutations and their hashes with one more, verified with
        one vectorised popcount; only the few within ``radius`` are turned into (query, row) pairs. The
        delta segment is scanned for all queries at once. Deleted rows are left out.
        """
        q = np.asarray(queries, dtype=np.uint64).reshape(-1)
        slots = np.asarray(slots, dtype=np.int64).reshape(-1)
        radii = np.minimum(np.asarray(probe_radii, dtype=np.int64).reshape(-1), radius // CHUNKS)
        if q.size == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        qi, rows, dist = self._probe_main(q, slots, radii, radius)
        if self._delta_rows.size:
            dqi, drows, ddist = self._scan_delta(q, slots, radius)
            qi, rows, dist = (
                np.concatenate([qi, dqi]),
                np.concatenate([rows, drows]),
                np.concatenate([dist, ddist]),
            )
        return qi, rows, dist

    def _probe_main(
        self, q: np.ndarray, slots: np.ndarray, radii: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self.main_rows
        empty = np.zeros(0, np.int64)
        if n == 0:
            return empty, empty, empty
        plan = _probe_plan(slots.tobytes(), radii.tobytes())
        # Where each probe key's bucket bounds sit in the flat offsets. Every call here is one numpy
        # operation over all probes: at this size the per-call overhead is what costs.
        at = np.ascontiguousarray(q, dtype="<u8").view("<u2")[plan.source] ^ plan.flip
        at += plan.base
        starts = self._flat_offsets[at]
        counts = np.subtract(self._flat_offsets[at + 1], starts, dtype=np.int64)
        ends = np.cumsum(counts)
        total = int(ends[-1])
        if total == 0:
            return empty, empty, empty
        # Positions starts[i] .. starts[i] + counts[i] - 1 of every bucket, without a Python loop.
        pos = np.repeat(starts - ends + counts, counts)
        pos += _arange(total)
        at_hash = self._flat_perm[pos]  # row * slots + slot of every candidate
        stored = self._flat_hashes[at_hash]
        stored ^= np.repeat(q[plan.owner], counts)
        hit = np.flatnonzero(np.bitwise_count(stored) <= radius)
        if hit.size == 0:
            return empty, empty, empty
        # Only the candidates within the radius (a handful) are mapped back to query and row.
        rows = at_hash[hit].astype(np.int64) // self.slots
        qi = plan.owner[np.searchsorted(ends, hit, side="right")].astype(np.int64)
        dist = np.bitwise_count(stored[hit]).astype(np.int64)
        if hit.size > 1:  # the same row can come out of several substrings and probe keys
            _, first = np.unique(qi * n + rows, return_index=True)
            qi, rows, dist = qi[first], rows[first], dist[first]
        live = ~self._dead[rows]
        return qi[live], rows[live], dist[live]

    def _scan_delta(
        self, q: np.ndarray, slots: np.ndarray, radius: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._delta_rows.size == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        d = np.bitwise_count(self._delta_hashes[:, slots].T ^ q[:, None]).astype(np.int64)  # [Q, D]
        qi, j = np.nonzero(d <= radius)
        return qi.astype(np.int64), self._delta_rows[j], d[qi, j]

    @_locked
    def linear_search(self, queries: Sequence[int] | np.ndarray, slot: int, radius: int) -> list[Hit]:
        """The same answer as :meth:`search` by comparing every row (the baseline it is measured against)."""
        q = np.asarray(queries, dtype=np.uint64).reshape(-1)
        hits: list[Hit] = []
        column = np.asarray(self._main_hashes[:, slot])
        for i, h in enumerate(q.tolist()):
            d = np.bitwise_count(column ^ np.uint64(h))
            rows = np.flatnonzero((d <= radius) & ~self._dead)
            hits.extend(Hit(i, int(r), int(d[r])) for r in rows)
        dqi, drows, ddist = self._scan_delta(q, np.full(q.size, slot), radius)
        hits.extend(Hit(int(a), int(b), int(c)) for a, b, c in zip(dqi, drows, ddist, strict=True))
        return hits

    def hashes_of_row(self, row: int) -> tuple[int, ...]:
        return tuple(int(h) for h in self.hashes_of_rows(np.array([row]))[0])

    @_locked
    def hashes_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """[len(rows), slots] uint64 stored hashes of live rows (main or delta segment)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((rows.size, self.slots), dtype=np.uint64)
        main = rows < self.main_rows
        out[main] = self._main_hashes[rows[main]]
        if not main.all():
            out[~main] = self._delta_hashes[np.searchsorted(self._delta_rows, rows[~main])]
        return out

    @_locked
    def rows_of(self, ids: Sequence[str]) -> list[int]:
        out: list[int] = []
        for iid in ids:
            row = self._db.execute("SELECT row FROM images WHERE id = ?", (iid,)).fetchone()
            if row is None:
                raise KeyError(iid)
            out.append(int(row[0]))
        return out

    @_locked
    def metadata(self, rows: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Row -> {id, listing_id, seller_id, path, version, hashes} for live rows."""
        rows = sorted({int(r) for r in rows})
        out: dict[int, dict[str, Any]] = {}
        for i in range(0, len(rows), 500):
            part = rows[i : i + 500]
            marks = ",".join("?" * len(part))
            for row, iid, lid, sid, p, ver, hs, brand in self._db.execute(
                "SELECT row, id, listing_id, seller_id, path, version, hashes, brand FROM images "
                f"WHERE row IN ({marks})",
                part,
            ):
                out[int(row)] = {
                    "id": iid,
                    "listing_id": lid,
                    "seller_id": sid,
                    "path": p,
                    "version": ver,
                    "hashes": hs.split(),
                    "brand": brand,
                }
        return out

    @_locked
    def get(self, image_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT row FROM images WHERE id = ?", (image_id,)).fetchone()
        return None if row is None else self.metadata([row[0]]).get(int(row[0]))

    def index_bytes(self) -> int:
        """Bytes of the search structures (hashes, permutations, offsets, delta, tombstone mask)."""
        return int(
            self._main_hashes.nbytes
            + self._perm.nbytes
            + self._offsets.nbytes
            + self._delta_hashes.nbytes
            + self._delta_rows.nbytes
            + self._dead.nbytes
        )
