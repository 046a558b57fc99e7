"""The risk classifier's training, saving, loading and scoring, on a tiny model trained in the suite."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertTokenizerFast

from moderation.classifier import ENV_MODEL_DIR, ModelLoadError, RiskModel, load_model
from moderation.classifier.calibration import (
    Calibration,
    choose_calibration,
    expected_calibration_error,
    fit_isotonic,
    fit_platt,
)
from moderation.classifier.config import MODEL_VERSION, ModelSpec
from moderation.classifier.data import Example, write_jsonl
from moderation.classifier.evaluate import roc_auc, threshold_at_fpr
from moderation.classifier.pipeline import QueueExportPending, load_decisions
from moderation.classifier.train import TrainConfig, fine_tune, new_model, save_and_calibrate
from moderation.classifier.vocab import build_vocab, make_tokenizer
from moderation.evaluation.realsets import corpora_dir

REPO = Path(__file__).resolve().parents[1]
LEXICONS = REPO / "scripts" / "data"
TINY = ModelSpec(
    hidden_size=48, num_hidden_layers=1, num_attention_heads=2, intermediate_size=96, max_chars=64
)
FRAMES = ["{p}，{c}", "【{p}】{c}，包邮", "{c}！{p}现货", "店长推荐{p}：{c}"]
HELD_FRAMES = ["{p} {c}～", "新品{p}｜{c}"]


def _tiny_data() -> tuple[list[Example], list[Example]]:
    """Claims from the project lexicons; every fourth claim line and two frames are held out."""
    claims = yaml.safe_load((LEXICONS / "claims.yaml").read_text(encoding="utf-8"))
    tpl = yaml.safe_load((LEXICONS / "templates.yaml").read_text(encoding="utf-8"))
    products = [p for c in tpl["categories"].values() for p in c["products"]]
    rng = random.Random(5)
    train, held = [], []
    for label, key in ((1, "unlawful"), (0, "lawful")):
        for g in claims[key]:
            for i, text in enumerate(g["texts"]):
                text = text.replace("{", "").replace("}", "")
                frames, dest = (HELD_FRAMES, held) if i % 4 == 0 else (FRAMES, train)
                for f in frames:
                    dest.append(Example(text=f.format(p=rng.choice(products), c=text), label=label))
    # Balance the classes so that chance is AUC 0.5 and the model cannot win by the prior alone.
    rng.shuffle(train)
    return train, held


@pytest.fixture(scope="module")
def tiny(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[Example], BertForSequenceClassification]:
    torch.set_num_threads(1)
    train, held = _tiny_data()
    tokens = build_vocab(extra_texts=[e.text for e in train + held], max_jieba_chars=0)
    tok = make_tokenizer(tokens, TINY.max_chars)
    model = new_model(tok, TINY, seed=3)
    cfg = TrainConfig(epochs=6, batch_size=32, lr=3e-3, threads=1, fp16_weights=False, log_every=10**9)
    fine_tune(model, tok, train, cfg, TINY.max_chars, progress=lambda s: None)
    out = tmp_path_factory.mktemp("tiny-model")
    save_and_calibrate(model, tok, out, held, cfg, TINY.max_chars)
    return out, held, model


@pytest.mark.slow
def test_tiny_model_beats_chance_on_held_out_lines(tiny):
    out, held, _ = tiny
    rm = load_model(out)
    scores = np.array(rm.score_texts([e.text for e in held]))
    y = np.array([e.label for e in held])
    assert roc_auc(scores, y) > 0.7
    assert ((scores >= 0) & (scores <= 1)).all()


@pytest.mark.slow
def test_save_load_round_trip_gives_identical_scores(tiny, tmp_path):
    out, held, model = tiny
    texts = [e.text for e in held[:40]]
    loaded = load_model(out)
    in_memory = RiskModel(
        model, loaded.tokenizer, loaded.calibration, name="x", path=out, max_chars=loaded.max_chars
    )
    assert loaded.score_texts(texts) == in_memory.score_texts(texts)
    # and again through a second save of the loaded model
    loaded.model.save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):  # load_model reads tokenizer.json itself
        (tmp_path / name).write_bytes((out / name).read_bytes())
    loaded.calibration.save(tmp_path)
    assert load_model(tmp_path).score_texts(texts) == loaded.score_texts(texts)


@pytest.mark.slow
def test_scores_are_deterministic_and_in_input_order(tiny):
    out, held, _ = tiny
    rm = load_model(out)
    texts = [e.text for e in held[:50]]
    first = rm.score_texts(texts, batch_size=8)
    assert rm.score_texts(texts, batch_size=8) == first
    singles = [rm.score_text(t) for t in texts]
    np.testing.assert_allclose(singles, first, atol=1e-5)
    assert rm.score_texts([]) == []


@pytest.mark.slow
def test_calibration_file_and_name(tiny):
    out, _, _ = tiny
    cal = json.loads((out / "calibration.json").read_text(encoding="utf-8"))
    assert cal["method"] in ("platt", "isotonic") and cal["a"] > 0
    assert "cv_ece_platt" in cal["info"] and "cv_ece_isotonic" in cal["info"]
    assert load_model(out).name == f"risk-zh-tiny@{MODEL_VERSION}"


@pytest.mark.slow
def test_env_var_selects_default_directory(tiny, monkeypatch):
    out, _, _ = tiny
    monkeypatch.setenv(ENV_MODEL_DIR, str(out))
    assert load_model().path == out


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        load_model(tmp_path)


@pytest.mark.slow
def test_corrupt_directory_is_a_clear_error(tiny, tmp_path):
    out, _, _ = tiny
    for f in out.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    (tmp_path / "calibration.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="calibration"):
        load_model(tmp_path)
    (tmp_path / "calibration.json").unlink()
    (tmp_path / "config.json").write_text("not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_model(tmp_path)


def test_any_local_checkpoint_loads_through_the_same_path(tmp_path):
    """A freshly saved Bert with its own (different) tokenizer and no calibration still loads."""
    vocab = {
        t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"一二三四五好坏的了"])
    }
    tok = BertTokenizerFast(vocab=vocab)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        num_labels=2,
    )
    BertForSequenceClassification(cfg).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    rm = load_model(tmp_path)
    assert rm.name == f"{tmp_path.name}@local"
    assert rm.max_chars == 38
    scores = rm.score_texts(["一二三好", "坏的了" * 30])
    assert all(0.0 <= s <= 1.0 for s in scores)
    with torch.inference_mode():
        enc = rm.tokenizer(["一二三好"], return_tensors="pt")
        p = torch.softmax(rm.model(**enc).logits, -1)[0, 1].item()
    assert scores[0] == pytest.approx(p, abs=1e-6)


def test_tokenizer_has_no_unk_on_a_real_looking_listing(tmp_path):
    tokens = build_vocab(extra_texts=[], max_jieba_chars=4500)
    make_tokenizer(tokens, 256).save_pretrained(tmp_path)
    listing = "【食品】新疆若羌灰枣５００ｇ×２袋🔥🔥 iPhone同款礼盒 Ｎｏ．１？买２送１😀👍 ①号仓发货 100%纯正 ℃冷藏 ＃好评＃"
    for cls in (AutoTokenizer, BertTokenizerFast):
        tok = cls.from_pretrained(str(tmp_path), local_files_only=True)
        ids = tok(listing)["input_ids"]
        assert tok.unk_token_id not in ids, tok.convert_ids_to_tokens(ids)
    shipped = REPO / "models" / "risk-classifier"
    if (shipped / "tokenizer.json").exists():
        tok = AutoTokenizer.from_pretrained(str(shipped), local_files_only=True)
        assert tok.unk_token_id not in tok(listing)["input_ids"]


def test_platt_fit_recovers_parameters_and_lowers_ece():
    rng = np.random.default_rng(0)
    margins = rng.normal(0, 3, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.5 * margins - 1.0)))).astype(int)
    a, b = fit_platt(margins, y)
    assert a == pytest.approx(0.5, abs=0.08) and b == pytest.approx(-1.0, abs=0.15)
    raw = 1 / (1 + np.exp(-margins))
    fitted = Calibration(a=a, b=b).apply(margins)
    assert expected_calibration_error(fitted, y) < expected_calibration_error(raw, y)
    assert expected_calibration_error(fitted, y) < 0.03


def test_threshold_at_fpr_respects_the_budget():
    neg = np.linspace(0, 1, 101)
    t = threshold_at_fpr(neg, 0.05)
    assert (neg >= t).mean() <= 0.05


def test_decisions_from_jsonl_and_pending_queue_url(tmp_path):
    path = tmp_path / "decisions.jsonl"
    write_jsonl(path, [Example(text="三天见效", label=1), Example(text="纯棉T恤", label=0)])
    got = load_decisions(str(path))
    assert [(e.text, e.label) for e in got] == [("三天见效", 1), ("纯棉T恤", 0)]
    with pytest.raises(QueueExportPending, match="classifier_training_decisions"):
        load_decisions(f"sqlite:///{tmp_path / 'queue.db'}")


def test_isotonic_calibration_is_monotone_round_trips_and_keeps_the_ranking(tmp_path):
    rng = np.random.default_rng(1)
    margins = rng.normal(0, 3, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-(margins**3) / 10))).astype(int)  # not a sigmoid of margin
    xs, ys = fit_isotonic(margins, y)
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    cal, cv = choose_calibration(margins, y)
    assert set(cv) == {"cv_ece_platt", "cv_ece_isotonic"}
    assert cal.method == "isotonic"  # the sigmoid shape is wrong here, so isotonic must win
    p = cal.apply(margins)
    assert expected_calibration_error(p, y) < 0.03
    order = np.argsort(margins)
    assert np.all(np.diff(p[order]) >= 0)
    cal.save(tmp_path)
    again = Calibration.load(tmp_path)
    assert again is not None and again.method == "isotonic"
    np.testing.assert_array_equal(again.apply(margins), p)


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _mark_checked(model_dir: Path) -> None:
    from moderation.classifier.ort_backend import ONNX_CHECK_FILE, ONNX_FILE

    size = (model_dir / ONNX_FILE).stat().st_size
    (model_dir / ONNX_CHECK_FILE).write_text(
        json.dumps({"passed": True, "onnx_bytes": size}), encoding="utf-8"
    )


@pytest.mark.slow
def test_onnx_backend_gives_the_same_scores_as_torch(tiny, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from moderation.classifier.ort_backend import export

    out, held, _ = tiny
    d = _copy_model(out, tmp_path / "m")
    export(d)
    assert load_model(d).backend == "torch"  # no recorded check yet: the graph is not trusted
    _mark_checked(d)
    onnx_rm, torch_rm = load_model(d), load_model(d, backend="torch")
    assert onnx_rm.backend == "onnx" and torch_rm.backend == "torch"
    texts = [e.text for e in held[:120]] + ["短", "长" * 300, ""]
    for bs in (1, 16, 64):
        np.testing.assert_allclose(
            onnx_rm.score_texts(texts, batch_size=bs), torch_rm.score_texts(texts), atol=1e-5
        )
    rows = [{"title": "维生素C咀嚼片", "description": "有助于增强免疫力", "category": "health_food"}]
    np.testing.assert_allclose(onnx_rm.score_listings(rows), torch_rm.score_listings(rows), atol=1e-5)


@pytest.mark.slow
def test_export_records_a_reference_so_a_new_model_loads_without_pytorch(tiny, tmp_path):
    """export_and_check (what training and scripts/export_onnx.py run) writes the reference and the
    tokenizer comparison; the next load checks the graph against them and never loads the weights."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from moderation.classifier.ort_backend import CHECK_TEXTS, export_and_check

    out, held, _ = tiny
    d = _copy_model(out, tmp_path / "m")
    record = export_and_check(d, texts=[e.text for e in held[:60]], threads=1)
    assert record["passed"] and record["tokenizer_mismatches"] == 0
    assert record["reference_max_abs_prob_diff"] <= 1e-4
    assert len(record["reference"]["logits"]) == len(CHECK_TEXTS)
    assert record["reference"]["tokenizer"]["max_length"] == TINY.max_chars + 2
    rm = load_model(d)
    assert rm.backend == "onnx" and not rm.torch_loaded
    np.testing.assert_allclose(
        rm.score_texts(CHECK_TEXTS), load_model(d, backend="torch").score_texts(CHECK_TEXTS), atol=1e-5
    )


@pytest.mark.slow
def test_bad_onnx_graph_falls_back_to_torch(tiny, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from moderation.classifier.ort_backend import ENV_BACKEND, ONNX_FILE

    out, held, _ = tiny
    d = _copy_model(out, tmp_path / "m")
    (d / ONNX_FILE).write_bytes(b"not an onnx graph")
    _mark_checked(d)
    rm = load_model(d)
    assert rm.backend == "torch"
    assert rm.score_texts([held[0].text]) == load_model(out).score_texts([held[0].text])
    with pytest.raises(ModelLoadError, match=r"cannot use model\.onnx"):
        load_model(d, backend="onnx")
    monkeypatch.setenv(ENV_BACKEND, "torch")
    assert load_model(d).backend == "torch"


def test_shipped_model_scores_with_its_onnx_graph_exactly_like_torch():
    """The shipped graph stores fp16 weights (half the file) and still gives the fp32 model's scores."""
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    shipped = REPO / "models" / "risk-classifier"
    graph = onnx.load(str(shipped / "model.onnx"))
    halves = [i.name for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert "model.bert.embeddings.word_embeddings.weight__fp16" in halves
    onnx_rm, torch_rm = load_model(shipped), load_model(shipped, backend="torch")
    assert onnx_rm.backend == "onnx", "onnxruntime is a dependency: the shipped default is the checked graph"
    rows = [
        {
            "title": "【限时】祛斑霜 用了三天斑就没了",
            "description": "比医院的药还管用🔥" * 30,
            "category": "cosmetics",
        },
        {
            "title": "手撕牛肉干 净含量５００ｇ",
            "description": "口感酥脆不粘牙，第一次购买可先试吃装。",
            "category": "food",
        },
        {"title": "躺赚项目", "description": "投资1万，每月保底收益20%，穩賺不賠", "category": "finance"},
        {"title": "保温杯 Thermos-style 500ml", "description": "", "category": "general"},
    ]
    np.testing.assert_allclose(
        onnx_rm.score_listings(rows, batch_size=4), torch_rm.score_listings(rows), atol=1e-5
    )
    np.testing.assert_allclose(
        onnx_rm.score_listings(rows, batch_size=1), torch_rm.score_listings(rows), atol=1e-5
    )


@pytest.mark.skipif(
    not (corpora_dir() / "taobao_titles.txt").exists(),
    reason="a soup reports its real calib figures, which read the shared corpora",
)
def test_a_soup_of_identical_members_is_the_member(tiny, tmp_path):
    """pipeline.soup_models averages weights of checkpoints from one start: two copies of one model give
    that model back (same margins), calibrated on the data's calib_real.jsonl; other vocabularies are refused."""
    from moderation.classifier.pipeline import soup_models

    src, held, _ = tiny
    fold = json.loads((src / "calibration.json").read_text(encoding="utf-8")).get("fold", "")
    members = []
    for name in ("a", "b"):
        d = _copy_model(src, tmp_path / name)
        (d / "training.json").write_text(json.dumps({"seed": 1, "spec": {}}), encoding="utf-8")
        members.append(d)
    data = tmp_path / "data"
    write_jsonl(data / "calib_real.jsonl", held)
    cfg = TrainConfig(threads=1, fp16_weights=False, fold=fold)
    rec = soup_models(members, data, tmp_path / "soup", cfg)
    assert rec["soup_of"] == [str(m) for m in members]
    texts = [e.text for e in held[:40]]
    want = load_model(src, backend="torch").margins(texts, threads=1)
    got = load_model(tmp_path / "soup", backend="torch").margins(texts, threads=1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    (members[1] / "tokenizer.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match="vocabulary"):
        soup_models(members, data, tmp_path / "soup2", cfg)
