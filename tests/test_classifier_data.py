"""The classifier's generated data set: reproducible, and split by paraphrase family and template."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from moderation.classifier.cli import eval_cmd, train
from moderation.classifier.config import listing_text
from moderation.classifier.synth import build_dataset, claim_files, describe_split, load_claims

REPO = Path(__file__).resolve().parents[1]
LEX = REPO / "scripts" / "data"


def _build(tmp_path: Path, seed: int = 7) -> dict:
    return build_dataset(
        LEX / "templates.yaml",
        LEX / "claims.yaml",
        tmp_path / "no-corpora",
        tmp_path / "no-packs",
        seed=seed,
        n_generated=1500,
        n_corpus=0,
    )


def test_split_holds_out_whole_groups_and_templates(tmp_path):
    data = _build(tmp_path)
    s = describe_split(data)
    assert s["group_overlap_train_heldout"] == []
    assert not set(s["train"]["templates"]) & set(s["test"]["templates"])
    # calib and test are random halves of one held-out pool
    assert not (set(s["test"]["groups"]) | set(s["calib"]["groups"])) & set(s["train"]["groups"])
    assert {e.split for e in data["test"]} == {"test"}
    assert 0.3 < sum(e.label for e in data["train"]) / len(data["train"]) < 0.7
    # every family with two or more groups has one in training and one held out
    groups, _, _ = load_claims(LEX / "claims.yaml")
    held = set(s["test"]["groups"]) | set(s["calib"]["groups"])
    # the lexicon fixes the held-out groups by name; a small build need not draw every one of them
    declared = set(
        yaml.safe_load((LEX / "claims.yaml").read_text(encoding="utf-8")).get("heldout_groups") or []
    )
    if declared:
        assert held <= declared
        held = declared
    for fam in {g.family for g in groups if g.label == 1}:
        names = [g.group for g in groups if g.family == fam and g.label == 1]
        if len(names) >= 2:
            assert any(n in held for n in names) and any(n not in held for n in names), fam


def test_build_is_reproducible(tmp_path):
    a, b = _build(tmp_path), _build(tmp_path)
    assert [e.text for e in a["train"][:200]] == [e.text for e in b["train"][:200]]
    assert [e.text for e in _build(tmp_path, seed=8)["train"][:50]] != [e.text for e in a["train"][:50]]


def test_extra_claim_files_add_training_groups_and_leave_held_out_sets_unchanged(tmp_path):
    _, extra = claim_files(LEX)
    assert extra, "scripts/data/claims_more.yaml is part of the training material"
    base = _build(tmp_path)
    more = build_dataset(
        LEX / "templates.yaml",
        LEX / "claims.yaml",
        tmp_path / "no-corpora",
        tmp_path / "no-packs",
        seed=7,
        n_generated=1500,
        n_corpus=0,
        extra_claims=extra,
        train_scale=2.0,
    )
    for split in ("calib", "test"):
        assert [e.text for e in more[split]] == [e.text for e in base[split]], split
    assert len(more["train"]) > 1.8 * len(base["train"])
    extra_names: set[str] = set()
    for path in extra:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        extra_names |= {g["group"] for key in ("unlawful", "lawful") for g in doc.get(key, [])}
    assert extra_names & set(describe_split(more)["train"]["groups"])
    assert not extra_names & set(describe_split(more)["test"]["groups"])


def test_duplicate_group_names_across_files_are_refused(tmp_path):
    dup = tmp_path / "claims_dup.yaml"
    dup.write_text(
        "unlawful:\n  - {family: medical_claims, group: fast_effect, texts: [三天见效]}\n", encoding="utf-8"
    )
    with pytest.raises(ValueError, match="duplicate group names"):
        load_claims(LEX / "claims.yaml", dup)


def test_no_unfilled_slots(tmp_path):
    for exs in _build(tmp_path).values():
        for e in exs:
            assert "{" not in e.text and "}" not in e.text, e.text


def test_listing_text_tags_the_category():
    assert listing_text("维C片", "有助于增强免疫力", "health_food") == "【保健食品】维C片\n有助于增强免疫力"
    assert listing_text("维C片", category="nonsense") == "维C片"


def test_cli_eval_on_missing_model_is_a_clean_error(tmp_path):
    res = CliRunner().invoke(eval_cmd, ["--model", str(tmp_path / "nope")])
    assert res.exit_code != 0 and "does not exist" in res.output


def test_cli_train_reports_missing_data_and_pending_queue(tmp_path):
    res = CliRunner().invoke(train, ["--data", str(tmp_path), "--out", str(tmp_path / "m")])
    assert res.exit_code != 0 and "build_training_set" in res.output
