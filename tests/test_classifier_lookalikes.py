"""Lawful look-alikes as training data (moderation/classifier/lookalikes.py): minimal pairs with both
sides, labels from the source files, held-out rules kept out, and the real test set excluded."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from moderation.classifier.lookalikes import (
    PAIRS,
    frame_pairs,
    lawful_wording_examples,
    lookalike_examples,
    rule_pass_examples,
)
from moderation.classifier.synth import HELD_OUT_FRACTION, stable_hash

REPO = Path(__file__).resolve().parents[1]
PACKS = REPO / "rules" / "packs"
WORDING = REPO / "rules" / "lawful_wording.yaml"


def test_pairs_come_in_lawful_and_violation_twins() -> None:
    exs = frame_pairs(2 * len(PAIRS), seed=3)
    assert len(exs) == 4 * len(PAIRS)
    for lawful, unlawful in zip(exs[::2], exs[1::2], strict=True):
        assert (lawful.label, unlawful.label) == (0, 1)
        assert lawful.group == unlawful.group
        # Same category tag on both sides.
        assert lawful.text.split("】")[0] == unlawful.text.split("】")[0]
        assert lawful.text != unlawful.text
    assert frame_pairs(10, seed=3) == frame_pairs(10, seed=3)


def test_every_template_names_its_product() -> None:
    for _cat, lawful, unlawful in PAIRS:
        assert "{p}" in lawful and "{p}" in unlawful, lawful


def test_lawful_wording_examples_keep_their_labels() -> None:
    exs = lawful_wording_examples(WORDING)
    labels = Counter(e.label for e in exs)
    assert labels[0] > labels[1] > 0
    assert any("吸烟有害健康" in e.text and e.label == 0 for e in exs)


def test_rule_passes_are_lawful_and_of_training_rules_only() -> None:
    exs = rule_pass_examples(PACKS)
    assert exs and all(e.label == 0 for e in exs)
    assert all(stable_hash(e.group.removeprefix("rule:")) >= HELD_OUT_FRACTION for e in exs)


def test_excluded_texts_are_dropped() -> None:
    target = frame_pairs(1, seed=5)[0].text.split("】", 1)[-1]
    kept, dropped = lookalike_examples(1, 5, PACKS, WORDING, exclude=lambda t: t == target)
    assert dropped >= 1
    assert all(e.text.split("】", 1)[-1] != target for e in kept)
