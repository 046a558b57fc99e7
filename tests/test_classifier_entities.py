"""Entity tags before the classifier reads a text (moderation/classifier/entities.py): names become tag
characters one for one, a checkpoint trained with them reads texts the same way when loaded, and one
without them is untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from moderation.classifier import ModelLoadError, load_model
from moderation.classifier.config import ModelSpec
from moderation.classifier.data import Example
from moderation.classifier.entities import (
    DEFAULT_KINDS,
    ENTITY_FILE,
    TAGS,
    EntityTagger,
    kinds_of,
    lexicon_entities,
    read_entities,
    write_entities,
)
from moderation.classifier.train import TrainConfig, add_tag_tokens, new_model, save_and_calibrate
from moderation.classifier.vocab import build_vocab, make_tokenizer

REPO = Path(__file__).resolve().parents[1]
P, M = TAGS["person"], TAGS["marketplace"]
ENTRIES = [("刘仁娜", "person"), ("angelababy", "person"), ("rain", "person"), ("唯品会", "marketplace")]


def test_names_become_tags_one_for_one() -> None:
    tagger = EntityTagger(ENTRIES)
    text = "美女刘仁娜高清写真,刘仁娜海报"
    tagged = tagger.tag(text)
    assert tagged == f"美女{P * 3}高清写真,{P * 3}海报"
    assert len(tagged) == len(text)
    assert tagger.tag("唯品会 秋冬女装") == f"{M * 3} 秋冬女装"
    # Latin names in any case, as whole words only: not inside a longer word or number.
    assert tagger.tag("AngelaBaby同款") == P * 10 + "同款"
    assert tagger.tag("rain 同款") == P * 4 + " 同款"
    assert tagger.tag("raincoat 雨衣") == "raincoat 雨衣"
    assert tagger.tag("") == ""


def test_a_listings_own_private_use_characters_never_read_as_tags() -> None:
    tagger = EntityTagger(ENTRIES)
    assert tagger.tag(f"{P}{M}连衣裙") == "  连衣裙"
    assert EntityTagger([]).tag(f"{P}裙") == " 裙"


def test_the_names_come_from_the_rules_lexicons_and_round_trip(tmp_path: Path) -> None:
    entries = lexicon_entities(REPO / "rules" / "lexicons")
    kinds = {kind for _, kind in entries}
    assert kinds == {"person", "marketplace"}
    with_brands = lexicon_entities(REPO / "rules" / "lexicons", ("person", "marketplace", "brand"))
    assert {kind for _, kind in with_brands} == set(TAGS) and len(with_brands) > len(entries)
    assert all(len(word) >= 2 and word == word.lower() for word, _ in entries)
    path = tmp_path / ENTITY_FILE
    write_entities(path, entries)
    assert read_entities(path) == entries
    path.write_text("名字\tnobody\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad entity line"):
        read_entities(path)


TINY = ModelSpec(
    hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, max_chars=32
)


@pytest.fixture(scope="module")
def tagged_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny checkpoint saved the way training saves a tagged one."""
    torch.set_num_threads(1)
    texts = ["刘仁娜同款连衣裙", "纯棉连衣裙", "唯品会女装", "夏季短袖"]
    tok = make_tokenizer(build_vocab(extra_texts=texts, max_jieba_chars=0), TINY.max_chars)
    model = new_model(tok, TINY, seed=3)
    before = model.get_input_embeddings().weight.detach().clone()
    assert add_tag_tokens(tok, model) == 2  # the default kinds: person, marketplace
    assert add_tag_tokens(tok, model) == 0  # once
    after = model.get_input_embeddings().weight.detach()
    assert torch.equal(after[: before.shape[0]], before)
    assert torch.allclose(after[before.shape[0] :], before.mean(0).expand(2, -1))
    tagger = EntityTagger(ENTRIES)
    calib = [Example(text=tagger.tag(t), label=i % 2) for i, t in enumerate(texts * 4)]
    cfg = TrainConfig(threads=1, fp16_weights=False, entities=ENTITY_FILE)
    out = tmp_path_factory.mktemp("tagged-model")
    save_and_calibrate(model, tok, out, calib, cfg, TINY.max_chars, entities=ENTRIES)
    return out


def test_a_tagged_checkpoint_tags_what_it_reads(tagged_model: Path) -> None:
    cal = json.loads((tagged_model / "calibration.json").read_text(encoding="utf-8"))
    assert cal["entities"] == ENTITY_FILE
    assert read_entities(tagged_model / ENTITY_FILE) == ENTRIES
    rm = load_model(tagged_model, backend="torch")
    assert rm.prepare(["刘仁娜同款连衣裙"]) == [f"{P * 3}同款连衣裙"]
    # Each tag character is its own token (not [UNK]), in the fast path's tokenizer as in training's.
    ids = rm.tokenizer([rm.prepare(["刘仁娜同款"])[0]], return_tensors="np")["input_ids"][0].tolist()
    vocab = json.loads((tagged_model / "tokenizer.json").read_text(encoding="utf-8"))
    tag_ids = {t["content"]: t["id"] for t in vocab["added_tokens"] if t["content"] in TAGS.values()}
    assert ids[1:4] == [tag_ids[P]] * 3
    # Scoring the raw text equals scoring the tagged text with the tagger switched off.
    score = rm.score_text("刘仁娜同款连衣裙")
    rm.tagger = None
    assert rm.score_text(f"{P * 3}同款连衣裙") == score


def test_a_retrain_keeps_the_kinds_a_checkpoint_was_tagged_with(tagged_model: Path) -> None:
    assert kinds_of(tagged_model, ENTITY_FILE) == ("person", "marketplace")
    assert kinds_of(tagged_model, "") == DEFAULT_KINDS


def test_a_missing_entity_list_is_a_clear_load_error(tagged_model: Path, tmp_path: Path) -> None:
    for f in tagged_model.iterdir():
        if f.name != ENTITY_FILE:
            (tmp_path / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ModelLoadError, match="entity list"):
        load_model(tmp_path, backend="torch")


def test_the_shipped_model_reads_texts_as_it_was_trained() -> None:
    """Whatever the shipped checkpoint says about tags, loading honours it."""
    rm = load_model(REPO / "models" / "risk-classifier")
    cal = json.loads((REPO / "models" / "risk-classifier" / "calibration.json").read_text(encoding="utf-8"))
    assert (rm.tagger is not None) == bool(cal.get("entities"))


def test_a_tagged_checkpoint_runs_on_onnx_like_on_pytorch(tagged_model: Path, tmp_path: Path) -> None:
    """The tag tokens survive the export: the graph scores tagged text as PyTorch does, without torch."""
    from moderation.classifier.ort_backend import export_and_check

    for f in tagged_model.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    texts = ["刘仁娜同款连衣裙", "唯品会 女装 秋冬", "纯棉连衣裙", "angelababy同款 帆布鞋"]
    record = export_and_check(tmp_path, texts=texts, threads=1)
    assert record["passed"]
    onnx = load_model(tmp_path)
    assert onnx.backend == "onnx" and onnx.tagger is not None
    torch_scores = load_model(tmp_path, backend="torch").score_texts(texts)
    assert max(abs(a - b) for a, b in zip(onnx.score_texts(texts), torch_scores, strict=True)) < 1e-4
