"""The whole training run behind both `scripts/train_classifier.py` and `moderation train`.

Kept in the package (not the script) so the CLI and the script cannot drift apart.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from .config import MODEL_NAME, MODEL_VERSION, ModelSpec, repo_root
from .data import Example, read_jsonl
from .evaluate import compute_metrics
from .predict import load_model
from .synth import HELD_OUT_FRACTION, claim_files, lexicon_texts, load_corpora, stable_hash
from .train import (
    TrainConfig,
    fine_tune,
    new_model,
    pretrain_mlm,
    save_and_calibrate,
    seed_everything,
    write_training_record,
)
from .vocab import build_vocab, make_tokenizer

DEFAULT_DATA_DIR = repo_root() / "var" / "classifier" / "data"
DEFAULT_LEXICONS = repo_root() / "scripts" / "data"
DEFAULT_OUT_DIR = repo_root() / "models" / "risk-classifier"


class QueueExportPending(RuntimeError):
    """The review-queue database does not yet expose decisions to train on."""


#: The table or view the review queue is expected to provide for training (one row per final decision).
DECISIONS_TABLE = "classifier_training_decisions"


def load_decisions(source: str) -> list[Example]:
    """Reviewer decisions as examples: a JSONL file of {text, label} or a SQLAlchemy database URL.

    For a URL the queue must expose a table or view ``classifier_training_decisions(text, label)``; the
    queue (issue pending) does not create it yet, so a URL currently fails with QueueExportPending
    naming what is missing rather than training on nothing.
    """
    if "://" not in source:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"decisions file {path} does not exist")
        return [Example(text=e.text, label=e.label, family=e.family or ("decision" if e.label else "lawful"),
                        group="decisions", source="decisions", split="train") for e in read_jsonl(path)]
    import sqlalchemy as sa

    engine = sa.create_engine(source)
    try:
        names = set(sa.inspect(engine).get_table_names()) | set(sa.inspect(engine).get_view_names())
        if DECISIONS_TABLE not in names:
            raise QueueExportPending(
                f"{engine.url.render_as_string(hide_password=True)} has no table or view {DECISIONS_TABLE!r} "
                "(text, label); the review-queue export for training is not built yet")
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT text, label FROM {DECISIONS_TABLE}")).all()
    finally:
        engine.dispose()
    return [Example.from_dict({"text": r[0], "label": r[1], "family": "decision", "group": "decisions",
                               "source": "decisions", "split": "train"}) for r in rows]


def train_model(
    train: Sequence[Example],
    calib: Sequence[Example],
    out_dir: str | Path,
    cfg: TrainConfig,
    spec: ModelSpec | None = None,
    mlm_texts: Sequence[str] = (),
    vocab_texts: Sequence[str] = (),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build the vocabulary, (optionally) pre-train, fine-tune, save, calibrate; returns the run record."""
    spec = spec or ModelSpec()
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    tokens = build_vocab(corpus_texts=[e.text for e in train] + list(mlm_texts), extra_texts=vocab_texts)
    tokenizer = make_tokenizer(tokens, spec.max_chars)
    model = new_model(tokenizer, spec, cfg.seed)
    record: dict[str, Any] = {"model": f"{MODEL_NAME}@{MODEL_VERSION}", "spec": spec.as_dict(),
                              "vocab_size": len(tokens), "n_train": len(train), "n_calib": len(calib),
                              "seed": cfg.seed, "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
                              "mlm_steps": cfg.mlm_steps, "threads": cfg.threads,
                              "torch": torch.__version__, "python": platform.python_version()}
    progress(f"vocab {len(tokens)} tokens; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    if cfg.mlm_steps and mlm_texts:
        record.update(pretrain_mlm(model, tokenizer, mlm_texts, cfg, progress))
    record.update(fine_tune(model, tokenizer, train, cfg, spec.max_chars, progress))
    cal = save_and_calibrate(model, tokenizer, out_dir, calib, cfg, spec.max_chars)
    record["calibration"] = {"method": cal.method, "a": cal.a, "b": cal.b, **cal.info}
    record["history"] = cfg.history
    record["total_seconds"] = time.perf_counter() - t0
    write_training_record(out_dir, record)
    return record


def train_from_data_dir(
    data_dir: str | Path = DEFAULT_DATA_DIR,
    out_dir: str | Path = DEFAULT_OUT_DIR,
    cfg: TrainConfig | None = None,
    decisions: str | None = None,
    lexicons: str | Path = DEFAULT_LEXICONS,
    corpora: str | Path | None = None,
    progress: Callable[[str], None] = print,
    spec: ModelSpec | None = None,
) -> dict[str, Any]:
    """Train on the files written by scripts/build_training_set.py, plus reviewer decisions if given.

    With ``cfg.mlm_steps`` the encoder is first pre-trained on unlabelled corpus lines: every line of
    ``corpora`` whose hash puts it in the training split (never a held-out line), or, without
    ``corpora``, the corpus lines already in train.jsonl.
    """
    cfg = cfg or TrainConfig()
    data_dir = Path(data_dir)
    if not (data_dir / "train.jsonl").exists():
        raise FileNotFoundError(f"{data_dir}/train.jsonl not found; run scripts/build_training_set.py first")
    train = read_jsonl(data_dir / "train.jsonl")
    calib = read_jsonl(data_dir / "calib.jsonl")
    if decisions:
        extra = load_decisions(decisions)
        progress(f"adding {len(extra)} reviewer decisions from {decisions}")
        train = [*train, *extra]
    mlm_texts: list[str] = []
    if cfg.mlm_steps:
        if corpora is not None:
            lines = [t for src in load_corpora(Path(corpora)).values() for t, _ in src]
            mlm_texts = [t for t in lines if stable_hash(t) >= HELD_OUT_FRACTION]
        else:
            mlm_texts = [e.text for e in train if e.source.startswith("corpus:")]
        progress(f"masked-LM pre-training on {len(mlm_texts)} unlabelled lines")
    lex = Path(lexicons)
    main_claims, extra_claims = claim_files(lex)
    vocab_texts = lexicon_texts([main_claims, *extra_claims, lex / "templates.yaml"]) if lex.exists() else []
    record = train_model(train, calib, out_dir, cfg, spec=spec, mlm_texts=mlm_texts, vocab_texts=vocab_texts,
                         progress=progress)
    test_path = data_dir / "test.jsonl"
    if test_path.exists():
        test = read_jsonl(test_path)
        rm = load_model(out_dir)
        m = compute_metrics(rm.score_texts([e.text for e in test], threads=cfg.threads), test)
        record["test"] = {k: m[k] for k in ("average_precision", "roc_auc", "ece", "recall_at_fpr",
                                              "paraphrase_recall_at_fpr", "precision", "recall")}
        write_training_record(out_dir, record)
    Path(out_dir, "training.json").write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n",
                                              encoding="utf-8")
    return record
