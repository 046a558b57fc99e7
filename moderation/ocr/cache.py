"""OCR results by image content: a picture is read once, whatever listing, check or audit shows it again.

The key is the SHA-256 of the image file's bytes plus the OCR settings (``OcrSettings.key()``), so a
renamed or re-uploaded copy of a picture is a hit and a change of model or detector size is a miss. The
value is the raw page (every line with its confidence and box, before the noise filter), so tuning the
filter or the rules never needs the pictures read again.

Storage is one SQLite file (WAL, so the audit's worker processes share it), fronted by a small
in-process LRU. ``MODERATION_OCR_CACHE`` names the file (default ``var/ocr-cache.sqlite``); ``off``
disables the disk cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path

from moderation.ocr.engine import OcrPage

ENV_CACHE = "MODERATION_OCR_CACHE"  # read by moderation.settings (Settings.ocr_cache)
DEFAULT_PATH = Path("var") / "ocr-cache.sqlite"


def content_key(data: bytes, settings_key: str) -> str:
    """The cache key of a picture's bytes under given settings."""
    h = hashlib.sha256(data)
    h.update(b"\0")
    h.update(settings_key.encode())
    return h.hexdigest()


class OcrCache:
    """Pages by content key: an in-process LRU in front of an SQLite file (or memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, memory_items: int = 512) -> None:
        self.path = Path(path) if path is not None else None
        self.memory_items = memory_items
        self._memory: OrderedDict[str, OcrPage] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = -1
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_env(cls) -> OcrCache:
        from moderation.settings import settings

        value = settings().ocr_cache or ""
        if value.lower() in ("off", "none", "0"):
            return cls(None)
        return cls(value or DEFAULT_PATH)

    def _conn(self) -> sqlite3.Connection | None:
        if self.path is None:
            return None
        if self._db is None or self._pid != os.getpid():  # a forked child opens its own connection
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS ocr (key TEXT PRIMARY KEY, page TEXT NOT NULL, created REAL NOT NULL)"
            )
            self._db, self._pid = db, os.getpid()
        return self._db

    def get(self, key: str) -> OcrPage | None:
        with self._lock:
            page = self._memory.get(key)
            if page is not None:
                self._memory.move_to_end(key)
                self.hits += 1
                return page
            db = self._conn()
            row = db.execute("SELECT page FROM ocr WHERE key = ?", (key,)).fetchone() if db else None
            if row is None:
                self.misses += 1
                return None
            page = OcrPage.from_json(json.loads(row[0]))
            self._remember(key, page)
            self.hits += 1
            return page

    def put(self, key: str, page: OcrPage) -> None:
        with self._lock:
            self._remember(key, page)
            db = self._conn()
            if db is not None:
                payload = json.dumps(page.to_json(), ensure_ascii=False, separators=(",", ":"))
                db.execute(
                    "INSERT OR REPLACE INTO ocr (key, page, created) VALUES (?, ?, ?)",
                    (key, payload, time.time()),
                )

    def _remember(self, key: str, page: OcrPage) -> None:
        self._memory[key] = page
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def __len__(self) -> int:
        db = self._conn()
        if db is None:
            return len(self._memory)
        return int(db.execute("SELECT count(*) FROM ocr").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None
