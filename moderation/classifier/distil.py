"""Unlabelled corpus lines labelled by the rules engine: training material for the classifier.

Why: the real labelled lines hold a few hundred violations among thousands of lawful lines, and the
generated listings put claims into templates, so the model has seen few violations *in real wording*.
The unlabelled corpora (search queries, reviews, app descriptions) hold far more real text, in which
the rules find violations with a precision measured on the labelled sets (docs/real-eval.md). Their
verdicts, used as labels, teach the model what the rules see in the words real sellers and buyers use
(weak supervision, or distillation of the rules into the model); the real labels still decide the
model's selection, calibration and threshold, so a rule's false alarms cannot set the bar.

Only lines that no real set holds are used: never a real test item or its near duplicate, never a
line a person has labelled (those train with the person's label).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import listing_text
from .data import Example
from .synth import load_corpora

if TYPE_CHECKING:
    from moderation.checker import Checker

#: Corpora read; titles are absent because every shared title already has a person's label.
RULE_SOURCES = ("queries", "reviews", "apps")
#: Lines are cut like the weak lawful lines of ``synth.build_dataset``.
MAX_CHARS = 300
_BATCH = 2048


@dataclass(frozen=True)
class RuleLabel:
    """What the rules said about one corpus line."""

    text: str
    source: str
    flagged: bool
    family: str
    category: str


def label_lines(
    lines: Iterable[tuple[str, str]], checker: Checker, progress: Callable[[int], None] | None = None
) -> list[RuleLabel]:
    """The rules' verdict on each (text, source) line, sent as a ``general`` title as the audit sends
    a bare line; ``flagged`` means review or block, as in the real-set reports; ``category`` is the one
    the check inferred, which is the tag the checker gives the model for such a listing."""
    from moderation.schema import Listing

    out: list[RuleLabel] = []
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        listings = [Listing(id=str(i), title=t, category="general") for i, (t, _) in enumerate(batch)]
        results = checker.check_many(listings)
        for (text, source), res in zip(batch, results, strict=True):
            found = [f for f in res.findings if f.action != "pass"]
            inferred = res.category_inferred
            out.append(
                RuleLabel(
                    text=text,
                    source=source,
                    flagged=res.verdict in ("review", "block"),
                    family=found[0].family if found else "",
                    category=inferred.category if inferred is not None else "general",
                )
            )
        batch.clear()
        if progress is not None:
            progress(len(out))

    for item in lines:
        batch.append(item)
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return out


def rule_labelled_examples(
    corpora_dir: Path,
    *,
    n_lawful: int,
    max_flagged: int,
    flagged_repeat: int = 1,
    seed: int = 20240601,
    exclude: Callable[[str], bool] | None = None,
    checker: Checker | None = None,
    sources: Iterable[str] = RULE_SOURCES,
) -> tuple[list[Example], dict[str, dict[str, int]]]:
    """Training examples from the corpora as the rules label them: every flagged line (at most
    ``max_flagged``, drawn with ``seed``; each ``flagged_repeat`` times) and ``n_lawful`` unflagged
    lines drawn with the same seed; each tagged with the category the rules infer, as the model sees a
    ``general`` listing. Returns the examples and, per source, how many lines were read and flagged.

    ``exclude``: lines never to use; by default every line a real set holds (``real_set_line``)."""
    unknown = sorted(set(sources) - set(RULE_SOURCES))
    if unknown:
        raise ValueError(
            f"unknown corpus {unknown}: the rule-labelled lines come from {', '.join(RULE_SOURCES)}"
        )
    if exclude is None:
        exclude = real_set_line
    if checker is None:
        from moderation.checker import Checker

        checker = Checker(classifier=False)
    corpora = load_corpora(corpora_dir)
    seen: set[str] = set()
    lines: list[tuple[str, str]] = []
    for source in sources:
        for text, _cat in corpora.get(source, []):
            t = text.strip()[:MAX_CHARS]
            if not t or t in seen or exclude(t):
                continue
            seen.add(t)
            lines.append((t, source))
    labels = label_lines(lines, checker)
    stats: dict[str, dict[str, int]] = {}
    for lab in labels:
        s = stats.setdefault(lab.source, {"lines": 0, "flagged": 0})
        s["lines"] += 1
        s["flagged"] += lab.flagged
    rng = random.Random(f"{seed}:rule-labels")
    flagged = [lab for lab in labels if lab.flagged]
    lawful = [lab for lab in labels if not lab.flagged]
    rng.shuffle(flagged)
    rng.shuffle(lawful)
    out: list[Example] = []
    for lab in flagged[:max_flagged]:
        ex = _example(lab, 1)
        out.extend([ex] * flagged_repeat)
    out.extend(_example(lab, 0) for lab in lawful[:n_lawful])
    return out, stats


def real_set_line(text: str) -> bool:
    """True for a line that a real set holds: a real test item or its near duplicate (never trained on),
    or a line a person labelled (it trains with the person's label, not the rules')."""
    from .realdata import is_held_out, labelled_texts

    return text[:MAX_CHARS] in labelled_texts(MAX_CHARS) or is_held_out(text)


def _example(lab: RuleLabel, label: int) -> Example:
    return Example(
        text=listing_text(lab.text, category=lab.category),
        label=label,
        family=(lab.family or "other") if label else "lawful",
        group=f"rules:{lab.source}",
        source=f"rules:{lab.source}",
        split="train",
    )
