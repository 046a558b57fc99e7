"""Which recognised lines are text a seller wrote, and which are OCR noise that must not raise alarms.

A product photo is full of things a recogniser reads as text with some confidence: texture, packaging
seen at an angle, a stock-photo watermark tiled across the picture, single characters. Rules run on
what is left after :func:`keep_lines`:

- lines the recogniser is not sure of (``confidence`` below :data:`MIN_CONFIDENCE`) are dropped;
- lines with fewer than two letters, digits or CJK characters are dropped (a lone 最 or 1 says nothing);
- lines without any CJK character (Latin letters, digits, marks) need :data:`MIN_LATIN_CONFIDENCE`:
  that is where misreadings of texture and lettering on the product land;
- watermark letters: a Latin-only text repeated three or more times in one picture (a tiled
  watermark: ``SAMPLE``, a stock site's name) is dropped everywhere in it.

Kept lines get one repair, :func:`repair`: the recogniser reads the character 一 as a dash after
another Chinese character (销量第- for 销量第一); such a dash becomes 一 again, one character for one, so
offsets and boxes are unchanged. A dash before a digit (温度-20℃) stays.

The thresholds were set on the rendered benchmark (scripts/bench_ocr.py, docs/ocr.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

from moderation.ocr.engine import OcrLine

MIN_CONFIDENCE = 0.75
MIN_LATIN_CONFIDENCE = 0.9
MIN_CHARS = 2
WATERMARK_REPEATS = 3

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: A dash read where 一 was written: after a CJK character, not before a digit or another dash.
_DASH_ONE = re.compile(r"(?<=[\u3400-\u4dbf\u4e00-\u9fff])[-－—–‐_](?![-－—–‐\d])")


def repair(text: str) -> str:
    """Undo the recogniser's usual misreading of 一 as a dash (same length: offsets stay valid)."""
    return _DASH_ONE.sub("一", text)


def _meaningful(text: str) -> int:
    return sum(1 for ch in text if ch.isalnum() or _CJK.match(ch))


def has_cjk(text: str) -> bool:
    return _CJK.search(text) is not None


def _watermark_key(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold() if ch.isalnum())


def keep_lines(
    lines: Iterable[OcrLine],
    *,
    min_confidence: float = MIN_CONFIDENCE,
    min_latin_confidence: float = MIN_LATIN_CONFIDENCE,
) -> list[OcrLine]:
    """The lines worth checking, in their order (see the module docstring)."""
    lines = list(lines)
    latin = Counter(_watermark_key(ln.text) for ln in lines if not has_cjk(ln.text))
    out = []
    for ln in lines:
        text = ln.text.strip()
        if ln.confidence < min_confidence or _meaningful(text) < MIN_CHARS:
            continue
        if not has_cjk(text):
            if ln.confidence < min_latin_confidence:
                continue
            if latin[_watermark_key(text)] >= WATERMARK_REPEATS:
                continue
        fixed = repair(ln.text)
        out.append(ln if fixed == ln.text else OcrLine(fixed, ln.confidence, ln.box, ln.quad))
    return out
