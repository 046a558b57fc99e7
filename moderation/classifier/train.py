"""Training from scratch: optional masked-language pre-training, fine-tuning, calibration, saving.

Everything is seeded and single-process so a run is reproducible on the 2-core CPU it is meant for;
texts are tokenised once up front and batched by length so that padding does not waste the budget.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import BertForMaskedLM, BertForSequenceClassification, PreTrainedTokenizerBase

from .calibration import Calibration, choose_calibration, expected_calibration_error
from .config import MODEL_NAME, MODEL_VERSION, ModelSpec
from .data import Example, length_bucketed_batches
from .entities import DEFAULT_KINDS, TAGS, write_entities
from .predict import load_model

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Optimisation settings; defaults are the ones used for the shipped model."""

    epochs: int = 3
    batch_size: int = 64
    lr: float = 8e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    seed: int = 13
    threads: int = 2  # the 2-core target machine; intra-op threads for training
    mlm_steps: int = 0
    mlm_batch_size: int = 64
    mlm_max_chars: int = 128
    #: Masked-LM learning rate (None: ``lr``).
    mlm_lr: float | None = None
    #: Lines held out of masked-LM training to measure its loss on (fixed masks), 0 = none.
    mlm_eval_lines: int = 512
    log_every: int = 100
    fp16_weights: bool = True
    #: Character folding applied to every text in training and, through calibration.json, at prediction.
    fold: str = ""
    #: Entity tags (entities.py): the file name the names are saved under in the model directory, "" none.
    entities: str = ""
    #: The kinds of names tagged (entities.LEXICONS).
    entity_kinds: tuple[str, ...] = DEFAULT_KINDS
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_chars: int) -> list[list[int]]:
    """Token ids per text (with [CLS]/[SEP]), texts cut to max_chars characters like at prediction."""
    enc = tokenizer([t[:max_chars] for t in texts], truncation=True, max_length=max_chars + 2)
    return [list(ids) for ids in enc["input_ids"]]


def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def _schedule(total: int, warmup_fraction: float) -> Callable[[int], float]:
    warm = max(1, int(total * warmup_fraction))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return f


def _mask(
    ids: torch.Tensor,
    attn: torch.Tensor,
    special: torch.Tensor,
    mask_id: int,
    vocab_size: int,
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT masking: 15% of the non-special tokens are chosen; of those 80% become [MASK], 10% a random
    token, 10% stay. Returns (inputs, chosen positions, targets)."""
    cand = attn.bool() & ~torch.isin(ids, special)
    chosen = cand & (torch.rand(ids.shape, generator=gen) < 0.15)
    targets = ids[chosen]
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    inputs[chosen & (r < 0.8)] = mask_id
    rand_pos = chosen & (r >= 0.8) & (r < 0.9)
    inputs[rand_pos] = torch.randint(len(special), vocab_size, (int(rand_pos.sum()),), generator=gen)
    return inputs, chosen, targets


def pretrain_mlm(
    model: BertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    cfg: TrainConfig,
    progress: Callable[[str], None] = print,
    snapshot: Callable[[int], None] | None = None,
    snapshot_steps: Sequence[int] = (),
    curve_sink: list[dict[str, float]] | None = None,
) -> dict[str, object]:
    """Masked-language pre-training of ``model``'s encoder on unlabelled text, in place.

    The MLM head is evaluated only at masked positions (15% of tokens), which makes the 10k-entry output
    projection affordable on CPU. ``cfg.mlm_eval_lines`` lines (a seeded sample) are held out and scored
    with fixed masks every ``cfg.log_every`` steps, so the curve measures learning, not batch noise.
    ``snapshot(step)`` is called at ``snapshot_steps`` with ``model.bert`` holding the weights so far.
    Returns the loss at the start and at the end, the curve (also appended to ``curve_sink`` as it grows),
    and wall and CPU seconds.
    """
    mlm = BertForMaskedLM(model.config)
    mlm.bert.load_state_dict(model.bert.state_dict(), strict=False)
    mlm.train()
    rng = random.Random(cfg.seed + 1)
    seqs = [s for s in encode(tokenizer, texts, cfg.mlm_max_chars) if len(s) > 4]
    eval_seqs: list[list[int]] = []
    if cfg.mlm_eval_lines and len(seqs) > 10 * cfg.mlm_eval_lines:
        order = list(range(len(seqs)))
        random.Random(cfg.seed + 2).shuffle(order)
        held = set(order[: cfg.mlm_eval_lines])
        eval_seqs = [seqs[i] for i in sorted(held)]
        seqs = [s for i, s in enumerate(seqs) if i not in held]
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    mask_id, pad_id = tokenizer.mask_token_id, tokenizer.pad_token_id
    vocab_size = model.config.vocab_size
    # Fixed masks for the held-out lines: the same positions and replacements at every evaluation.
    eval_batches = []
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    for s in range(0, len(eval_seqs), cfg.mlm_batch_size):
        ids, attn = pad_batch(eval_seqs[s : s + cfg.mlm_batch_size], pad_id)
        inputs, chosen, targets = _mask(ids, attn, special, mask_id, vocab_size, gen)
        eval_batches.append((inputs, attn, chosen, targets))

    def eval_loss() -> float:
        if not eval_batches:
            return float("nan")
        mlm.eval()
        tot, n = 0.0, 0
        with torch.no_grad():
            for inputs, attn, chosen, targets in eval_batches:
                hidden = mlm.bert(input_ids=inputs, attention_mask=attn).last_hidden_state
                tot += float(nn.functional.cross_entropy(mlm.cls(hidden[chosen]), targets, reduction="sum"))
                n += len(targets)
        mlm.train()
        return tot / max(1, n)

    lr = cfg.mlm_lr if cfg.mlm_lr is not None else cfg.lr
    opt = torch.optim.AdamW(mlm.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg.mlm_steps, cfg.warmup_fraction))
    step, first, recent = 0, float("nan"), []
    curve: list[dict[str, float]] = curve_sink if curve_sink is not None else []
    curve.append({"step": 0, "eval_loss": eval_loss()})
    snaps = set(snapshot_steps)
    t0, c0 = time.perf_counter(), time.process_time()
    while step < cfg.mlm_steps:
        for idx in length_bucketed_batches([len(s) for s in seqs], cfg.mlm_batch_size, rng):
            if step >= cfg.mlm_steps:
                break
            ids, attn = pad_batch([seqs[i] for i in idx], pad_id)
            inputs, chosen, targets = _mask(ids, attn, special, mask_id, vocab_size)
            if not chosen.any():
                continue
            hidden = mlm.bert(input_ids=inputs, attention_mask=attn).last_hidden_state
            logits = mlm.cls(hidden[chosen])
            loss = nn.functional.cross_entropy(logits, targets)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(mlm.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            recent.append(loss.item())
            if step == 1:
                first = recent[0]
            if step % cfg.log_every == 0:
                point = {
                    "step": step,
                    "train_loss": float(np.mean(recent[-cfg.log_every :])),
                    "eval_loss": eval_loss(),
                    "wall_s": time.perf_counter() - t0,
                    "cpu_s": time.process_time() - c0,
                }
                curve.append(point)
                progress(
                    f"mlm step {step}/{cfg.mlm_steps} loss {point['train_loss']:.3f} held-out "
                    f"{point['eval_loss']:.3f} ({point['wall_s']:.0f}s wall, {point['cpu_s']:.0f}s cpu)"
                )
            if step in snaps and snapshot is not None:
                model.bert.load_state_dict(mlm.bert.state_dict(), strict=False)
                snapshot(step)
    model.bert.load_state_dict(mlm.bert.state_dict(), strict=False)
    return {
        "mlm_loss_first": first,
        "mlm_loss_last": float(np.mean(recent[-50:])) if recent else first,
        "mlm_eval_loss_last": eval_loss(),
        "mlm_eval_lines": len(eval_seqs),
        "mlm_lr": lr,
        "mlm_curve": curve,
        "mlm_seconds": time.perf_counter() - t0,
        "mlm_cpu_seconds": time.process_time() - c0,
    }


def fine_tune(
    model: BertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    train: Sequence[Example],
    cfg: TrainConfig,
    max_chars: int,
    progress: Callable[[str], None] = print,
) -> dict[str, float]:
    """Cross-entropy fine-tuning with AdamW and linear warm-up/decay; returns timing and final loss."""
    rng = random.Random(cfg.seed)
    seqs = encode(tokenizer, [e.text for e in train], max_chars)
    labels = torch.tensor([e.label for e in train], dtype=torch.long)
    lengths = [len(s) for s in seqs]
    steps_per_epoch = math.ceil(len(seqs) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(total, cfg.warmup_fraction))
    model.train()
    step, losses = 0, []
    t0, c0 = time.perf_counter(), time.process_time()
    for epoch in range(cfg.epochs):
        for idx in length_bucketed_batches(lengths, cfg.batch_size, rng):
            ids, attn = pad_batch([seqs[i] for i in idx], tokenizer.pad_token_id)
            out = model(input_ids=ids, attention_mask=attn, labels=labels[idx])
            opt.zero_grad()
            out.loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            losses.append(out.loss.item())
            if step % cfg.log_every == 0:
                rate = step * cfg.batch_size / (time.perf_counter() - t0)
                progress(
                    f"epoch {epoch + 1}/{cfg.epochs} step {step}/{total} "
                    f"loss {np.mean(losses[-cfg.log_every :]):.4f} ({rate:.0f} ex/s)"
                )
        cfg.history.append({"epoch": epoch + 1, "loss": float(np.mean(losses[-steps_per_epoch:]))})
    model.eval()
    return {
        "train_seconds": time.perf_counter() - t0,
        "train_cpu_seconds": time.process_time() - c0,
        "final_loss": float(np.mean(losses[-50:])),
        "steps": step,
    }


def save_and_calibrate(
    model: BertForSequenceClassification,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | Path,
    calib: Sequence[Example],
    cfg: TrainConfig,
    max_chars: int,
    extra_info: dict[str, object] | None = None,
    entities: Sequence[tuple[str, str]] = (),
) -> Calibration:
    """Save weights (fp16 on disk to halve the artifact) and tokenizer, then fit Platt scaling on the
    reloaded model, so the calibration describes exactly the weights that ship. ``entities``: the names
    the texts were tagged with (``cfg.entities`` names their file); ``calib`` is already tagged."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.entities:
        write_entities(out / cfg.entities, entities)
    to_save = model
    if cfg.fp16_weights:
        to_save = BertForSequenceClassification(model.config)
        to_save.load_state_dict(model.state_dict())
        to_save = to_save.half()
    to_save.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    # A stale calibration from an earlier run must not be picked up while we measure raw margins.
    (out / "calibration.json").unlink(missing_ok=True)
    rm = load_model(out)
    margins = rm.margins([e.text for e in calib], threads=cfg.threads)
    y = np.array([e.label for e in calib])
    cal, cv = choose_calibration(margins, y, seed=cfg.seed)
    raw = 1 / (1 + np.exp(-margins))
    cal.model, cal.positive_index, cal.max_chars = f"{MODEL_NAME}@{MODEL_VERSION}", 1, max_chars
    cal.fold = cfg.fold
    cal.entities = cfg.entities
    real = any(e.source.startswith("real:") for e in calib)
    cal.info = {
        "fitted_on": "real dev hold-out (cases by source, labelled lines by near-duplicate key)"
        if real
        else "calib split (held-out paraphrase families and templates)",
        "n": len(calib),
        "chosen_by": "lower 2-fold cross-validated ECE (15 equal-width bins) on calib",
        **cv,
        "ece_uncalibrated": expected_calibration_error(raw, y),
        "ece_calibrated_on_calib": expected_calibration_error(cal.apply(margins), y),
        **(extra_info or {}),
    }
    cal.save(out)
    return cal


def cal_apply(a: float, b: float, margins: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(a * margins + b)))


def new_model(
    tokenizer: PreTrainedTokenizerBase, spec: ModelSpec, seed: int
) -> BertForSequenceClassification:
    """A randomly initialised classifier for this tokenizer's vocabulary (seeded)."""
    seed_everything(seed)
    config = spec.bert_config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)
    return BertForSequenceClassification(config)


def write_training_record(out_dir: str | Path, record: dict[str, object]) -> None:
    """training.json: the settings and timings of the run that produced the directory."""
    Path(out_dir, "training.json").write_text(
        json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


def add_tag_tokens(
    tokenizer: PreTrainedTokenizerBase,
    model: BertForSequenceClassification,
    kinds: Sequence[str] = DEFAULT_KINDS,
) -> int:
    """Give the tag characters of ``kinds`` (entities.py) tokens of their own, each starting from the mean of
    the existing embeddings (deterministic, so members of one recipe stay soup-compatible); returns how
    many were added. Added tokens are matched before BERT's normaliser, which would drop them."""
    from tokenizers import AddedToken

    missing = [TAGS[k] for k in kinds if TAGS[k] not in tokenizer.get_vocab()]
    if not missing:
        return 0
    tokenizer.add_tokens([AddedToken(t, normalized=False, single_word=False) for t in missing])
    old = model.get_input_embeddings().weight.detach().clone()
    model.resize_token_embeddings(len(tokenizer))
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        weight[: old.shape[0]] = old
        weight[old.shape[0] :] = old.mean(0)
    return len(missing)
