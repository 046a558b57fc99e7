"""Character folding before the model reads a text: traditional → simplified characters (OpenCC's
character table, one character to one) and full-width ASCII → ASCII.

Real enforcement cases are often quoted from mirror pages in traditional characters (樂樂鮮果超市是天津
最大的水果連鎖超市), which a model trained on simplified text reads as unknown characters. Every
mapping is one character to one character, so offsets into the folded text are offsets into the
original (explanations rely on that). A checkpoint folds only when its calibration.json says
``"fold": "t2s"`` (set by training), so older or foreign checkpoints score exactly as before.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

FOLD_NAME = "t2s"


@cache
def _table() -> dict[int, int]:
    table: dict[int, int] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
    table[0x3000] = 0x20  # ideographic space
    try:
        import opencc  # opencc-python-reimplemented ships OpenCC's dictionaries as text
    except ImportError:
        return table
    path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and len(parts[0]) == 1:
            simp = parts[1].split()[0] if parts[1].split() else ""
            if len(simp) == 1 and simp != parts[0]:
                table[ord(parts[0])] = ord(simp)
    return table


def fold(text: str) -> str:
    """``text`` with traditional characters and full-width ASCII folded; same length, same offsets."""
    return text.translate(_table())


def fold_all(texts: list[str]) -> list[str]:
    table = _table()
    return [t.translate(table) for t in texts]
