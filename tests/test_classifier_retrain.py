"""Learning from reviewers' decisions: the queue's decided items become examples, and a retrained model
replaces the shipped one only when it is not worse on the real test set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from moderation.classifier import feedback
from moderation.classifier.config import ModelSpec
from moderation.classifier.data import Example, write_jsonl
from moderation.classifier.feedback import compare, decisions_from_queue
from moderation.classifier.train import TrainConfig, fine_tune, new_model, save_and_calibrate
from moderation.classifier.vocab import build_vocab, make_tokenizer
from moderation.evaluation.realsets import corpora_dir
from moderation.queue import DecisionIn, ReviewQueue
from moderation.schema import CheckResult, Finding, Listing

pytestmark = pytest.mark.skipif(
    not (corpora_dir() / "taobao_titles.txt").exists(), reason="the shared corpora are not here"
)

TINY = ModelSpec(
    hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_chars=48
)
VIOLATIONS = [
    "三天见效 比医院的药还管用",
    "在家躺着赚钱 月入过万",
    "全网最低价 销量第一",
    "包过 不过全额退款",
]
LAWFUL = ["纯棉T恤 男款 夏季短袖", "不锈钢保温杯 500ml", "手撕牛肉干 净含量500g", "儿童绘本 3-6岁"]


def _result(listing: Listing) -> CheckResult:
    return CheckResult(
        id=listing.id,
        verdict="review",
        risk=0.8,
        findings=[
            Finding(
                rule="absolute.superlative",
                family="absolute_claims",
                law="广告法第九条第三项",
                severity="high",
                field="title",
                start=0,
                end=2,
                text=listing.title[:2],
                message="m",
            )
        ],
    )


def _decide(q: ReviewQueue, item_id: int, outcome: str, who: int = 101) -> None:
    from moderation.queue.roles import Actor

    actor = Actor(id=who, username=f"r{who}", role="reviewer")
    claim = q.workflow.claim(item_id, actor)
    q.workflow.decide(
        item_id,
        actor,
        DecisionIn(
            outcome=outcome,
            claim_token=claim["claim_token"],
            version=claim["version"],
            listing_revision=claim["item"]["listing_revision"],
            reason_codes=[] if outcome == "approved" else ["false_claim"],
        ),
    )


@pytest.fixture()
def queue_url(tmp_path: Path) -> str:
    from moderation.queue.roles import Actor

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    q = ReviewQueue(url)
    svc = Actor(id=400, username="svc", role="service")
    texts = [(t, "rejected") for t in VIOLATIONS] + [(t, "approved") for t in LAWFUL]
    for i, (title, outcome) in enumerate(texts):
        listing = Listing(id=f"d{i}", title=title, seller_id="s")
        item = q.intake.enqueue(listing, _result(listing), svc)["item_id"]
        _decide(q, item, outcome)
    # Decided, then edited: the decision judged other text, so it teaches nothing.
    edited = Listing(id="edit", title="祖传秘方 药到病除", seller_id="s")
    _decide(q, q.intake.enqueue(edited, _result(edited), svc)["item_id"], "rejected")
    changed = Listing(id="edit", title="祖传配方 口感好", seller_id="s")
    q.intake.enqueue(changed, _result(changed), svc)
    q.close()
    return url


def test_decisions_become_labelled_examples(queue_url):
    got = decisions_from_queue(queue_url)
    by_text = {e.text: e.label for e in got.examples}
    assert sorted(by_text.values()).count(1) == len(VIOLATIONS)
    assert all(by_text[f"【日用百货】{t}"] == 1 for t in VIOLATIONS)
    assert all(by_text[f"【日用百货】{t}"] == 0 for t in LAWFUL)
    assert got.skipped.get("listing changed after the decision") == 1
    assert all(e.source == "decisions" for e in got.examples)


def test_compare_refuses_a_worse_model():
    old = {"cases": {"auc": 0.90}, "lines": {"auc": 0.85}, "ece": 0.03}
    assert compare(old, {"cases": {"auc": 0.898}, "lines": {"auc": 0.86}, "ece": 0.04})[0]
    ok, why = compare(old, {"cases": {"auc": 0.88}, "lines": {"auc": 0.86}, "ece": 0.03})
    assert not ok and "enforcement cases" in why[0]
    ok, why = compare(old, {"cases": {"auc": 0.90}, "lines": {"auc": 0.85}, "ece": 0.07})
    assert not ok and "ECE" in why[0]


@pytest.fixture()
def tiny_model(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny checkpoint as the 'shipped' model, and a data directory for retraining."""
    from moderation.classifier.realdata import real_split

    torch.set_num_threads(1)
    train = [Example(text=t, label=1) for t in VIOLATIONS] * 10 + [
        Example(text=t, label=0) for t in LAWFUL
    ] * 10
    calib = [r.example for r in real_split("calib")]
    tok = make_tokenizer(
        build_vocab(extra_texts=[e.text for e in train + calib], max_jieba_chars=0), TINY.max_chars
    )
    model = new_model(tok, TINY, seed=1)
    cfg = TrainConfig(epochs=1, batch_size=16, lr=1e-3, threads=1, log_every=10**9)
    fine_tune(model, tok, train, cfg, TINY.max_chars, progress=lambda s: None)
    shipped = tmp_path / "shipped"
    save_and_calibrate(model, tok, shipped, calib, cfg, TINY.max_chars)
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", train)
    write_jsonl(data / "calib_real.jsonl", calib)
    return shipped, data


def test_retrain_keeps_the_shipped_model_when_the_new_one_is_worse(
    queue_url, tiny_model, tmp_path, monkeypatch
):
    shipped, data = tiny_model
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    calls = iter(
        [
            {"cases": {"auc": 0.9}, "lines": {"auc": 0.8}, "ece": 0.02},
            {"cases": {"auc": 0.7}, "lines": {"auc": 0.8}, "ece": 0.02},
        ]
    )
    monkeypatch.setattr(feedback, "_score_test", lambda d, t: next(calls))
    from moderation.cli import main

    res = CliRunner().invoke(
        main,
        [
            "classifier",
            "retrain",
            "--from-queue",
            "--db",
            queue_url,
            "--model",
            str(shipped),
            "--data",
            str(data),
            "--work",
            str(tmp_path / "work"),
        ],
    )
    assert res.exit_code == 3, res.output
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before
    rec = json.loads((tmp_path / "work" / "retrain.json").read_text(encoding="utf-8"))
    assert (
        rec["accepted"] is False
        and rec["replaced"] is False
        and "fell from 0.900 to 0.700" in rec["reasons"][0]
    )
    assert rec["decisions"] == len(VIOLATIONS) + len(LAWFUL)


@pytest.mark.slow
def test_retrain_replaces_the_model_when_not_worse_and_it_still_loads(queue_url, tiny_model, tmp_path):
    """End to end on the real test set: decisions in, candidate trained from the shipped weights,
    compared, ONNX re-exported and checked, shipped directory replaced (the previous one kept)."""
    from moderation.classifier import load_model

    shipped, data = tiny_model
    work = tmp_path / "work"
    rec = feedback.retrain_from_queue(
        queue_url, shipped, data, work, epochs=1, threads=1, progress=lambda s: None
    )
    assert set(rec["old"]) >= {"cases", "lines", "ece"} and set(rec["new"]) >= {"cases", "lines", "ece"}
    if not rec["accepted"]:  # a tiny model can get worse by chance; then nothing may change
        assert rec["replaced"] is False
        return
    assert rec["replaced"] is True
    assert (work / "previous" / "model.safetensors").exists()
    rm = load_model(shipped)
    assert rm.score_texts(["三天见效"])[0] >= 0.0
    if (shipped / "model.onnx").exists():
        assert rm.backend == "onnx"
    shutil.rmtree(work)


@pytest.mark.slow
def test_rules_list_shows_reviewer_precision_per_rule(queue_url):
    """The same decisions give each rule's precision as judged by reviewers, next to it in `rules list`."""
    from moderation.cli import main

    res = CliRunner().invoke(main, ["rules", "list", "--db", queue_url])
    assert res.exit_code == 0, res.output
    lines = {ln.split("\t")[0]: ln for ln in res.output.splitlines()}
    # Every queued item carried absolute.superlative: 4 rejected + 1 rejected-then-edited confirm it,
    # 4 approvals overrule it.
    assert "precision 56% (5/9 decided)" in lines["absolute.superlative"]
    assert "precision - (no decisions)" in lines["absolute.best"]
    assert CliRunner().invoke(main, ["rules", "list"]).output.count("precision") == 0
