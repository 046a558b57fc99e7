"""Loading a checkpoint directory and scoring listing texts: the interface the checker calls.

One loading path for every directory: read config.json and calibration.json as JSON, tokenise with the
``tokenizers`` library from tokenizer.json, and run the forward pass in ONNX Runtime when the directory
holds a ``model.onnx`` whose export check recorded reference scores for exactly these files (see
ort_backend.py). That path imports neither torch nor transformers and never reads the weights: a
server process stays a few hundred MB smaller (figures: models/MODEL_CARD.md, "Loading").

PyTorch (AutoModelForSequenceClassification, local files only) is imported and the weights loaded
only when they are needed: no usable graph or reference, a failed load-time check, onnxruntime
missing, ``MODERATION_CLASSIFIER_BACKEND=torch`` or ``use_torch()`` (explanations only rescore, so they run on
the graph too). Any local transformers sequence-classification checkpoint, such
as a larger retrained model named by MODERATION_MODEL_DIR, loads that way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .calibration import Calibration
from .config import MAX_CHARS, default_model_dir, listing_text
from .data import length_bucketed_batches
from .entities import EntityTagger, load_tagger
from .errors import ModelLoadError
from .ort_backend import (
    CHECK_TEXTS,
    ENV_BACKEND,
    MAX_PROB_DIFF,
    ONNX_FILE,
    TOKENIZER_FILE,
    OrtEncoder,
    ids_sha256,
    legacy_check_passed,
    max_prob_diff,
    read_check,
    recorded_reference,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel

log = logging.getLogger(__name__)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (the setting is process-global, so restore it).

    Imports torch only when a count is given."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ListingTokenizer:
    """The tokenizer.json pipeline (``tokenizers`` library), called like the transformers tokenizer
    that saved it: ``tok(texts, padding=True, truncation=True, max_length=n, return_tensors="np")``.

    transformers' fast tokenizer is this same Rust tokenizer with truncation (longest first, from the
    right) and padding (to the longest, on the right, with the pad token) switched on per call; here
    they are fixed per ``max_length`` (one configured copy each, never reconfigured, so concurrent
    callers are safe). Always pads to the longest text of the call. The export check
    (``ort_backend.tokenizer_mismatches``) compares its ids and masks with AutoTokenizer's.
    """

    def __init__(self, path: Path, max_length: int, pad_token: str = "[PAD]") -> None:
        from tokenizers import Tokenizer

        self.path = path
        self.max_length = max_length
        self._base = path.read_text(encoding="utf-8")
        self._by_length: dict[int, Any] = {}
        first = Tokenizer.from_str(self._base)
        pad_id = first.token_to_id(pad_token)
        self.pad_token = pad_token
        self.pad_token_id = int(pad_id) if pad_id is not None else 0
        self._configured(max_length)

    def _configured(self, max_length: int) -> Any:
        tok = self._by_length.get(max_length)
        if tok is None:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_str(self._base)
            tok.enable_truncation(max_length, stride=0, strategy="longest_first", direction="right")
            tok.enable_padding(direction="right", pad_id=self.pad_token_id, pad_token=self.pad_token)
            self._by_length[max_length] = tok
        return tok

    def __call__(
        self,
        texts: str | Sequence[str],
        padding: bool = True,
        truncation: bool = True,
        max_length: int | None = None,
        return_tensors: str | None = "np",
        return_offsets_mapping: bool = False,
    ) -> dict[str, Any]:
        if not truncation or not padding:
            raise ValueError("ListingTokenizer always truncates and pads to the longest text")
        batch = [texts] if isinstance(texts, str) else list(texts)
        encs = self._configured(max_length or self.max_length).encode_batch(batch)
        out: dict[str, Any] = {
            "input_ids": np.array([e.ids for e in encs], dtype=np.int64).reshape(len(encs), -1),
            "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64).reshape(len(encs), -1),
            "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64).reshape(
                len(encs), -1
            ),
        }
        if return_offsets_mapping:
            out["offset_mapping"] = np.array([e.offsets for e in encs], dtype=np.int64).reshape(
                len(encs), -1, 2
            )
        if return_tensors == "pt":
            import torch

            return {k: torch.from_numpy(v) for k, v in out.items()}
        if return_tensors is None:
            return {k: v.tolist() for k, v in out.items()}
        return out

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, unpadded (as the reference's ``input_ids_sha256`` hashes them)."""
        enc = self(list(texts))
        return [
            [int(i) for i, m in zip(row, mask, strict=True) if m]
            for row, mask in zip(enc["input_ids"], enc["attention_mask"], strict=True)
        ]


class RiskModel:
    """A loaded classifier: calibrated P(listing violates the law) for each text."""

    def __init__(
        self,
        model: PreTrainedModel | None,
        tokenizer: Any,
        calibration: Calibration,
        name: str,
        path: Path,
        max_chars: int = MAX_CHARS,
        tagger: EntityTagger | None = None,
    ) -> None:
        #: PyTorch weights, or None until ``model`` first loads them (never, on the ONNX path).
        self._model = model.eval() if model is not None else None
        self._model_lock = threading.Lock()
        self.tokenizer = tokenizer
        self.calibration = calibration
        self.name = name
        self.path = path
        self.max_chars = max_chars
        self.load_seconds = 0.0
        #: ONNX Runtime encoder when that backend is in use (see load_model), else None (PyTorch).
        self.encoder: OrtEncoder | None = None
        #: The entity tagger of a checkpoint trained with tags (entities.py; load_model reads it).
        self.tagger = tagger

    @property
    def model(self) -> PreTrainedModel:
        """The PyTorch model, loaded (importing torch and transformers) on first use."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    if self.encoder is not None:
                        log.info("%s: loading the PyTorch weights next to %s", self.path, ONNX_FILE)
                    self._model = _load_torch_model(self.path)
        return self._model

    @property
    def torch_loaded(self) -> bool:
        """Whether the PyTorch weights are in memory."""
        return self._model is not None

    @property
    def backend(self) -> str:
        return "onnx" if self.encoder is not None else "torch"

    @property
    def max_length(self) -> int:
        """Tokens the model reads: [CLS] + ``max_chars`` characters + [SEP]."""
        return self.max_chars + 2

    def use_torch(self) -> None:
        """Score with PyTorch from now on (loads the weights if needed, then drops the ONNX encoder)."""
        _ = self.model
        self.encoder = None

    def prepare(self, texts: Sequence[str]) -> list[str]:
        """The texts as the model reads them: cut to ``max_chars``, folded and entity-tagged when
        calibration.json says so (same length: offsets into them are offsets into the texts)."""
        clipped = [(t or "")[: self.max_chars] for t in texts]
        if self.calibration.fold:
            from .textfold import fold_all

            clipped = fold_all(clipped)
        if self.tagger is not None:
            clipped = self.tagger.tag_all(clipped)
        return clipped

    def logits(self, texts: Sequence[str], batch_size: int = 64, threads: int | None = None) -> np.ndarray:
        """Raw logits (n, labels) in input order, float32, from the graph or from PyTorch."""
        prepared = self.prepare(texts)
        out: np.ndarray | None = None
        for idx in length_bucketed_batches([len(t) for t in prepared], batch_size):
            enc = self.tokenizer(
                [prepared[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            ids, mask = np.asarray(enc["input_ids"]), np.asarray(enc["attention_mask"])
            if self.encoder is not None:
                logits = self.encoder.logits(ids, mask, threads)
            else:
                logits = self._torch_logits(ids, mask, threads)
            if out is None:
                out = np.zeros((len(prepared), logits.shape[-1]), dtype=np.float32)
            out[idx] = logits
        return out if out is not None else np.zeros((0, 2), dtype=np.float32)

    def _torch_logits(self, ids: np.ndarray, mask: np.ndarray, threads: int | None) -> np.ndarray:
        import torch

        model = self.model
        with torch_threads(threads), torch.inference_mode():
            logits = model(
                input_ids=torch.from_numpy(ids.astype(np.int64)),
                attention_mask=torch.from_numpy(mask.astype(np.int64)),
            ).logits.float()
        return np.asarray(logits.numpy(), dtype=np.float32)

    def margins(self, texts: Sequence[str], batch_size: int = 64, threads: int | None = None) -> np.ndarray:
        """Raw logit margins (positive minus the rest), before calibration; used to fit calibration."""
        if not texts:
            return np.zeros(0, dtype=np.float64)
        return logit_margins(self.logits(texts, batch_size, threads), self.calibration.positive_index)

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


def logit_margins(logits: np.ndarray, pos: int) -> np.ndarray:
    """Logit of the positive label minus the log-sum-exp of the others, as float64.

    The subtraction is done in float32 first, as the PyTorch model's logits are, so both backends
    give bit-identical margins for identical logits."""
    x = np.asarray(logits, dtype=np.float32)
    if x.shape[-1] == 1:
        return x[:, 0].astype(np.float64)
    if x.shape[-1] == 2:  # the common case; logsumexp of one logit is that logit
        return (x[:, pos] - x[:, 1 - pos]).astype(np.float64)
    others = np.concatenate([x[:, :pos], x[:, pos + 1 :]], axis=-1).astype(np.float64)
    top = others.max(axis=-1)
    lse = top + np.log(np.exp(others - top[:, None]).sum(axis=-1))
    margins: np.ndarray = x[:, pos].astype(np.float64) - lse
    return margins


def reference_diff(rm: RiskModel, reference: dict[str, Any]) -> tuple[float, str]:
    """The load-time check: tokenise CHECK_TEXTS, compare their ids with the recorded ones, score
    them with ``rm``'s current backend and compare the calibrated probabilities with those of the
    recorded PyTorch logits. Returns (largest |p - p_ref|, "" or why the check cannot pass)."""
    prepared = rm.prepare(CHECK_TEXTS)
    ids_of = getattr(rm.tokenizer, "ids", None)
    if ids_of is None:
        return float("inf"), f"no {TOKENIZER_FILE} tokenizer"
    if reference.get("input_ids_sha256") != ids_sha256(ids_of(prepared)):
        return float("inf"), f"{TOKENIZER_FILE} gives other token ids on the check texts than at export"
    pos = rm.calibration.positive_index
    want = rm.calibration.apply(logit_margins(np.asarray(reference["logits"], dtype=np.float32), pos))
    got = rm.calibration.apply(logit_margins(rm.logits(CHECK_TEXTS), pos))
    return max_prob_diff(got, want), ""


def _attach_onnx(rm: RiskModel, backend: str) -> None:
    """Switch ``rm`` to ONNX Runtime when the graph is checked; else leave it on PyTorch (loaded lazily).

    With a reference recorded for these files the check compares the graph with it (no torch). An
    older onnx_check.json that passed but has no reference gets today's live check against PyTorch.
    """
    path = rm.path / ONNX_FILE
    if backend == "torch" or not path.exists():
        if backend == "onnx":
            raise ModelLoadError(f"{rm.path}: backend 'onnx' requested but there is no {ONNX_FILE}")
        return
    record = read_check(rm.path)
    reason = ""
    try:
        reference, reason = recorded_reference(
            record, rm.path, fold=rm.calibration.fold, max_chars=rm.max_chars
        )
        if reference is not None:
            rm.encoder = OrtEncoder(path)
            diff, reason = reference_diff(rm, reference)
            if not reason and diff > MAX_PROB_DIFF:
                reason = f"scores differ from the recorded PyTorch reference by {diff:.2e} on the check set"
        elif record is not None and "reference" not in record and legacy_check_passed(record, rm.path):
            log.info("%s: %s; checking %s against PyTorch instead", rm.path, reason, ONNX_FILE)
            pos = rm.calibration.positive_index
            want = rm.calibration.apply(logit_margins(_live_torch_logits(rm), pos))
            rm.encoder = OrtEncoder(path)
            diff = max_prob_diff(rm.calibration.apply(logit_margins(rm.logits(CHECK_TEXTS), pos)), want)
            reason = (
                f"scores differ from PyTorch by {diff:.2e} on the check set" if diff > MAX_PROB_DIFF else ""
            )
    except ImportError as exc:
        name = exc.name or ""
        reason = "onnxruntime is not installed" if name.startswith("onnxruntime") else f"ImportError: {exc}"
    except ModelLoadError:
        raise
    except Exception as exc:  # a corrupt or foreign graph must not stop the checker: fall back to torch
        reason = f"{type(exc).__name__}: {exc}"
    if reason:
        rm.encoder = None
        if backend == "onnx":
            raise ModelLoadError(f"{rm.path}: cannot use {ONNX_FILE}: {reason}")
        log.warning("%s: scoring with PyTorch, not %s: %s", rm.path, ONNX_FILE, reason)


def _live_torch_logits(rm: RiskModel) -> np.ndarray:
    """PyTorch's logits on CHECK_TEXTS (loads the weights); ``rm`` must be on PyTorch still."""
    assert rm.encoder is None
    return rm.logits(CHECK_TEXTS)


def _load_torch_model(model_dir: Path) -> PreTrainedModel:
    """The PyTorch weights (imports torch and transformers); ModelLoadError naming the directory."""
    try:
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a CLI user should not see a weight-loading progress bar
        model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:  # transformers, safetensors and json raise many types for one problem
        raise ModelLoadError(f"cannot load classifier from {model_dir}: {type(exc).__name__}: {exc}") from exc
    loaded: PreTrainedModel = model.float().eval()
    return loaded


def _load_tokenizer(model_dir: Path, max_length: int) -> Any:
    """ListingTokenizer from tokenizer.json; a checkpoint without one (a slow tokenizer's vocab.txt)
    gets transformers' AutoTokenizer, and so only the PyTorch path."""
    try:
        if (model_dir / TOKENIZER_FILE).exists():
            pad = "[PAD]"
            cfg_path = model_dir / "tokenizer_config.json"
            if cfg_path.exists():
                pad = str(json.loads(cfg_path.read_text(encoding="utf-8")).get("pad_token") or pad)
            return ListingTokenizer(model_dir / TOKENIZER_FILE, max_length, pad_token=pad)
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:  # tokenizers, transformers and json raise many types for one problem
        raise ModelLoadError(
            f"cannot load classifier from {model_dir}: tokenizer: {type(exc).__name__}: {exc}"
        ) from exc


def _positive_index(config: dict[str, Any]) -> int:
    label2id = {str(k).lower(): int(v) for k, v in (config.get("label2id") or {}).items()}
    for key in ("risky", "violation", "unlawful", "positive", "label_1"):
        if key in label2id:
            return label2id[key]
    num_labels = len(config.get("id2label") or {}) or int(config.get("num_labels") or 2)
    return 1 if num_labels > 1 else 0


def load_model(path: str | Path | None = None, backend: str | None = None) -> RiskModel:
    """Load a classifier directory (default: $MODERATION_MODEL_DIR or the shipped models/risk-classifier).

    ``backend``: "auto" (default, or $MODERATION_CLASSIFIER_BACKEND) uses ONNX Runtime when a
    model.onnx sits next to the weights and passes the load-time check (against the reference
    recorded at export, without torch; or, for an older onnx_check.json, against PyTorch), else
    PyTorch; "torch" never uses the graph; "onnx" raises ModelLoadError when the graph cannot be used.

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
    backend = (backend or os.environ.get(ENV_BACKEND) or "auto").lower()
    if backend not in ("auto", "torch", "onnx"):
        raise ModelLoadError(f"unknown classifier backend {backend!r} (auto, torch or onnx)")
    try:
        calibration = Calibration.load(model_dir)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelLoadError(f"classifier directory {model_dir}: unreadable calibration.json: {exc}") from exc
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"cannot load classifier from {model_dir}: config.json: {exc}") from exc
    if calibration is None:
        log.warning("%s has no calibration.json: scores are uncalibrated softmax probabilities", model_dir)
        calibration = Calibration(a=1.0, b=0.0, positive_index=_positive_index(config))
        name = f"{model_dir.name}@local"
    else:
        name = calibration.model or f"{model_dir.name}@local"
    limit = int(config.get("max_position_embeddings") or MAX_CHARS + 2) - 2
    max_chars = min(calibration.max_chars or MAX_CHARS, limit)
    tokenizer = _load_tokenizer(model_dir, max_chars + 2)
    tagger = None
    if calibration.entities:
        try:
            tagger = load_tagger(model_dir, calibration.entities)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"classifier directory {model_dir}: entity list: {exc}") from exc
    rm = RiskModel(
        None, tokenizer, calibration, name=name, path=model_dir, max_chars=max_chars, tagger=tagger
    )
    _attach_onnx(rm, backend)
    if rm.encoder is None:
        _ = rm.model  # PyTorch: load the weights now (and fail now, naming the directory)
    rm.load_seconds = time.perf_counter() - t0
    return rm
