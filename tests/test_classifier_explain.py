"""Explanations of a classifier score: spans of the submitted fields, faithful to the model, in the result."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from moderation.checker import Checker
from moderation.classifier import load_model
from moderation.classifier.explain import explain_listing
from moderation.schema import Listing

LISTINGS = [
    Listing(
        id="e1", title="祖传秘方 三天见效", description="比医院的药还管用，孩子老人都能喝", category="food"
    ),
    Listing(
        id="e2",
        title="在家动动手指 月入过万",
        description="宝妈学生都能做，零门槛",
        category="finance",
        attributes={"适用人群": "想躺着赚钱的人"},
    ),
    Listing(id="e3", title="纯棉T恤 男款 夏季短袖", category="apparel"),
]


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.mark.parametrize("listing", LISTINGS, ids=lambda x: x.id)
def test_spans_point_into_the_fields_as_submitted(model, listing):
    spans = explain_listing(model, listing)
    fields = dict(listing.text_fields())
    assert len(spans) <= 5
    for sp in spans:
        assert fields[sp.field][sp.start : sp.end] == sp.text
        assert 0 < sp.weight <= 1
    assert sum(sp.weight for sp in spans) <= 1 + 1e-6
    assert [sp.weight for sp in spans] == sorted((sp.weight for sp in spans), reverse=True)


def test_removing_the_explained_words_lowers_the_score(model):
    """Faithfulness: each reported span's deletion lowers the score (that is how they are chosen), and
    deleting all of them lowers it more than deleting the same number of other characters."""
    listing = LISTINGS[0]
    base = model.score_listings([listing])[0]
    spans = explain_listing(model, listing)
    assert spans and all(sp.score_without is not None and sp.score_without < base for sp in spans)
    title = listing.title
    desc = listing.description
    for sp in sorted(spans, key=lambda s: -s.start):
        if sp.field == "title":
            title = title[: sp.start] + title[sp.end :]
        else:
            desc = desc[: sp.start] + desc[sp.end :]
    without = model.score_listings([{"title": title, "description": desc, "category": "food"}])[0]
    assert without < base


def test_checker_explains_a_score_that_alone_sends_to_review(engine):
    checker = Checker(engine)
    policy = engine.policy
    try:
        engine.policy = replace(policy, classifier_review_threshold=0.0)
        quiet = Listing(id="q", title="纯棉T恤 男款 夏季短袖", category="apparel")
        res = checker.check(quiet)
        assert res.verdict == "review" and not res.findings
        assert res.classifier is not None and res.classifier.explanation is not None
        out = json.loads(json.dumps(res.to_json_dict(), ensure_ascii=False))
        for sp in out["classifier"]["explanation"]:
            assert set(sp) >= {"field", "start", "end", "text", "weight"}
        # A rule finding explains itself: no classifier explanation then.
        loud = checker.check(Listing(id="l", title="全网最低价 销量第一 保温杯"))
        assert loud.findings and loud.classifier is not None and loud.classifier.explanation is None
    finally:
        engine.policy = policy
    # At the shipped threshold a plain listing passes and carries no explanation.
    res = checker.check(Listing(id="q2", title="纯棉T恤 男款 夏季短袖", category="apparel"))
    assert res.classifier is not None and res.classifier.explanation is None
    assert "explanation" not in res.to_json_dict()["classifier"]


def test_fold_maps_traditional_and_full_width_one_character_to_one():
    from moderation.classifier.textfold import fold

    src = "樂樂鮮果超市是天津最大的水果連鎖超市ＮＯ．１"
    out = fold(src)
    assert len(out) == len(src)
    assert out == "乐乐鲜果超市是天津最大的水果连锁超市NO.1"
    assert fold("最好的保温杯") == "最好的保温杯"


def test_a_folding_checkpoint_scores_traditional_text_like_simplified(model, tmp_path):
    """calibration.json's fold applies at prediction: the traditional spelling gets the simplified score."""
    import shutil

    from moderation.classifier.calibration import Calibration

    d = tmp_path / "m"
    shutil.copytree(model.path, d)
    for name in ("model.onnx", "onnx_check.json"):
        (d / name).unlink(missing_ok=True)
    cal = Calibration.load(d)
    assert cal is not None
    cal.fold = "t2s"
    cal.save(d)
    folded = load_model(d)
    a, b = folded.score_texts(
        ["樂樂鮮果超市是天津最大的水果連鎖超市", "乐乐鲜果超市是天津最大的水果连锁超市"]
    )
    assert a == pytest.approx(b, abs=1e-9)
