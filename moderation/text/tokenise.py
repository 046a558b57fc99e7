"""jieba tokenisation, used only where a candidate term was found.

Word boundaries decide whether 第一 in 第一次 is a ranking (it is not) or whether 最高 in 最高人民法院 is a
superlative. Tokenising every listing in full costs more than everything else together (jieba's
throughput: docs/platform-rules.md, "Speed"), so the engine first scans for candidate terms and
tokenises only the *block* around each one. jieba itself splits input into blocks of Han/alphanumeric
characters (``re_han_default``) and segments each block independently, so segmenting the block alone
yields exactly the tokens that full-text segmentation yields there; ``tests/test_tokenise.py`` checks
that property.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from bisect import bisect_right, insort
from collections.abc import Iterable
from functools import lru_cache

import jieba
from jieba import finalseg

jieba.setLogLevel(logging.WARNING)

#: jieba's own block pattern (jieba.re_han_default); kept identical on purpose.
BLOCK_RE = re.compile(r"[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+")
#: Blocks longer than this are segmented in windows around the positions asked about, not whole: a
#: hostile listing folds into one block of a million characters, and jieba on it costs seconds. Real
#: blocks (a title, a clause) are far shorter, so for them nothing changes.
LONG_BLOCK = 1024
#: Window size and the margin segmented on each side of it; boundaries are trusted only inside the window.
_WINDOW = 256
_MARGIN = 48


class Tokeniser:
    """A private jieba tokenizer with the rule terms in its dictionary, plus a block cache."""

    def __init__(self, user_words: Iterable[str] = ()) -> None:
        self._jieba = jieba.Tokenizer()
        self._words = sorted({w for w in user_words if w and BLOCK_RE.fullmatch(w)})
        self._ready = False
        self._lock = threading.Lock()
        self._cut_block = lru_cache(maxsize=65536)(self._cut_block_uncached)
        self._cut_partial = lru_cache(maxsize=65536)(self._cut_partial_uncached)
        self._run_ends = lru_cache(maxsize=65536)(self._run_ends_uncached)
        #: Per entry of the prefix dictionary: log(frequency) - log(total), as jieba's ``calc`` computes
        #: it, or +inf for a prefix that is no word (bounded by the dictionary: nothing else is kept).
        self._weights: dict[str, float] = {}
        self._logtotal = 0.0

    def _ensure_ready(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            self._jieba.initialize()
            for word in self._words:
                # Only add words jieba does not know: re-weighting known words (第一, 最高) would
                # change how everyday phrases such as 第一次 are cut.
                if self._jieba.FREQ.get(word, 0) == 0:
                    self._jieba.add_word(word)
            self._logtotal = math.log(self._jieba.total)
            self._ready = True

    def _cut_block_uncached(self, block: str) -> tuple[int, ...]:
        """Token end offsets within one block.

        ``Tokenizer.cut(text, HMM=True)`` splits its text into blocks by ``re_han_default`` and cuts
        each with its DAG-and-HMM segmenter (``__cut_DAG``); a block (or a window of one) is a single
        such block, so that segmenter's cut is made here, as ``cut`` would (``_route``, then the same
        grouping of single characters and the same HMM for unknown runs)."""
        ends, runs = self._cut_partial_uncached(block)
        if not runs:
            return ends
        inner = [lo + e for lo, hi in runs for e in self._run_ends(block[lo:hi])]
        return tuple(sorted({*ends, *inner}))

    def _cut_partial_uncached(self, block: str) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        """``_cut_block_uncached`` without the HMM: the token ends, where each run of single characters
        that the HMM would cut (``_run_ends``) counts as one token, and those runs (start, end).

        Word boundaries are asked at a few positions of a block; a run is cut only when one falls in it."""
        self._ensure_ready()  # the dictionary and log(total) the route reads
        freq = self._jieba.FREQ
        route = self._route(block)
        ends: list[int] = []
        runs: list[tuple[int, int]] = []
        n = len(block)
        x = 0
        run = 0  # start of the current run of one-character words (x when there is none)
        while x < n:
            y = route[x] + 1
            if y - x == 1:
                x = y
                continue
            if run < x:
                self._cut_run(block, run, x, freq, ends, runs)
            ends.append(y)
            x = run = y
        if run < n:
            self._cut_run(block, run, n, freq, ends, runs)
        return tuple(ends), tuple(runs)

    @staticmethod
    def _cut_run(
        block: str, lo: int, hi: int, freq: dict[str, int], ends: list[int], runs: list[tuple[int, int]]
    ) -> None:
        """The tokens of a run of one-character words, as ``__cut_DAG`` yields them: one character
        alone, a known word character by character; anything else is cut by the HMM (``finalseg``),
        left to ``_run_ends``: the run is noted and only its end is a token end here."""
        if hi - lo == 1 or freq.get(block[lo:hi]):
            ends.extend(range(lo + 1, hi + 1))
            return
        runs.append((lo, hi))
        ends.append(hi)

    @staticmethod
    def _run_ends_uncached(buf: str) -> tuple[int, ...]:
        """Token end offsets of a run of single characters cut by jieba's HMM (``finalseg.cut``)."""
        ends: list[int] = []
        pos = 0
        for token in finalseg.cut(buf):
            pos += len(token)
            ends.append(pos)
        return tuple(ends)

    def _route(self, sentence: str) -> list[int]:
        """For each position, where the best word starting there ends (inclusive): jieba's ``get_DAG``
        and ``calc`` in one backward pass, with each dictionary entry's log frequency looked up once per
        process.

        The same arithmetic as ``calc``: ``(log(freq or 1) - logtotal) + best[x + 1]`` for each word
        end ``x`` in increasing order, the largest sum winning and a tie going to the later end (what
        ``max`` over ``(sum, x)`` pairs picks). As in ``get_DAG``, a fragment extends while it is an
        entry of the prefix dictionary, and counts as a word when its frequency is not 0."""
        freq = self._jieba.FREQ
        weights = self._weights
        logtotal = self._logtotal
        inf = math.inf
        n = len(sentence)
        best = [0.0] * (n + 1)
        route = [0] * n
        for k in range(n - 1, -1, -1):
            top = -inf
            end = -1
            i = k + 1  # the fragment is sentence[k:i]
            frag = sentence[k]
            while True:
                w = weights.get(frag)
                if w is None:
                    f = freq.get(frag)
                    if f is None:
                        break
                    # A prefix only (frequency 0) is kept as +inf: no word has that weight.
                    w = weights[frag] = math.log(f) - logtotal if f else inf
                if w != inf:
                    v = w + best[i]
                    if v >= top:
                        top, end = v, i - 1
                if i >= n:
                    break
                i += 1
                frag = sentence[k:i]
            if end < 0:  # no word starts here: the character alone, at frequency 1 (log 0)
                top, end = (math.log(freq.get(sentence[k]) or 1) - logtotal) + best[k + 1], k
            best[k] = top
            route[k] = end
        return route

    def clear_cache(self) -> None:
        """Forget cached block segmentations (benchmarks use it to measure cold work)."""
        self._cut_block.cache_clear()
        self._cut_partial.cache_clear()
        self._run_ends.cache_clear()

    def cut(self, text: str) -> list[str]:
        """Full-text segmentation (the reference that block segmentation must equal)."""
        self._ensure_ready()
        return list(self._jieba.cut(text, HMM=True))

    def boundaries(self, text: str) -> TextBoundaries:
        """A lazy view of the token boundaries of ``text``."""
        self._ensure_ready()
        return TextBoundaries(self, text)


class TextBoundaries:
    """Token boundaries of one text, computed block by block on demand."""

    def __init__(self, tokeniser: Tokeniser, text: str) -> None:
        self._tok = tokeniser
        self._text = text
        self._reversed: str | None = None
        #: Blocks found so far (sorted, disjoint), so a long block is measured once however many
        #: positions in it are asked about.
        self._blocks: list[tuple[int, int]] = []
        self._block_starts: list[int] = []
        #: Per block (or window of a long one): its boundaries as a set and in order (for ``token_at``),
        #: and the runs of single characters whose HMM cut is not in them yet (``_cut_partial``).
        self._bounds: dict[int, tuple[set[int], list[int], list[tuple[int, int]]]] = {}

    def _block_at(self, pos: int) -> tuple[int, int] | None:
        """The block (maximal run of ``BLOCK_RE`` characters, as ``BLOCK_RE.finditer`` finds them)
        around ``pos``, measured from ``pos`` both ways instead of listing every block of the text."""
        i = bisect_right(self._block_starts, pos) - 1
        if i >= 0:
            start, end = self._blocks[i]
            if pos < end:
                return start, end
        text = self._text
        ahead = BLOCK_RE.match(text, pos) if 0 <= pos < len(text) else None
        if ahead is None:
            return None
        if self._reversed is None:
            self._reversed = text[::-1]
        behind = BLOCK_RE.match(self._reversed, len(text) - pos)
        start = pos - (behind.end() - behind.start()) if behind is not None else pos
        block = (start, ahead.end())
        self._blocks.insert(i + 1, block)
        self._block_starts.insert(i + 1, start)
        return block

    def _block_bounds(self, block: tuple[int, int], pos: int) -> tuple[set[int], list[int]]:
        """The token boundaries of ``block`` (or of the window of a long one) as a set and in order,
        complete around ``pos``: a run of single characters that the HMM cuts is cut when ``pos`` is
        in it (elsewhere only its edges are boundaries, which they are in any case)."""
        start, end = block
        if end - start > LONG_BLOCK:
            # Segment only the window around pos (plus a margin that lets jieba settle), keep the
            # boundaries inside the window, and always count the window's own edges.
            w_lo = start + (pos - start) // _WINDOW * _WINDOW
            w_hi = min(end, w_lo + _WINDOW)
            start, end = max(start, w_lo - _MARGIN), min(end, w_hi + _MARGIN)
            key = -w_lo - 1
            cached = self._bounds.get(key)
            if cached is None:
                ends = self._tok._cut_block(self._text[start:end])
                inner = {b for b in (start, *(start + e for e in ends)) if w_lo <= b <= w_hi}
                inner |= {w_lo, w_hi}
                cached = self._bounds[key] = (inner, sorted(inner), [])
            return cached[0], cached[1]
        cached = self._bounds.get(start)
        if cached is None:
            ends, runs = self._tok._cut_partial(self._text[start:end])
            ordered = [start, *(start + e for e in ends)]
            cached = self._bounds[start] = (
                set(ordered),
                ordered,
                [(start + lo, start + hi) for lo, hi in runs],
            )
        bounds, ordered, pending = cached
        if pending:
            for k, (lo, hi) in enumerate(pending):
                if lo <= pos < hi:
                    for e in self._tok._run_ends(self._text[lo:hi]):
                        if lo + e not in bounds:
                            bounds.add(lo + e)
                            insort(ordered, lo + e)
                    del pending[k]
                    break
        return bounds, ordered

    def is_boundary(self, pos: int) -> bool:
        """True when a token starts or ends at ``pos`` (text edges and non-block characters count)."""
        if pos <= 0 or pos >= len(self._text):
            return True
        block = self._block_at(pos)
        if block is None or block[0] == pos:
            return True
        return pos in self._block_bounds(block, pos)[0]

    def token_at(self, pos: int) -> tuple[int, int] | None:
        """The token containing position ``pos``, as a span of the text."""
        block = self._block_at(pos)
        if block is None:
            return None
        bounds = self._block_bounds(block, pos)[1]
        i = bisect_right(bounds, pos) - 1
        if i + 1 >= len(bounds):
            return None
        return bounds[i], bounds[i + 1]
