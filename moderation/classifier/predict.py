"""Loading a checkpoint directory and scoring listing texts: the interface the checker calls.

Any local directory holding a transformers sequence-classification checkpoint and its tokenizer loads
through the same path (AutoModelForSequenceClassification + AutoTokenizer, local files only), so a
retrained or larger model can be swapped in by pointing MODERATION_MODEL_DIR at it.

When onnxruntime is installed and the directory holds a checked ``model.onnx`` (scripts/export_onnx.py),
the forward pass runs in ONNX Runtime instead of PyTorch; see ort_backend.py for when that happens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from .calibration import Calibration
from .config import MAX_CHARS, default_model_dir, listing_text
from .data import length_bucketed_batches
from .errors import ModelLoadError
from .ort_backend import (
    CHECK_TEXTS,
    ENV_BACKEND,
    MAX_PROB_DIFF,
    ONNX_FILE,
    OrtEncoder,
    max_prob_diff,
    recorded_check_passed,
)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (the setting is process-global, so restore it)."""
    if not threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class RiskModel:
    """A loaded classifier: calibrated P(listing violates the law) for each text."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: object,
        calibration: Calibration,
        name: str,
        path: Path,
        max_chars: int = MAX_CHARS,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.calibration = calibration
        self.name = name
        self.path = path
        self.max_chars = max_chars
        self.load_seconds = 0.0
        #: ONNX Runtime encoder when that backend is in use (see load_model), else None (PyTorch).
        self.encoder: OrtEncoder | None = None

    @property
    def backend(self) -> str:
        return "onnx" if self.encoder is not None else "torch"

    def use_torch(self) -> None:
        """Score with PyTorch from now on (drops the ONNX Runtime encoder, if any)."""
        self.encoder = None

    def margins(self, texts: Sequence[str], batch_size: int = 64, threads: int | None = None) -> np.ndarray:
        """Raw logit margins (positive minus the rest), before calibration; used to fit calibration."""
        clipped = [(t or "")[: self.max_chars] for t in texts]
        if self.calibration.fold:
            from .textfold import fold_all

            clipped = fold_all(clipped)
        out = np.zeros(len(clipped), dtype=np.float64)
        if not clipped:
            return out
        pos = self.calibration.positive_index
        if self.encoder is not None:
            for idx in length_bucketed_batches([len(t) for t in clipped], batch_size):
                enc = self.tokenizer(  # type: ignore[operator]
                    [clipped[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_chars + 2,
                    return_tensors="np",
                )
                logits = torch.from_numpy(
                    self.encoder.logits(enc["input_ids"], enc["attention_mask"], threads)
                )
                out[idx] = _margin(logits, pos).double().numpy()
            return out
        with torch_threads(threads), torch.inference_mode():
            for idx in length_bucketed_batches([len(t) for t in clipped], batch_size):
                enc = self.tokenizer(  # type: ignore[operator]
                    [clipped[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_chars + 2,
                    return_tensors="pt",
                )
                logits = self.model(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
                ).logits.float()
                out[idx] = _margin(logits, pos).double().numpy()
        return out

    def score_texts(self, texts: list[str], batch_size: int = 64, threads: int | None = None) -> list[float]:
        """Calibrated risk probabilities in input order.

        Texts are cut to ``max_chars`` characters, sorted by length and padded per batch (so a bulk run
        does not pad every listing to the longest one), and scored under inference mode. The same input
        list always yields the same scores.
        """
        return [float(p) for p in self.calibration.apply(self.margins(texts, batch_size, threads))]

    def score_listings(
        self, listings: Sequence[object], batch_size: int = 64, threads: int | None = None
    ) -> list[float]:
        """Scores for Listing objects (or their dicts), with the category tag the model was trained on.

        Prefer this over score_texts(listing.text()) when the category is known: claims such as
        有助于改善睡眠 are lawful on registered health food and unlawful on ordinary food.
        """
        texts = []
        for item in listings:
            d = item if isinstance(item, dict) else item.model_dump()  # type: ignore[attr-defined]
            texts.append(
                listing_text(
                    d.get("title") or "",
                    d.get("description") or "",
                    d.get("category"),
                    d.get("attributes") or {},
                )
            )
        return self.score_texts(texts, batch_size=batch_size, threads=threads)

    def score_text(self, text: str) -> float:
        """One listing's risk; the single-listing path of the HTTP API."""
        return self.score_texts([text], batch_size=1)[0]

    def __repr__(self) -> str:
        return f"RiskModel({self.name!r}, path={str(self.path)!r})"


def _margin(logits: torch.Tensor, pos: int) -> torch.Tensor:
    """Logit of the positive label minus the log-sum-exp of the others."""
    if logits.shape[-1] == 1:
        return logits[:, 0]
    if logits.shape[-1] == 2:  # the common case; logsumexp of one logit is that logit
        return logits[:, pos] - logits[:, 1 - pos]
    others = torch.cat([logits[:, :pos], logits[:, pos + 1 :]], dim=-1)
    return logits[:, pos] - torch.logsumexp(others, dim=-1)


def _attach_onnx(rm: RiskModel, backend: str) -> None:
    """Switch ``rm`` to ONNX Runtime if a checked model.onnx is present and agrees with PyTorch here."""
    path = rm.path / ONNX_FILE
    if backend == "torch" or not path.exists():
        if backend == "onnx":
            raise ModelLoadError(f"{rm.path}: backend 'onnx' requested but there is no {ONNX_FILE}")
        return
    reason = ""
    try:
        if not recorded_check_passed(rm.path):
            reason = "no passing onnx_check.json for this model.onnx (run scripts/export_onnx.py)"
        else:
            enc = OrtEncoder(path)
            ref = rm.score_texts(CHECK_TEXTS)
            rm.encoder = enc
            diff = max_prob_diff(rm.score_texts(CHECK_TEXTS), ref)
            if diff > MAX_PROB_DIFF:
                rm.encoder = None
                reason = f"scores differ from PyTorch by {diff:.2e} on the check set"
    except ImportError:
        reason = "onnxruntime is not installed"
    except Exception as exc:  # a corrupt or foreign graph must not stop the checker: fall back to torch
        rm.encoder = None
        reason = f"{type(exc).__name__}: {exc}"
    if reason:
        if backend == "onnx":
            raise ModelLoadError(f"{rm.path}: cannot use {ONNX_FILE}: {reason}")
        log.warning("%s: scoring with PyTorch, not %s: %s", rm.path, ONNX_FILE, reason)


def _positive_index(model: PreTrainedModel) -> int:
    label2id = {str(k).lower(): int(v) for k, v in (model.config.label2id or {}).items()}
    for key in ("risky", "violation", "unlawful", "positive", "label_1"):
        if key in label2id:
            return label2id[key]
    return 1 if model.config.num_labels > 1 else 0


def load_model(path: str | Path | None = None, backend: str | None = None) -> RiskModel:
    """Load a classifier directory (default: $MODERATION_MODEL_DIR or the shipped models/risk-classifier).

    ``backend``: "auto" (default, or $MODERATION_CLASSIFIER_BACKEND) uses ONNX Runtime when a checked
    model.onnx sits next to the weights and matches PyTorch at load time, else PyTorch; "torch" never
    uses the graph; "onnx" raises ModelLoadError when the graph cannot be used.

    Raises ModelLoadError naming the directory and the problem when it is missing, incomplete or
    corrupt. A checkpoint without calibration.json loads with identity calibration (softmax of the
    positive label) and a warning, because its scores are then not calibrated probabilities.
    """
    t0 = time.perf_counter()
    model_dir = Path(path) if path is not None else default_model_dir()
    if not model_dir.exists():
        raise ModelLoadError(f"classifier directory {model_dir} does not exist")
    if not model_dir.is_dir():
        raise ModelLoadError(f"classifier path {model_dir} is not a directory")
    if not (model_dir / "config.json").exists():
        raise ModelLoadError(f"classifier directory {model_dir} has no config.json; not a model checkpoint")
    try:
        calibration = Calibration.load(model_dir)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"classifier directory {model_dir}: unreadable calibration.json: {exc}") from exc
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a CLI user should not see a weight-loading progress bar
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:  # transformers, safetensors and json raise many types for one problem
        raise ModelLoadError(f"cannot load classifier from {model_dir}: {type(exc).__name__}: {exc}") from exc
    model = model.float().eval()
    if calibration is None:
        log.warning("%s has no calibration.json: scores are uncalibrated softmax probabilities", model_dir)
        calibration = Calibration(a=1.0, b=0.0, positive_index=_positive_index(model))
        name = f"{model_dir.name}@local"
    else:
        name = calibration.model or f"{model_dir.name}@local"
    limit = getattr(model.config, "max_position_embeddings", MAX_CHARS + 2) - 2
    max_chars = min(calibration.max_chars or MAX_CHARS, limit)
    rm = RiskModel(model, tokenizer, calibration, name=name, path=model_dir, max_chars=max_chars)
    backend = (backend or os.environ.get(ENV_BACKEND) or "auto").lower()
    if backend not in ("auto", "torch", "onnx"):
        raise ModelLoadError(f"unknown classifier backend {backend!r} (auto, torch or onnx)")
    _attach_onnx(rm, backend)
    rm.load_seconds = time.perf_counter() - t0
    return rm
