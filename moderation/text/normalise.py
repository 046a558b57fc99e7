"""Offset-preserving normalisation of listing text.

Sellers dodge keyword filters with full-width letters (ＮＯ．１), circled digits (第①), traditional
characters (國家級), spaces, symbols, emoji or zero-width characters between characters (最 佳, 最*佳),
pinyin (zui佳) and homophones (醉佳). Rules are written once, against the folded form; every folded
character keeps the index of the original character it came from, so a finding's span always points at
what the seller actually typed.

The hot path is vectorised with numpy look-up tables over code points (a listing of 1,000 characters
folds in tens of microseconds); only the rare evasion substitutions fall back to Python.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import ahocorasick_rs
import numpy as np

from moderation.paths import lexicon_path

_MAX_CP = 0x110000
#: Kept only between two digits (3.5kg, 35-95㎡, 10~20℃); elsewhere they are evasion noise (最.佳).
_BETWEEN_DIGITS = ".-~"

#: Punctuation that separates clauses. It is kept (never stripped as noise) because it marks the
#: context window of a claim; stripping it would glue unrelated phrases together. A colon is kept but
#: does not end a clause: "色号：No.1" is one key-value statement.
CLAUSE_PUNCT = "，。！？；、,!?;\n…"
#: Marks sentence ends, for sentence-scoped context checks.
SENTENCE_PUNCT = "。！？!?；;\n"
#: Other symbols that carry meaning in claims (percentages, prices, rankings) and so are kept.
_KEEP_SYMBOLS = "#%+&@=<>()（）[]【】{}「」『』《》〈〉〔〕“”\"'/：:"


def _lut(chars: str) -> np.ndarray:
    table = np.zeros(_MAX_CP, dtype=bool)
    table[[ord(c) for c in chars]] = True
    return table


_DIGIT_JOINERS = _lut(_BETWEEN_DIGITS)
_DIGITS = _lut("0123456789")


@dataclass(frozen=True, slots=True)
class NormalisedText:
    """Folded text plus, for every folded character, the original span ``[starts[i], ends[i])``."""

    original: str
    text: str
    starts: np.ndarray
    ends: np.ndarray

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a half-open span of the folded text back to the original text."""
        if end <= start:
            pos = int(self.starts[start]) if start < len(self.starts) else len(self.original)
            return pos, pos
        return int(self.starts[start]), int(self.ends[end - 1])

    def part(self, lo: int, hi: int) -> NormalisedText:
        """The folded view of ``original[lo:hi]``, with offsets relative to ``lo``.

        Valid when no evasion substitution straddles ``lo`` or ``hi`` (true at line breaks, which
        is how the engine joins fields).
        """
        # The array methods: the same search as np.searchsorted, without its Python-level dispatch.
        i = int(self.starts.searchsorted(lo, "left"))
        j = int(self.starts.searchsorted(hi, "left"))
        return NormalisedText(
            self.original[lo:hi], self.text[i:j], self.starts[i:j] - lo, self.ends[i:j] - lo
        )


def _is_latin_letter(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _fold_char(ch: str) -> str:
    """The 1:1 fold of one character (compatibility forms, case, diacritics); itself if none."""
    folded = unicodedata.normalize("NFKC", ch)
    if len(folded) != 1:
        return ch
    # Pinyin tone marks (zuì → zui) and other Latin diacritics.
    decomposed = unicodedata.normalize("NFKD", folded)
    if len(decomposed) > 1 and _is_latin_letter(decomposed[0]):
        folded = decomposed[0]
    return folded.lower()


def _read_pairs(path: Path) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = tuple(p.strip() for p in line.split("\t"))
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise ValueError(f"{path}:{lineno}: expected 'variant<TAB>canonical[<TAB>guard]'")
            rows.append(parts)
    return rows


def _opencc_char_table() -> dict[str, str]:
    """Traditional → simplified, one character to one character (offsets stay 1:1).

    Uses the character table that OpenCC ships; phrase-level conversion is not needed because rule
    terms are matched after folding and the first simplified candidate is the common reading.
    """
    import opencc  # opencc-python-reimplemented: ships OpenCC's dictionaries as text

    table: dict[str, str] = {}
    path = Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt"
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2 and len(parts[0]) == 1:
                first = parts[1].split(" ")[0]
                if len(first) == 1:
                    table[parts[0]] = first
    return table


def _cache_file() -> Path:
    """Where the built tables are kept between processes, keyed by everything they depend on."""
    import hashlib
    import os
    import sys

    import opencc

    digest = hashlib.sha256()
    digest.update(unicodedata.unidata_version.encode())
    digest.update(sys.version.encode())
    digest.update(lexicon_path("char_folds.tsv").read_bytes())
    digest.update((Path(opencc.__file__).parent / "dictionary" / "TSCharacters.txt").read_bytes())
    digest.update(Path(__file__).read_bytes())
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "listing-moderation"
    return base / f"fold-tables-{digest.hexdigest()[:16]}.npz"


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """The fold and noise look-up tables: loaded from the cache, or built (a fraction of a second) and cached."""
    import contextlib
    import os

    path = _cache_file()
    with contextlib.suppress(OSError, ValueError, KeyError), np.load(path) as data:
        return data["fold"], data["noise"]
    fold, noise = _build_tables()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, fold=fold, noise=noise)
        os.replace(tmp, path)
    return fold, noise


def _build_tables() -> tuple[np.ndarray, np.ndarray]:
    """Build the fold and noise look-up tables over every code point."""
    fold = np.arange(_MAX_CP, dtype=np.uint32)
    noise = np.zeros(_MAX_CP, dtype=bool)
    keep = set(CLAUSE_PUNCT) | set(_KEEP_SYMBOLS)
    for cp in range(_MAX_CP):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        cat = unicodedata.category(ch)
        if cat in ("Cn",):
            continue
        if ch in keep:
            continue
        compat = unicodedata.normalize("NFKC", ch)
        if len(compat) > 1 and any(c.isalnum() for c in compat):
            continue  # unit signs such as ㎡, ㎏, ℃ carry meaning ("120㎡"): keep them as they are
        if cat in ("Zs", "Zl", "Zp", "Cf", "Mn", "Me", "So", "Sk", "Co") or (cat == "Cc" and ch != "\n"):
            noise[cp] = True
            continue
        if cat in ("Pc", "Pd", "Po", "Pi", "Pf") and ch not in keep and ch not in _BETWEEN_DIGITS:
            folded = _fold_char(ch)
            if folded in keep or folded in _BETWEEN_DIGITS:
                fold[cp] = ord(folded)
            else:
                noise[cp] = True
            continue
        if cp < 0x80 and not ch.isalpha():
            continue
        folded = _fold_char(ch)
        if folded != ch:
            fold[cp] = ord(folded)
    for trad, simp in _opencc_char_table().items():
        fold[ord(trad)] = fold[ord(simp)]
    for variant, canonical, *_ in _read_pairs(lexicon_path("char_folds.tsv")):
        if len(variant) == 1 and len(canonical) == 1:
            fold[ord(variant)] = ord(canonical)
    # A folded character that is itself noise (e.g. a full-width space) is noise.
    noise |= noise[fold]
    return fold, noise


@dataclass(frozen=True, slots=True)
class _Evasion:
    variant: str
    canonical: str
    guard: str


@cache
def _evasions() -> tuple[ahocorasick_rs.AhoCorasick | None, list[_Evasion]]:
    entries: dict[str, _Evasion] = {}
    for row in _read_pairs(lexicon_path("evasions.tsv")):
        variant, canonical = row[0], row[1]
        guard = row[2] if len(row) > 2 else ""
        if guard not in ("", "cjk", "nodigit", "word"):
            raise ValueError(f"evasions.tsv: unknown guard {guard!r} for {variant!r}")
        entries[variant] = _Evasion(variant, canonical, guard)
    if not entries:
        return None, []
    ordered = list(entries.values())
    return ahocorasick_rs.AhoCorasick([e.variant for e in ordered]), ordered


def _is_cjk(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"


def _guard_ok(text: str, start: int, end: int, guard: str, runs: _LatinRuns) -> bool:
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if guard == "cjk":
        # Pinyin standing in for a character: a whole Latin run glued to Chinese text.
        if (before and before.isascii() and before.isalpha()) or (
            after and after.isascii() and after.isalpha()
        ):
            return False
        return _is_cjk(before) or _is_cjk(after)
    if guard == "nodigit":
        return not after.isdigit()
    if guard == "word":
        # A whole pinyin word (zuijia): not part of a longer Latin word, wherever it stands -- unless that
        # longer word is itself pinyin cut at a syllable boundary (zuijiahaoyong, zuijiazuijia).
        glued_before = bool(before and before.isascii() and before.isalnum())
        glued_after = bool(after and after.isascii() and after.isalnum())
        if not (glued_before or glued_after):
            return True
        return _in_pinyin_run(text, start, end, runs)
    return True


#: Longest Latin run judged as pinyin; longer runs keep the strict whole-word guard (bounded cost).
_MAX_PINYIN_RUN = 64
#: Interjection readings (嗯 n, 呣 m…) would let almost any letters pass as pinyin.
_NOT_SYLLABLES = frozenset({"n", "m", "ng", "hm", "hng"})


@cache
def _syllables() -> frozenset[str]:
    """Toneless pinyin syllables: every reading in the pinyin lexicon, interjections left out."""
    out: set[str] = set()
    for row in _read_pairs(lexicon_path("pinyin.tsv")):
        if len(row) > 1:
            out.update(row[1].split())
    return frozenset(out - _NOT_SYLLABLES)


class _LatinRuns:
    """The ASCII letter-and-digit runs of one folded text, found once (in C) when the first glued pinyin
    hit asks: a hostile run of a million letters holds as many hits, and walking the run for each one
    would be quadratic."""

    __slots__ = ("_spans", "_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._spans: list[tuple[int, int]] = []
        self._starts: list[int] | None = None

    def around(self, pos: int) -> tuple[int, int]:
        """The run that holds ``text[pos]`` (an ASCII letter or digit)."""
        if self._starts is None:
            self._spans = [m.span() for m in _ASCII_RUN.finditer(self.text)]
            self._starts = [lo for lo, _ in self._spans]
        return self._spans[bisect_right(self._starts, pos) - 1]


_ASCII_RUN = re.compile(r"[a-z0-9]+")


def _in_pinyin_run(text: str, start: int, end: int, runs: _LatinRuns) -> bool:
    """Whether the Latin run around ``text[start:end]`` is letters only (zuijia2024 is not) and splits
    into pinyin syllables on both sides of it."""
    lo, hi = runs.around(start)
    if hi - lo > _MAX_PINYIN_RUN or not text[lo:hi].isalpha():
        return False
    return _splits(text[lo:start]) and _splits(text[end:hi])


@lru_cache(maxsize=4096)  # bounded: a long-running server sees endless distinct runs
def _splits(letters: str) -> bool:
    """Whether ``letters`` is a sequence of pinyin syllables (the empty string is)."""
    syllables = _syllables()
    ok = [True] + [False] * len(letters)
    for i in range(len(letters)):
        if ok[i]:
            for j in range(i + 1, min(len(letters), i + 6) + 1):
                if letters[i:j] in syllables:
                    ok[j] = True
    return ok[-1]


def _apply_evasions(text: str, starts: np.ndarray, ends: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    automaton, entries = _evasions()
    if automaton is None:
        return text, starts, ends
    # Longest match wins; matches are taken left to right without overlap.
    runs = _LatinRuns(text)
    hits: list[tuple[int, int, _Evasion]] = []
    for idx, start, end in automaton.find_matches_as_indexes(text, overlapping=True):
        entry = entries[idx]
        if _guard_ok(text, start, end, entry.guard, runs):
            hits.append((start, end, entry))
    if not hits:
        return text, starts, ends
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    chosen: list[tuple[int, int, _Evasion]] = []
    last_end = -1
    for hit in hits:
        if hit[0] >= last_end:
            chosen.append(hit)
            last_end = hit[1]
    parts: list[str] = []
    new_starts: list[np.ndarray] = []
    new_ends: list[np.ndarray] = []
    pos = 0
    for start, end, entry in chosen:
        parts.append(text[pos:start])
        new_starts.append(starts[pos:start])
        new_ends.append(ends[pos:start])
        span_start, span_end = starts[start], ends[end - 1]
        parts.append(entry.canonical)
        new_starts.append(np.full(len(entry.canonical), span_start, dtype=starts.dtype))
        new_ends.append(np.full(len(entry.canonical), span_end, dtype=ends.dtype))
        pos = end
    parts.append(text[pos:])
    new_starts.append(starts[pos:])
    new_ends.append(ends[pos:])
    return "".join(parts), np.concatenate(new_starts), np.concatenate(new_ends)


def normalise(text: str) -> NormalisedText:
    """Fold ``text`` for matching and keep the map back to the original characters.

    Steps: compatibility folding (full-width, circled digits), lower case, traditional → simplified,
    removal of spacing, symbols, emoji and zero-width characters (``. - ~`` survive only between digits,
    as in 3.5 or 35-95; unit signs such as ㎡ and ℃ are kept), then the evasion lexicon (pinyin and homophone spellings of trigger words).
    """
    if not text:
        empty = np.zeros(0, dtype=np.int64)
        return NormalisedText(text, "", empty, empty)
    fold, noise = _tables()
    cps = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
    folded = fold[cps]
    drop = noise[cps]
    # ndarray.nonzero()[0] is np.flatnonzero of a 1-D array, without the Python-level wrappers.
    dots = _DIGIT_JOINERS[folded].nonzero()[0]  # . - ~ survive only between two digits
    if dots.size:
        inner = dots[(dots > 0) & (dots < len(folded) - 1)]
        drop[dots] = True
        drop[inner] = ~(_DIGITS[folded[inner - 1]] & _DIGITS[folded[inner + 1]])
    keep = (~drop).nonzero()[0]
    out = folded[keep]
    # Lone surrogates cannot be decoded from UTF-32; show them as the replacement character.
    norm = out.tobytes().decode("utf-32-le", errors="replace")
    norm, starts, ends = _apply_evasions(norm, keep, keep + 1)
    return NormalisedText(text, norm, starts, ends)


#: Characters folded in one pass by ``normalise_many`` at most; a longer text is folded on its own.
BATCH_CHARS = 1 << 18


def normalise_many(texts: list[str]) -> list[NormalisedText]:
    """``[normalise(t) for t in texts]``, with the numpy and automaton passes run once per batch.

    The texts are folded as one, joined by line breaks, and cut apart again (``NormalisedText.part``).
    That gives each text exactly what ``normalise`` gives it: every fold is per character; a line break
    is kept and is no digit, letter or Chinese character, so ``. - ~`` next to it and the evasion guards
    next to it answer as at a text's edge; and no evasion spelling holds a line break, so none straddles
    a seam. Each listing otherwise pays for a dozen small numpy calls of its own.
    """
    out: list[NormalisedText | None] = [None] * len(texts)
    for group in batch_groups(texts, BATCH_CHARS):
        _fold_group(texts, group, out)
    # Empty texts and texts longer than a batch, on their own.
    return [n if n is not None else normalise(t) for n, t in zip(out, texts, strict=True)]


def batch_groups(texts: list[str], limit: int) -> list[list[int]]:
    """The indices of the non-empty texts no longer than ``limit``, in runs of consecutive ones whose
    lengths, each with the line break that joins it to the next, add up to at most ``limit``: the texts
    that one batched pass (folding here, the rules' scan in ``RulesEngine._scan_many``) joins."""
    groups: list[list[int]] = []
    group: list[int] = []
    size = 0
    for i, text in enumerate(texts):
        n = len(text)
        if not n or n > limit:
            continue
        if size + n > limit:
            groups.append(group)
            group, size = [], 0
        group.append(i)
        size += n + 1
    if group:
        groups.append(group)
    return groups


def _fold_group(texts: list[str], group: list[int], out: list[NormalisedText | None]) -> None:
    """Fold ``texts[i]`` for each ``i`` of ``group`` as one text and put each one's part in ``out[i]``."""
    if len(group) == 1:
        out[group[0]] = normalise(texts[group[0]])
    elif group:
        whole = normalise("\n".join(texts[i] for i in group))
        # Each text's folded range (what ``part`` finds), for all of them in one search.
        bounds: list[int] = []
        pos = 0
        for i in group:
            bounds += (pos, pos + len(texts[i]))
            pos += len(texts[i]) + 1
        cuts = whole.starts.searchsorted(bounds, "left").tolist()
        text, starts, ends = whole.text, whole.starts, whole.ends
        for k, i in enumerate(group):
            lo, a, b = bounds[2 * k], cuts[2 * k], cuts[2 * k + 1]
            out[i] = NormalisedText(texts[i], text[a:b], starts[a:b] - lo, ends[a:b] - lo)


def fold_term(term: str) -> str:
    """Fold a rule term or phrase the same way listing text is folded (used when loading rules)."""
    return normalise(term).text
