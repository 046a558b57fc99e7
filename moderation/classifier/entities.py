"""Entity tags before the model reads a text: the names of well-known people and of other
marketplaces, each character replaced by a tag character of its kind.

Why: a model of a few MB learns wording, not who is famous. ``刘仁娜海报`` and ``左岸潇同款`` sell with a
real person's name (广告法第三十三条) and ``唯品会 … 京东`` baits another platform's searches, but to the
model a name it never saw is a few rare characters, so it ranked such titles with lawful ones. The
rules already keep those names in cited lexicons (``rules/lexicons/people.txt``, ``marketplaces.txt``);
tagged, every name reads the same to the model (``\\ue000\\ue000\\ue000同款``), so what it learns from
one name holds for all of them, including names added to the lexicon after training.

The names are copied into the model directory (``entities.tsv``) when it is trained, so a checkpoint
reads texts the same way whatever the rules folder holds later; a checkpoint tags only when its
calibration.json names that file (``"entities": "entities.tsv"``), so older or foreign checkpoints
score exactly as before. Tags replace characters one for one: offsets into the tagged text are
offsets into the original (explanations rely on that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import ahocorasick_rs

ENTITY_FILE = "entities.tsv"
#: The tag character of each kind: Unicode private use, which no folded listing text keeps (see
#: ``EntityTagger.tag``).
TAGS: dict[str, str] = {"person": "\ue000", "marketplace": "\ue001", "brand": "\ue002"}
#: The rules lexicon each kind is read from.
LEXICONS: dict[str, str] = {"person": "people", "marketplace": "marketplaces", "brand": "brands"}
#: The kinds a model is trained with unless told otherwise.
DEFAULT_KINDS: tuple[str, ...] = ("person", "marketplace")
_TAG_CHARS = frozenset(TAGS.values())
_LOWER = str.maketrans({chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)})
#: A listing's own private-use characters become spaces, so that only tags read as tags.
_OWN_TAGS = str.maketrans(dict.fromkeys(_TAG_CHARS, " "))


def lexicon_entities(lexicons_dir: Path, kinds: Sequence[str] = DEFAULT_KINDS) -> list[tuple[str, str]]:
    """(word, kind) for every name of ``kinds``, from the rules' lexicons (words folded as the rules
    fold them: lower case, simplified characters); a word of two kinds keeps the first."""
    from moderation.rules.pack import Lexicons

    lexicons = Lexicons(lexicons_dir)
    out: dict[str, str] = {}
    for kind in kinds:
        for word in lexicons.words(LEXICONS[kind], f"entities:{kind}"):
            if len(word) >= 2:  # a one-character "name" would tag ordinary text
                out.setdefault(word.translate(_LOWER), kind)
    return sorted(out.items())


def write_entities(path: Path, entries: Iterable[tuple[str, str]]) -> None:
    lines = [f"{word}\t{kind}" for word, kind in entries]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_entities(path: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, _, kind = line.partition("\t")
        if not word or kind not in TAGS:
            raise ValueError(f"{path}: bad entity line {line!r} (want word<TAB>{'|'.join(TAGS)})")
        out.append((word, kind))
    return out


def kinds_of(model_dir: Path, file_name: str) -> tuple[str, ...]:
    """The kinds of names a checkpoint was tagged with (``DEFAULT_KINDS`` for an untagged one)."""
    if not file_name:
        return DEFAULT_KINDS
    return tuple(dict.fromkeys(kind for _, kind in read_entities(Path(model_dir) / file_name)))


class EntityTagger:
    """Replaces every name of ``entries`` in a text (leftmost, longest first; Latin names only as whole
    words) by its kind's tag character, one for one."""

    def __init__(self, entries: Sequence[tuple[str, str]]) -> None:
        self.entries = tuple(entries)
        self._tags = [TAGS[kind] for _, kind in self.entries]
        self._edges = [(_latin(word[0]), _latin(word[-1])) for word, _ in self.entries]
        self._ac = (
            ahocorasick_rs.AhoCorasick(
                [word for word, _ in self.entries], matchkind=ahocorasick_rs.MatchKind.LeftmostLongest
            )
            if self.entries
            else None
        )

    def tag(self, text: str) -> str:
        text = text.translate(_OWN_TAGS)
        if self._ac is None or not text:
            return text
        lowered = text.translate(_LOWER)
        parts: list[str] = []
        pos = 0
        for idx, start, end in self._ac.find_matches_as_indexes(lowered):
            head, tail = self._edges[idx]
            if (head and start > 0 and _latin(lowered[start - 1])) or (
                tail and end < len(lowered) and _latin(lowered[end])
            ):
                continue  # a Latin name inside a longer Latin word or number
            parts.append(text[pos:start])
            parts.append(self._tags[idx] * (end - start))
            pos = end
        if not parts:
            return text
        parts.append(text[pos:])
        return "".join(parts)

    def tag_all(self, texts: Iterable[str]) -> list[str]:
        return [self.tag(t) for t in texts]


def load_tagger(model_dir: Path, file_name: str) -> EntityTagger:
    """The tagger a checkpoint was trained with (its calibration.json's ``entities``)."""
    return EntityTagger(read_entities(Path(model_dir) / file_name))


def _latin(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()
