"""Lawful wording: recognise text that a regulation itself permits or requires (rules/lawful_wording.yaml).

Why: the classifier scores mandatory warnings, approved health-food functions and listed cosmetic claims
as high as the violations they resemble, so on its own it would send them to review. The rules know
these lists; when the rules found nothing and recognised lawful wording accounts for nearly all of a
listing's text, the score is not acted on (``moderation/verdict.py``) and the result names the wording.
Text with anything else in it is left to the score: this never hides a claim the lists do not cover.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from moderation.paths import rules_dir
from moderation.schema import LawfulWordingInfo
from moderation.text.normalise import normalise

#: Characters that carry content: what the share of recognised wording is measured over.
_CONTENT = re.compile(r"[0-9a-z\u3400-\u9fff×○]")


@dataclass(frozen=True)
class LawfulSet:
    """One family of lawful wording with its sources and the categories it is lawful in."""

    id: str
    explain: str
    sources: tuple[str, ...]
    categories: frozenset[str] | None  # None: every category
    patterns: tuple[re.Pattern[str], ...]
    examples: dict[str, list[dict[str, str]]]

    def applies(self, category: str) -> bool:
        return self.categories is None or category in self.categories


class LawfulWording:
    """The lawful-wording sets of a rules folder, compiled once."""

    def __init__(self, sets: list[LawfulSet], min_share: float) -> None:
        self.sets = sets
        self.min_share = min_share

    @classmethod
    def load(cls, path: Path | None = None) -> LawfulWording:
        path = path or rules_dir() / "lawful_wording.yaml"
        if not path.exists():
            return cls([], 1.0)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        sources = set(data.get("sources", {}))
        vocab = {name: _alternation(words) for name, words in data.get("vocab", {}).items()}
        sets = []
        for raw in data.get("sets", []):
            missing = [s for s in raw.get("sources", []) if s not in sources]
            if not raw.get("sources") or missing:
                raise ValueError(
                    f"lawful wording set {raw.get('id')!r}: unknown or missing sources {missing}"
                )
            cats = raw.get("categories", "all")
            parts = [_expand(p, vocab) for p in raw["patterns"]]
            sets.append(
                LawfulSet(
                    id=raw["id"],
                    explain=raw["explain"],
                    sources=tuple(raw["sources"]),
                    categories=None if cats == "all" else frozenset(cats),
                    patterns=tuple(re.compile(p) for p in parts),
                    examples=raw.get("examples", {}),
                )
            )
        return cls(sets, float(data.get("min_share", 0.85)))

    def recognise(self, text: str, category: str) -> LawfulWordingInfo | None:
        """What the result reports (sets, explanation, share) when the sets lawful in ``category`` cover
        at least ``min_share`` of the text's letters and digits, else None. ``text`` is raw listing text
        (normalised here)."""
        folded = normalise(text).text
        content = [m.start() for m in _CONTENT.finditer(folded)]
        if not content:
            return None
        covered = bytearray(len(folded))
        used: list[LawfulSet] = []
        for lawful in self.sets:
            if not lawful.applies(category):
                continue
            hit = False
            for pattern in lawful.patterns:  # each on its own: one pattern's match must not hide another's
                for m in pattern.finditer(folded):
                    if m.end() > m.start():
                        covered[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
                        hit = True
            if hit:
                used.append(lawful)
        if not used:
            return None
        share = sum(covered[i] for i in content) / len(content)
        if share < self.min_share:
            return None
        return LawfulWordingInfo(
            sets=[u.id for u in used], explain="；".join(u.explain for u in used), share=round(share, 3)
        )


@functools.lru_cache(maxsize=4)
def lawful_wording(path: Path | None = None) -> LawfulWording:
    """The lawful-wording sets of the rules folder, loaded once per process."""
    return LawfulWording.load(path)


def _alternation(words: list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


def _expand(pattern: str, vocab: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in vocab:
            raise ValueError(f"lawful wording: unknown vocabulary {{{name}}} in {pattern!r}")
        return f"(?:{vocab[name]})"

    return re.sub(r"\{([a-z_]+)\}", sub, pattern)
