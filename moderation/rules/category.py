"""Category inference: which rules apply when a listing arrives as ``general``.

Marketplace feeds mostly send ``general``, so the food-label, cosmetics, tobacco and drug rules would
never run on a title that says 面霜, 电子烟 or 胶囊. Two pieces of evidence decide instead:
- product-type nouns (``rules/lexicons/category_nouns.txt``, each list with its source): strong and
  explainable, for the categories that are rare in feeds;
- a naive Bayes model over character bigrams (``models/category/``), trained by
  ``scripts/train_category.py`` on the development half of the blind-labelled real titles and cases;
  bigrams need no segmentation, so inference costs no jieba.
The inferred category replaces ``general`` only when the model is confident, and more so for the
categories that switch general rules off (a drug is exempt from the non-drug medical-claim rules, so a
wrong ``drug`` would hide violations). The result names the category, its probability and the words
that decided it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import cast

import ahocorasick_rs
import numpy as np

from moderation.rules.pack import Lexicons

#: Added to a category's log score for each of its product nouns in the text (a noun is near-certain).
NOUN_BONUS = 6.0
#: Probability needed to replace ``general``; categories that switch rules off need more.
MIN_CONFIDENCE = 0.7
STRICT_CONFIDENCE = 0.9
STRICT = frozenset({"drug", "medical_device", "medical_service", "health_food", "finance", "education"})
_SEGMENTS = re.compile(r"[\u4e00-\u9fff]+|[a-z]{3,}")
#: The Latin words of ``features``: maximal runs of three or more letters (no Chinese character is one).
_LATIN_WORDS = re.compile(r"[a-z]{3,}")
#: Fewer texts than this are looked up one by one (``CategoryModel.indices_many``).
_FEW_TEXTS = 8


@dataclass(frozen=True, slots=True)
class CategoryGuess:
    category: str
    confidence: float
    evidence: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "category": self.category,
            "confidence": round(self.confidence, 3),
            "evidence": list(self.evidence),
        }


def _is_han_pair(word: str) -> bool:
    return len(word) == 2 and all("\u4e00" <= ch <= "\u9fff" for ch in word)


def features(folded: str) -> list[str]:
    """Character bigrams of the Chinese runs, and whole Latin words of three letters or more."""
    out: list[str] = []
    for seg in _SEGMENTS.findall(folded):
        if seg.isascii():
            out.append(seg)
        else:
            out.extend(map(str.__add__, seg, seg[1:]))  # seg[i:i + 2] for each i, in order
    return out


class CategoryModel:
    """The bigram naive Bayes model: log prior and per-feature log likelihoods per category."""

    def __init__(self, categories: list[str], prior: np.ndarray, vocab: dict[str, int], weights: np.ndarray):
        words = sorted(vocab)
        if [vocab[w] for w in words] != list(range(len(words))):
            # Indices in the features' sort order, so that ``scores`` sorts small integers, not strings.
            weights = weights[[vocab[w] for w in words]]
            vocab = {w: i for i, w in enumerate(words)}
        self.categories = categories
        self.prior = prior
        self.vocab = vocab
        self.words = words  # index → feature, for explanations
        self.weights = weights
        #: The Chinese bigrams of the vocabulary as integer codes (first code point << 21 | second),
        #: sorted, and their indices: ``indices_many`` looks a batch's bigrams up in one search.
        bigrams = [(ord(w[0]) << 21 | ord(w[1]), i) for w, i in vocab.items() if _is_han_pair(w)]
        bigrams.sort()
        self._bigram_codes = np.array([c for c, _ in bigrams], dtype=np.int64)
        self._bigram_ids = np.array([i for _, i in bigrams], dtype=np.int64)

    @classmethod
    def load(cls, directory: Path) -> CategoryModel:
        meta = json.loads((directory / "model.json").read_text(encoding="utf-8"))
        arrays = np.load(directory / "weights.npz")
        vocab = {w: i for i, w in enumerate(meta["vocab"])}
        return cls(
            meta["categories"],
            arrays["prior"].astype(np.float64),
            vocab,
            arrays["weights"].astype(np.float32),
        )

    def save(self, directory: Path, info: dict[str, object]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {**info, "categories": self.categories, "vocab": self.words}
        (directory / "model.json").write_text(json.dumps(meta, ensure_ascii=False) + "\n", encoding="utf-8")
        np.savez_compressed(
            directory / "weights.npz", prior=self.prior, weights=self.weights.astype(np.float16)
        )

    def indices(self, feats: list[str]) -> list[int]:
        """The known features' indices, in order (the order of the float32 sum in ``infer_many``)."""
        # In the features' sort order (the indices'), not in a set's order: the order decides the
        # float32 sum and ties among the evidence, and a set's order of strings changes with the
        # process's string hashing (two runs could disagree).
        known = set(map(self.vocab.get, feats))
        known.discard(None)
        return sorted(cast("set[int]", known))

    def indices_many(self, texts: list[str]) -> tuple[np.ndarray, list[int]]:
        """``indices(features(t))`` for each of ``texts``, as one array of all of them in turn and each
        one's length: the Chinese bigrams of all texts are coded and looked up in one numpy pass (a
        bigram of two Chinese characters never spans a line break, which joins the texts), the rare
        Latin words in the vocabulary, and each text's known indices sorted and made unique together."""
        if len(texts) < _FEW_TEXTS:
            # For a text or two the numpy calls cost more than the loop they replace.
            idxs = [self.indices(features(t)) for t in texts]
            return np.array([x for idx in idxs for x in idx], dtype=np.int64), [len(idx) for idx in idxs]
        n_vocab = len(self.words)
        joined = "\n".join(texts)
        cps = np.frombuffer(joined.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32).astype(
            np.int64
        )
        han = (cps >= 0x4E00) & (cps <= 0x9FFF)
        at = (han[:-1] & han[1:]).nonzero()[0]
        codes = (cps[at] << 21) | cps[at + 1]
        table = self._bigram_codes
        keys = np.empty(0, dtype=np.int64)
        if len(table) and len(codes):
            pos = table.searchsorted(codes)
            pos[pos >= len(table)] = 0
            known = (table[pos] == codes).nonzero()[0]
            # Which text each known bigram is in (by where each text starts in the joined one).
            starts = np.fromiter(accumulate((len(t) + 1 for t in texts[:-1]), initial=0), dtype=np.int64)
            owner = starts.searchsorted(at[known], "right") - 1
            keys = owner * n_vocab + self._bigram_ids[pos[known]]
        extra: list[int] = []
        vocab = self.vocab
        for k, text in enumerate(texts):
            for word in _LATIN_WORDS.findall(text):
                i = vocab.get(word)
                if i is not None:
                    extra.append(k * n_vocab + i)
        if extra:
            keys = np.concatenate([keys, np.array(extra, dtype=np.int64)])
        keys = np.unique(keys)
        owners = keys // n_vocab
        lengths = np.bincount(owners, minlength=len(texts)).tolist() if len(keys) else [0] * len(texts)
        return keys - owners * n_vocab, lengths


class CategoryInferrer:
    def __init__(self, model: CategoryModel | None, nouns: dict[str, str]) -> None:
        self.model = model
        self.nouns = nouns
        # Product nouns as a regular expression's longest-first alternation would find them: leftmost,
        # the longest at that position, not overlapping; an Aho-Corasick automaton finds exactly those
        # (LeftmostLongest) in one pass instead of trying every noun at every position.
        self._noun_keys = sorted(nouns, key=len, reverse=True)
        self._noun_ac = (
            ahocorasick_rs.AhoCorasick(self._noun_keys, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest)
            if nouns
            else None
        )
        self._nouns_span_lines = any("\n" in n for n in nouns)
        self._indexed: tuple[CategoryModel, dict[str, int]] | None = None

    @classmethod
    def load(cls, lexicons: Lexicons, model_dir: Path) -> CategoryInferrer:
        rows = lexicons.rows("category_nouns", "category inference")
        nouns = {row[0]: row[1] for row in rows if len(row) > 1}
        model = CategoryModel.load(model_dir) if (model_dir / "model.json").is_file() else None
        return cls(model, nouns)

    def _category_index(self, model: CategoryModel) -> dict[str, int]:
        """Each category's position in ``model.categories`` (the first, as ``list.index``), kept for
        the model in use (scripts/train_category.py swaps it)."""
        if self._indexed is None or self._indexed[0] is not model:
            index: dict[str, int] = {}
            for i, category in enumerate(model.categories):
                index.setdefault(category, i)
            self._indexed = (model, index)
        return self._indexed[1]

    def _nouns_many(self, texts: list[str]) -> list[list[str]]:
        """The product nouns found in each text, from one scan of them joined by line breaks: no noun
        holds a line break, so the leftmost-longest matches of the joined text are each text's own."""
        out: list[list[str]] = [[] for _ in texts]
        noun_ac = self._noun_ac
        if noun_ac is None or not texts:
            return out
        keys = self._noun_keys
        if self._nouns_span_lines or len(texts) == 1:
            return [[keys[k] for k, _, _ in noun_ac.find_matches_as_indexes(t)] for t in texts]
        ends = list(accumulate(len(t) + 1 for t in texts))
        k = 0
        for key, start, _ in noun_ac.find_matches_as_indexes("\n".join(texts)):
            while start >= ends[k]:
                k += 1
            out[k].append(keys[key])
        return out

    def infer(self, folded: str) -> CategoryGuess | None:
        """The category of a ``general`` listing's folded text, when the evidence is strong enough."""
        return self.infer_many([folded])[0]

    def infer_many(self, texts: list[str]) -> list[CategoryGuess | None]:
        """``infer`` for each text, with the model's arithmetic done once for all of them.

        The same floating-point operations in the same order as one text at a time: each text's feature
        rows summed in index order (``np.add.reduceat`` sums a segment row by row, as ``np.add.reduce``
        over axis 0 does), the noun bonuses added one by one, and the softmax taken row by row."""
        found_all = self._nouns_many(texts)
        if self.model is None:
            out: list[CategoryGuess | None] = []
            for found in found_all:
                cats = {self.nouns[n] for n in found}
                guess = (
                    CategoryGuess(cats.pop(), 1.0, tuple(dict.fromkeys(found))) if len(cats) == 1 else None
                )
                out.append(guess)
            return out
        model = self.model
        flat, lengths = model.indices_many(texts)
        total = np.empty((len(texts), len(model.prior)), dtype=np.float64)
        total[:] = model.prior
        used = [i for i, n in enumerate(lengths) if n]
        if used:
            offsets = list(accumulate((lengths[i] for i in used[:-1]), initial=0))
            total[used] = model.prior + np.add.reduceat(model.weights[flat], offsets, axis=0)
        ends = list(accumulate(lengths))
        index = self._category_index(model)
        for row, found in zip(total, found_all, strict=True):
            for noun in found:
                i = index.get(self.nouns[noun])
                if i is not None:
                    row[i] += NOUN_BONUS
        probs = np.exp(total - np.maximum.reduce(total, axis=1)[:, None])
        probs /= np.add.reduce(probs, axis=1)[:, None]
        bests = probs.argmax(axis=1).tolist()
        out = []
        for k, best in enumerate(bests):
            category, confidence = model.categories[best], float(probs[k, best])
            need = STRICT_CONFIDENCE if category in STRICT else MIN_CONFIDENCE
            if category == "general" or confidence < need:
                out.append(None)
                continue
            idx = flat[ends[k] - lengths[k] : ends[k]].tolist()
            evidence = [n for n in dict.fromkeys(found_all[k]) if self.nouns[n] == category]
            if not evidence and idx:
                gen = model.categories.index("general")
                lift = model.weights[idx, best] - model.weights[idx, gen]
                evidence = [model.words[idx[i]] for i in np.argsort(-lift, kind="stable")[:3]]
            out.append(CategoryGuess(category, confidence, tuple(evidence)))
        return out
