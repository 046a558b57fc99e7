"""The real labelled sets as classifier data: splits that never leak the real test set, and the reports."""

from __future__ import annotations

import numpy as np
import pytest

from moderation.evaluation.realsets import corpora_dir

pytestmark = pytest.mark.skipif(
    not (corpora_dir() / "taobao_titles.txt").exists(), reason="the shared corpora are not here"
)


def test_parts_are_disjoint_by_group_and_test_never_trains():
    from moderation.classifier.realdata import is_held_out, load_real, real_split

    items = load_real()
    parts = {r.example.split for r in items}
    assert parts == {"train", "calib", "test"}
    by_group: dict[str, set[str]] = {}
    for r in items:
        by_group.setdefault(r.key, set()).add(r.example.split)
    # train and calib are cut by group, so no group is on both sides of the dev part
    assert not [g for g, s in by_group.items() if {"train", "calib"} <= s]
    for part in ("train", "calib"):
        got = real_split(part)
        assert got and all(not is_held_out(r.raw) for r in got)
        assert all(r.label in ("violation", "lawful") for r in got)
    test = real_split("test")
    assert all(is_held_out(r.raw) for r in test)
    assert {r.kind for r in test} == {"cases", "lines"}


def test_training_examples_are_tagged_repeated_and_from_train_only():
    from moderation.classifier.realdata import real_split, training_examples

    train = real_split("train")
    ex = training_examples(case_repeat=2, line_repeat=1)
    n_cases = sum(r.kind == "cases" for r in train)
    assert len(ex) == 2 * n_cases + (len(train) - n_cases)
    assert all(e.text.startswith("【") and e.split == "train" for e in ex)


def test_ad_copies_have_a_weight_of_their_own():
    """``copy_repeat`` repeats only the clothing ad copies (present when their extra corpus is)."""
    from moderation.classifier.realdata import real_split, training_examples

    train = real_split("train")
    n_copies = sum(r.example.source == "real:copies" for r in train)
    if not n_copies:
        pytest.skip("the ad copies' extra corpus is not here (tests/real/README.md)")
    plain = training_examples(case_repeat=1, line_repeat=1)
    heavier = training_examples(case_repeat=1, line_repeat=1, copy_repeat=4)
    assert len(heavier) - len(plain) == 3 * n_copies
    assert sum(e.source == "real:copies" for e in heavier) == 4 * n_copies


@pytest.mark.slow
def test_builder_excludes_real_test_lines_everywhere(tmp_path):
    """No line of the real test set reaches the generated carriers or the weak lawful lines."""
    from moderation.classifier.realdata import is_held_out
    from moderation.classifier.synth import build_dataset, claim_files
    from moderation.paths import REPO_ROOT

    lex = REPO_ROOT / "scripts" / "data"
    claims, extra = claim_files(lex)
    data = build_dataset(
        lex / "templates.yaml",
        claims,
        corpora_dir(),
        REPO_ROOT / "rules" / "packs",
        n_generated=600,
        n_corpus=3000,
        extra_claims=extra,
        exclude=is_held_out,
        weak_weights={"titles": 0.5, "reviews": 0.5},
    )
    corpus_lines = [e.text.split("】", 1)[-1] for e in data["train"] if e.source.startswith("corpus:")]
    assert corpus_lines and not any(is_held_out(t) for t in corpus_lines)


def test_pretraining_text_leaves_out_the_real_test_set():
    from moderation.classifier.pipeline import pretraining_texts
    from moderation.classifier.realdata import is_held_out, real_split

    lines = pretraining_texts(corpora_dir(), pretrain_dir=None)
    assert len(lines) > 100_000
    held = {r.raw.strip() for r in real_split("test")}
    assert not held & set(lines)
    assert not any(is_held_out(t) for t in lines[:5000])


def test_threshold_for_lawful_rate_flags_at_most_the_budget():
    from moderation.classifier.realdata import threshold_for_lawful_rate

    rng = np.random.default_rng(0)
    lawful = rng.random(2000)
    t = threshold_for_lawful_rate(lawful, 0.01)
    assert (lawful >= t).mean() <= 0.01
    assert (lawful >= t - 1e-3).mean() > 0.005


def test_threshold_with_margin_is_above_the_point_rule_and_bounds_the_share():
    from moderation.classifier.realdata import threshold_for_lawful_rate, threshold_with_margin

    rng = np.random.default_rng(0)
    lawful = rng.random(1200)
    groups = [f"g{i // 2}" for i in range(1200)]  # near-duplicate pairs resample together
    t, upper = threshold_with_margin(lawful, groups, 0.01)
    assert upper <= 0.01
    assert t >= threshold_for_lawful_rate(lawful, 0.01)
    assert 0.003 < (lawful >= t).mean() < 0.01  # a margin, not the top few scores
    assert threshold_with_margin(lawful, groups, 0.01) == (t, upper)  # seeded


def test_real_report_on_a_perfect_and_a_random_scorer():
    from moderation.classifier.realdata import real_report, real_split

    items = real_split("test", binary=False)
    perfect = [1.0 if r.label == "violation" else 0.0 for r in items]
    rep = real_report(perfect, items, threshold=0.5, ci=False)
    assert rep["cases"]["auc"] == 1.0 and rep["lines"]["auc"] == 1.0
    assert rep["at_threshold"]["lawful_lines_flagged"] == 0.0
    assert rep["cases"]["violations"] > 150 and rep["lines"]["lawful"] > 3000
    noise = np.random.default_rng(1).random(len(items))
    assert 0.4 < real_report(noise, items, ci=False)["lines"]["auc"] < 0.6


def test_fresh_title_corpora_count_as_titles() -> None:
    """The extra title corpora (NER test split, Multi-CPR) are marketplace titles in every report and
    mix, not app descriptions (the fallback for an unknown corpus)."""
    from types import SimpleNamespace

    from moderation.classifier.realdata import _source_name
    from moderation.evaluation.realsets import COPIES, CPR_TITLES, NER_TITLES

    assert _source_name(SimpleNamespace(source=NER_TITLES), "lines") == "real:titles"
    assert _source_name(SimpleNamespace(source=CPR_TITLES), "lines") == "real:titles"
    assert _source_name(SimpleNamespace(source="taobao_titles.txt"), "lines") == "real:titles"
    assert _source_name(SimpleNamespace(source=COPIES), "lines") == "real:copies"
    assert _source_name(SimpleNamespace(source="app_descriptions_iflytek.jsonl"), "lines") == "real:apps"
