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

from moderation.paths import rules_dir

from .config import MODEL_NAME, MODEL_VERSION, ModelSpec, repo_root
from .data import Example, read_jsonl
from .entities import EntityTagger, lexicon_entities, read_entities
from .evaluate import compute_metrics
from .predict import load_model
from .synth import HELD_OUT_FRACTION, claim_files, lexicon_texts, load_corpora, stable_hash
from .train import (
    TrainConfig,
    add_tag_tokens,
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
#: Text files from scripts/build_pretrain_text.py (package-shipped reviews, news, fortunes).
DEFAULT_PRETRAIN_DIR = repo_root() / "var" / "pretrain" / "text"
#: The share of lawful real listings (upper bound, on the real calib part) that the score alone may send
#: to review. Smaller than the classifier issue allows: on real listings the score-alone flags are mostly
#: wrong, and every one of them lowers the precision of flagged listings that the real-text issue bounds
#: (figures and the choice: models/MODEL_CARD.md, "A stricter review threshold").
SCORE_ONLY_LAWFUL_BUDGET = 0.001


def pretraining_texts(
    corpora: str | Path, pretrain_dir: str | Path | None = DEFAULT_PRETRAIN_DIR
) -> list[str]:
    """Unlabelled lines for masked-LM pre-training: every corpus line and every line of the package texts,
    minus the generated test set's corpus lines (hash-held-out) and the real test set's lines and their
    near duplicates (so no test text is seen, even unlabelled)."""
    from .realdata import is_held_out

    lines = [t for src in load_corpora(Path(corpora)).values() for t, _ in src]
    lines = [t for t in lines if stable_hash(t) >= HELD_OUT_FRACTION]
    if pretrain_dir is not None and Path(pretrain_dir).is_dir():
        for path in sorted(Path(pretrain_dir).glob("*.txt")):
            lines.extend(ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip())
    return [t for t in lines if not is_held_out(t)]


def real_figures(
    model_dir: str | Path,
    threads: int = 1,
    max_lawful_rate: float = SCORE_ONLY_LAWFUL_BUDGET,
    with_test: bool = True,
) -> dict[str, Any]:
    """Real calib and test reports for a checkpoint, and the review threshold chosen on real calib:
    the lowest score whose flagged share of the lawful labelled listings there has a one-sided 90%
    bootstrap upper bound of at most ``max_lawful_rate`` (``threshold_with_margin``; the plain
    point-share threshold is recorded as ``review_threshold_point_rule``).
    ``with_test=False``: calib only (experiments; the real test set is read once per final candidate)."""
    from .realdata import real_report, real_split, threshold_for_lawful_rate, threshold_with_margin

    rm = load_model(model_dir)
    out: dict[str, Any] = {}
    calib = real_split("calib", binary=False)
    cs = rm.score_texts([r.example.text for r in calib], threads=threads)
    lawful = [(s, r.key) for s, r in zip(cs, calib, strict=True) if r.kind == "lines" and r.label == "lawful"]
    thr, upper = threshold_with_margin([s for s, _ in lawful], [k for _, k in lawful], max_lawful_rate)
    out["review_threshold"] = thr
    out["review_threshold_upper_share"] = upper
    out["review_threshold_point_rule"] = threshold_for_lawful_rate([s for s, _ in lawful], max_lawful_rate)
    out["calib"] = real_report(cs, calib, threshold=thr)
    if not with_test:
        return out
    test = real_split("test", binary=False)
    out["test"] = real_report(
        rm.score_texts([r.example.text for r in test], threads=threads), test, threshold=thr
    )
    return out


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
        return [
            Example(
                text=e.text,
                label=e.label,
                family=e.family or ("decision" if e.label else "lawful"),
                group="decisions",
                source="decisions",
                split="train",
            )
            for e in read_jsonl(path)
        ]
    import sqlalchemy as sa

    engine = sa.create_engine(source)
    try:
        names = set(sa.inspect(engine).get_table_names()) | set(sa.inspect(engine).get_view_names())
        if DECISIONS_TABLE not in names:
            raise QueueExportPending(
                f"{engine.url.render_as_string(hide_password=True)} has no table or view {DECISIONS_TABLE!r} "
                "(text, label); the review-queue export for training is not built yet"
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT text, label FROM {DECISIONS_TABLE}")).all()
    finally:
        engine.dispose()
    return [
        Example.from_dict(
            {
                "text": r[0],
                "label": r[1],
                "family": "decision",
                "group": "decisions",
                "source": "decisions",
                "split": "train",
            }
        )
        for r in rows
    ]


def _tagged(tagger: EntityTagger, examples: Sequence[Example]) -> list[Example]:
    """The examples with their entity tags (entities.py), as RiskModel.prepare reads texts."""
    from dataclasses import replace as _replace

    return [_replace(e, text=tagger.tag(e.text)) for e in examples]


def train_model(
    train: Sequence[Example],
    calib: Sequence[Example],
    out_dir: str | Path,
    cfg: TrainConfig,
    spec: ModelSpec | None = None,
    mlm_texts: Sequence[str] = (),
    vocab_texts: Sequence[str] = (),
    progress: Callable[[str], None] = print,
    init: str | Path | None = None,
) -> dict[str, Any]:
    """Build the vocabulary, (optionally) pre-train, fine-tune, save, calibrate; returns the run record.

    ``init``: start from this checkpoint's tokenizer and weights instead of a new vocabulary and random
    weights (continued pre-training and fine-tuning; the shape is the checkpoint's)."""
    spec = spec or ModelSpec()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    if cfg.fold:
        from dataclasses import replace as _replace

        from .textfold import fold_all

        # Fold once up front; calibration.json records it, so load_model folds the same way.
        train = [_replace(e, text=t) for e, t in zip(train, fold_all([e.text for e in train]), strict=True)]
        calib = [_replace(e, text=t) for e, t in zip(calib, fold_all([e.text for e in calib]), strict=True)]
        mlm_texts = fold_all(list(mlm_texts))
    entities: list[tuple[str, str]] = []
    if cfg.entities:
        # Tagged once up front, after folding, as RiskModel.prepare does (calibration.json records it).
        entities = lexicon_entities(rules_dir() / "lexicons", cfg.entity_kinds)
        tagger = EntityTagger(entities)
        train, calib, mlm_texts = _tagged(tagger, train), _tagged(tagger, calib), tagger.tag_all(mlm_texts)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    if init is not None:
        # Warm start: the tokenizer and weights of an existing checkpoint (its shape wins over ``spec``).
        from transformers import AutoTokenizer, BertForSequenceClassification

        tokenizer = AutoTokenizer.from_pretrained(str(init), local_files_only=True)
        model = BertForSequenceClassification.from_pretrained(str(init), local_files_only=True).float()
        tokens = list(tokenizer.get_vocab())
        c = model.config
        spec = ModelSpec(
            hidden_size=c.hidden_size,
            num_hidden_layers=c.num_hidden_layers,
            num_attention_heads=c.num_attention_heads,
            intermediate_size=c.intermediate_size,
            max_chars=c.max_position_embeddings - 2,
        )
    else:
        tokens = build_vocab(corpus_texts=[e.text for e in train] + list(mlm_texts), extra_texts=vocab_texts)
        tokenizer = make_tokenizer(tokens, spec.max_chars)
        model = new_model(tokenizer, spec, cfg.seed)
    added = add_tag_tokens(tokenizer, model, cfg.entity_kinds) if cfg.entities else 0
    if added:
        tokens = list(tokenizer.get_vocab())
    pre = _pretrain_record(init)
    if pre is not None and pre.get("fold", "") != cfg.fold:
        raise ValueError(
            f"{init} was pre-trained with fold {pre.get('fold')!r}; fine-tuning with {cfg.fold!r} "
            "would read characters its encoder never saw"
        )
    record: dict[str, Any] = {
        "model": f"{MODEL_NAME}@{MODEL_VERSION}",
        "spec": spec.as_dict(),
        "vocab_size": len(tokens),
        "n_train": len(train),
        "n_calib": len(calib),
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "mlm_steps": cfg.mlm_steps,
        "threads": cfg.threads,
        "init": str(init) if init is not None else None,
        "fold": cfg.fold,
        "entities": {
            "file": cfg.entities,
            "kinds": list(cfg.entity_kinds),
            "names": len(entities),
            "tokens_added": added,
        }
        if cfg.entities
        else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    progress(
        f"vocab {len(tokens)} tokens; {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"
    )
    if pre is not None:
        # Fine-tuning an encoder that pretrain_encoder() wrote: its cost belongs to this model's cost.
        record["pretrain"] = {k: v for k, v in pre.items() if k != "mlm_curve"}
        record["pretrain"]["curve"] = [
            (p["step"], round(p.get("eval_loss", float("nan")), 4)) for p in pre.get("mlm_curve", [])
        ]
    if cfg.mlm_steps and mlm_texts:
        record.update(pretrain_mlm(model, tokenizer, mlm_texts, cfg, progress))
    record.update(fine_tune(model, tokenizer, train, cfg, spec.max_chars, progress))
    cal = save_and_calibrate(model, tokenizer, out_dir, calib, cfg, spec.max_chars, entities=entities)
    record["calibration"] = {"method": cal.method, "a": cal.a, "b": cal.b, **cal.info}
    record["history"] = cfg.history
    record["total_seconds"] = time.perf_counter() - t0
    record["cpu_seconds"] = time.process_time() - cpu0
    if pre is not None:
        record["total_seconds_with_pretrain"] = record["total_seconds"] + float(pre.get("total_seconds", 0))
        record["cpu_seconds_with_pretrain"] = record["cpu_seconds"] + float(pre.get("cpu_seconds", 0))
    write_training_record(out_dir, record)
    return record


PRETRAIN_RECORD = "pretrain.json"


def _pretrain_record(init: str | Path | None) -> dict[str, Any] | None:
    if init is None or not Path(init, PRETRAIN_RECORD).exists():
        return None
    rec: dict[str, Any] = json.loads(Path(init, PRETRAIN_RECORD).read_text(encoding="utf-8"))
    return rec


def pretrain_encoder(
    out_dir: str | Path,
    cfg: TrainConfig,
    corpora: str | Path,
    vocab_data: Sequence[str | Path] = (),
    spec: ModelSpec | None = None,
    pretrain_dir: str | Path | None = DEFAULT_PRETRAIN_DIR,
    lexicons: str | Path = DEFAULT_LEXICONS,
    snapshot_steps: Sequence[int] = (),
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Masked-LM pre-training only: a new vocabulary and encoder, saved (fp32, with a seeded untrained
    classification head) as a checkpoint that ``train_model(..., init=out_dir)`` fine-tunes, so several
    fine-tuning recipes can share one pre-training. ``vocab_data``: training JSONL files whose characters
    the vocabulary must cover (pass the largest recipe's train.jsonl). ``snapshot_steps``: also save the
    encoder at these steps, as ``out_dir/step-N`` (the learning rate there has not decayed to zero yet).
    Writes ``pretrain.json`` (settings, loss curve on held-out lines, wall and CPU seconds)."""
    from transformers import BertForSequenceClassification

    spec = spec or ModelSpec()
    out = Path(out_dir)
    t0, cpu0 = time.perf_counter(), time.process_time()
    mlm_texts = pretraining_texts(corpora, pretrain_dir)
    train_texts = [e.text for path in vocab_data for e in read_jsonl(Path(path))]
    lex = Path(lexicons)
    main_claims, extra_claims = claim_files(lex)
    vocab_texts = lexicon_texts([main_claims, *extra_claims, lex / "templates.yaml"]) if lex.exists() else []
    if cfg.fold:
        from .textfold import fold_all

        mlm_texts, train_texts, vocab_texts = (
            fold_all(mlm_texts),
            fold_all(train_texts),
            fold_all(vocab_texts),
        )
    torch.set_num_threads(cfg.threads)
    tokens = build_vocab(corpus_texts=train_texts + mlm_texts, extra_texts=vocab_texts)
    tokenizer = make_tokenizer(tokens, spec.max_chars)
    model = new_model(tokenizer, spec, cfg.seed)
    progress(
        f"masked-LM pre-training on {len(mlm_texts)} unlabelled lines; vocab {len(tokens)} tokens; "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters"
    )
    record: dict[str, Any] = {
        "spec": spec.as_dict(),
        "vocab_size": len(tokens),
        "mlm_lines": len(mlm_texts),
        "vocab_data": [str(p) for p in vocab_data],
        "seed": cfg.seed,
        "mlm_steps": cfg.mlm_steps,
        "mlm_batch_size": cfg.mlm_batch_size,
        "mlm_max_chars": cfg.mlm_max_chars,
        "threads": cfg.threads,
        "fold": cfg.fold,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }

    def save(dest: Path, extra: dict[str, Any]) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        # A copy, so that saving never touches the weights being trained.
        clone = BertForSequenceClassification(model.config)
        clone.load_state_dict(model.state_dict())
        clone.save_pretrained(str(dest), safe_serialization=True)
        tokenizer.save_pretrained(str(dest))
        rec = {
            **record,
            **extra,
            "total_seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - cpu0,
        }
        (dest / PRETRAIN_RECORD).write_text(
            json.dumps(rec, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )

    curve_so_far: list[dict[str, float]] = []

    def snapshot(step: int) -> None:
        save(
            out / f"step-{step}",
            {"mlm_steps_done": step, "snapshot_of": cfg.mlm_steps, "mlm_curve": list(curve_so_far)},
        )
        progress(f"saved the encoder after {step} steps to {out / f'step-{step}'}")

    res = pretrain_mlm(
        model,
        tokenizer,
        mlm_texts,
        cfg,
        progress,
        snapshot=snapshot,
        snapshot_steps=snapshot_steps,
        curve_sink=curve_so_far,
    )
    record.update(res)
    record["mlm_steps_done"] = cfg.mlm_steps
    save(out, {})
    return {**record, "total_seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0}


def soup_models(
    members: Sequence[str | Path],
    data_dir: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    score_tests: bool = False,
) -> dict[str, Any]:
    """A uniform weight average ("model soup") of fine-tuned checkpoints that share one pre-trained
    encoder and tokenizer (seeds of one recipe: same start, other data order and dropout), saved and
    calibrated like a trained model on the data's real calib part. One model's cost per listing, with
    less of the seed-to-seed spread of a single run. Refuses members with another vocabulary, shape or
    folding."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    t0, cpu0 = time.perf_counter(), time.process_time()
    paths = [Path(m) for m in members]
    if len(paths) < 2:
        raise ValueError("a soup needs at least two checkpoints")
    folds = {
        json.loads(Path(p, "calibration.json").read_text(encoding="utf-8")).get("fold", "") for p in paths
    }
    vocabs = {Path(p, "tokenizer.json").read_text(encoding="utf-8") for p in paths}
    if len(folds) != 1 or len(vocabs) != 1:
        raise ValueError("soup members must share folding and vocabulary (fine-tuned from one encoder)")
    if cfg.fold not in folds:
        raise ValueError(f"members were trained with fold {folds}, not {cfg.fold!r}")
    tagged = {
        json.loads(Path(p, "calibration.json").read_text(encoding="utf-8")).get("entities", "") for p in paths
    }
    if len(tagged) != 1:
        raise ValueError("soup members must share their entity tags")
    cfg.entities = tagged.pop()
    entities = read_entities(paths[0] / cfg.entities) if cfg.entities else []
    if cfg.entities and any(read_entities(p / cfg.entities) != entities for p in paths[1:]):
        raise ValueError("soup members must share their entity lists")
    torch.set_num_threads(cfg.threads)
    models = [
        BertForSequenceClassification.from_pretrained(str(p), local_files_only=True).float() for p in paths
    ]
    state = models[0].state_dict()
    avg = {
        k: (torch.stack([m.state_dict()[k].float() for m in models]).mean(0)).to(v.dtype)
        if v.is_floating_point()
        else v
        for k, v in state.items()
    }
    model = models[0]
    model.load_state_dict(avg)
    tokenizer = AutoTokenizer.from_pretrained(str(paths[0]), local_files_only=True)
    calib = read_jsonl(Path(data_dir) / "calib_real.jsonl")
    if cfg.fold:
        from dataclasses import replace as _replace

        from .textfold import fold_all

        calib = [_replace(e, text=t) for e, t in zip(calib, fold_all([e.text for e in calib]), strict=True)]
    if entities:
        calib = _tagged(EntityTagger(entities), calib)
    c = model.config
    cal = save_and_calibrate(
        model, tokenizer, out_dir, calib, cfg, c.max_position_embeddings - 2, entities=entities
    )
    first = json.loads(Path(paths[0], "training.json").read_text(encoding="utf-8"))
    record: dict[str, Any] = {
        "model": f"{MODEL_NAME}@{MODEL_VERSION}",
        "soup_of": [str(p) for p in paths],
        "soup_member_seeds": [
            json.loads(Path(p, "training.json").read_text(encoding="utf-8")).get("seed") for p in paths
        ],
        "spec": first.get("spec"),
        "vocab_size": first.get("vocab_size"),
        "fold": cfg.fold,
        "init": first.get("init"),
        "pretrain": first.get("pretrain"),
        "member_training": {
            k: first.get(k) for k in ("n_train", "n_calib", "epochs", "batch_size", "lr", "threads")
        },
        "n_calib": len(calib),
        "calibration": {"method": cal.method, "a": cal.a, "b": cal.b, **cal.info},
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    record["total_seconds"] = time.perf_counter() - t0
    record["cpu_seconds"] = time.process_time() - cpu0
    record["member_seconds"] = [
        json.loads(Path(p, "training.json").read_text(encoding="utf-8")).get("total_seconds") for p in paths
    ]
    record["real"] = real_figures(out_dir, threads=cfg.threads, with_test=score_tests)
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
    pretrain_dir: str | Path | None = DEFAULT_PRETRAIN_DIR,
    init: str | Path | None = None,
    score_tests: bool = True,
) -> dict[str, Any]:
    """Train on the files written by scripts/build_training_set.py, plus reviewer decisions if given.

    ``score_tests=False`` skips the generated test split and the real test set (only the real calib
    figures are recorded): for experiments, where model selection must not see test figures.

    With ``cfg.mlm_steps`` the encoder is first pre-trained on unlabelled corpus lines: every line of
    ``corpora`` whose hash puts it in the training split (never a held-out line), or, without
    ``corpora``, the corpus lines already in train.jsonl.
    """
    cfg = cfg or TrainConfig()
    data_dir = Path(data_dir)
    if not (data_dir / "train.jsonl").exists():
        raise FileNotFoundError(f"{data_dir}/train.jsonl not found; run scripts/build_training_set.py first")
    train = read_jsonl(data_dir / "train.jsonl")
    # Calibrate on the real dev hold-out when the builder wrote one (the probabilities must hold on real
    # listings); the generated calib split is the fallback of the generated-only recipe.
    real_calib = data_dir / "calib_real.jsonl"
    calib = read_jsonl(real_calib if real_calib.exists() else data_dir / "calib.jsonl")
    if decisions:
        extra = load_decisions(decisions)
        progress(f"adding {len(extra)} reviewer decisions from {decisions}")
        train = [*train, *extra]
    mlm_texts: list[str] = []
    if cfg.mlm_steps:
        if corpora is not None:
            mlm_texts = pretraining_texts(corpora, pretrain_dir)
        else:
            mlm_texts = [e.text for e in train if e.source.startswith("corpus:")]
        progress(f"masked-LM pre-training on {len(mlm_texts)} unlabelled lines")
    lex = Path(lexicons)
    main_claims, extra_claims = claim_files(lex)
    vocab_texts = lexicon_texts([main_claims, *extra_claims, lex / "templates.yaml"]) if lex.exists() else []
    record = train_model(
        train,
        calib,
        out_dir,
        cfg,
        spec=spec,
        mlm_texts=mlm_texts,
        vocab_texts=vocab_texts,
        progress=progress,
        init=init,
    )
    test_path = data_dir / "test.jsonl"
    if test_path.exists() and score_tests:
        test = read_jsonl(test_path)
        rm = load_model(out_dir)
        m = compute_metrics(rm.score_texts([e.text for e in test], threads=cfg.threads), test)
        record["test"] = {
            k: m[k]
            for k in (
                "average_precision",
                "roc_auc",
                "ece",
                "recall_at_fpr",
                "paraphrase_recall_at_fpr",
                "precision",
                "recall",
            )
        }
        write_training_record(out_dir, record)
    if real_calib.exists():
        record["real"] = real_figures(out_dir, threads=cfg.threads, with_test=score_tests)
    Path(out_dir, "training.json").write_text(
        json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return record
