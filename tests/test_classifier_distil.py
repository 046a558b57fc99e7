"""Corpus lines labelled by the rules (moderation/classifier/distil.py): the rules' verdict becomes the
label, lines that real sets hold are never used, and the model sees the category the rules infer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moderation.checker import Checker
from moderation.classifier.distil import label_lines, rule_labelled_examples


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(classifier=False)


def _nothing(_text: str) -> bool:
    return False


def _corpora(tmp: Path) -> Path:
    queries = [
        "全网销量第一的保温杯",  # absolute claim: the rules flag it
        "纯棉四件套 1.8m床",
        "治疗糖尿病的茶",  # disease claim on food
        "儿童雨靴 防滑",
        "第一次买保温杯",  # a time order: lawful
    ]
    (tmp / "ecommerce_search_queries.tsv").write_text(
        "".join(f"{i}\t{q}\n" for i, q in enumerate(queries)), encoding="utf-8"
    )
    apps = ["一款记账软件，帮助你管理日常开销。", "国内最好的炒股软件，稳赚不赔。"]
    (tmp / "app_descriptions_iflytek.jsonl").write_text(
        "".join(json.dumps({"sentence": a}, ensure_ascii=False) + "\n" for a in apps), encoding="utf-8"
    )
    return tmp


def test_label_lines_follow_the_rules_verdict(checker: Checker) -> None:
    labels = label_lines([("全网销量第一的保温杯", "queries"), ("第一次买保温杯", "queries")], checker)
    assert [lab.flagged for lab in labels] == [True, False]
    assert labels[0].family == "absolute_claims"
    assert labels[1].family == ""
    for lab, text in zip(labels, ("全网销量第一的保温杯", "第一次买保温杯"), strict=True):
        expected = checker.check({"id": "x", "title": text, "category": "general"}).verdict
        assert lab.flagged == (expected in ("review", "block"))


def test_examples_take_every_flagged_line_and_the_asked_lawful_share(
    tmp_path: Path, checker: Checker
) -> None:
    corpora = _corpora(tmp_path)
    examples, stats = rule_labelled_examples(
        corpora, n_lawful=2, max_flagged=10, flagged_repeat=2, checker=checker, exclude=_nothing
    )
    assert stats["queries"] == {"lines": 5, "flagged": 2}
    assert stats["apps"] == {"lines": 2, "flagged": 1}
    flagged = [e for e in examples if e.label == 1]
    lawful = [e for e in examples if e.label == 0]
    assert len(flagged) == 3 * 2  # each flagged line twice
    assert len(lawful) == 2
    assert all(e.split == "train" and e.source.startswith("rules:") for e in examples)
    assert {e.family for e in flagged} <= {"absolute_claims", "food_labels", "medical_claims", "investment"}
    # The disease claim on tea is tagged with the inferred food category, as the model sees a general listing.
    tea = next(e for e in flagged if "糖尿病" in e.text)
    assert tea.text.startswith("【食品】")


def test_lines_a_real_set_holds_are_never_used(tmp_path: Path, checker: Checker) -> None:
    corpora = _corpora(tmp_path)
    held = {"全网销量第一的保温杯", "国内最好的炒股软件，稳赚不赔。"}
    examples, stats = rule_labelled_examples(
        corpora, n_lawful=100, max_flagged=100, checker=checker, exclude=held.__contains__
    )
    assert stats["queries"]["lines"] == 4 and stats["apps"]["lines"] == 1
    assert not any(h in e.text for e in examples for h in held)
    assert sum(e.label for e in examples) == 1  # only the tea claim is left to flag


def test_the_draw_is_seeded(tmp_path: Path, checker: Checker) -> None:
    corpora = _corpora(tmp_path)

    def draw(seed: int) -> list[str]:
        got, _ = rule_labelled_examples(
            corpora, n_lawful=2, max_flagged=1, seed=seed, checker=checker, exclude=_nothing
        )
        return [e.text for e in got]

    assert draw(7) == draw(7)
    # Another seed draws other lines (of 3 flagged and 4 lawful, some seed in ten differs from seed 7).
    assert any(draw(s) != draw(7) for s in range(10))


def test_an_unknown_corpus_is_refused(tmp_path: Path, checker: Checker) -> None:
    with pytest.raises(ValueError, match="unknown corpus"):
        rule_labelled_examples(
            _corpora(tmp_path), n_lawful=1, max_flagged=1, checker=checker, sources=["query"]
        )


def test_by_default_no_line_of_a_real_set_is_used() -> None:
    """Without an ``exclude``, a labelled line and a real test item are both refused (the shared titles
    are labelled, every one)."""
    from moderation.classifier.distil import real_set_line
    from moderation.classifier.realdata import load_real

    real = load_real()
    test_item = next(r for r in real if r.example.split == "test")
    dev_line = next(r for r in real if r.kind == "lines" and r.example.split != "test")
    assert real_set_line(test_item.raw.strip())
    assert real_set_line(dev_line.raw.strip())
    assert not real_set_line("这一行不在任何真实数据集里 测试用")
