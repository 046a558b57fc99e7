"""The ONNX Runtime backend: the same fp32 encoder as an ONNX graph, scored without PyTorch.

`scripts/export_onnx.py` writes ``model.onnx`` next to the weights, checks it against PyTorch on
held-out listings, and records in ``onnx_check.json`` the check it passed plus a **reference**: the
logits PyTorch gives on ``CHECK_TEXTS`` (tokenised by the transformers tokenizer training used), the
tokenisation settings (max length, truncation, padding, text folding), and the sha256 of the graph,
the weights, config.json and tokenizer.json they belong to.

`load_model` then scores with the graph without importing torch or transformers: when onnxruntime is
importable and the reference belongs to the files in the directory, it runs the graph on
``CHECK_TEXTS`` (tokenised by the ``tokenizers`` library from tokenizer.json) and accepts it when the
calibrated probabilities are within ``MAX_PROB_DIFF`` of the reference. Otherwise it loads PyTorch;
an older onnx_check.json without a reference still gets the graph after a live comparison with
PyTorch. Set ``MODERATION_CLASSIFIER_BACKEND=torch`` to force PyTorch (``onnx`` to require the graph).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ONNX_FILE = "model.onnx"
ONNX_CHECK_FILE = "onnx_check.json"
TOKENIZER_FILE = "tokenizer.json"
ENV_BACKEND = "MODERATION_CLASSIFIER_BACKEND"
#: Largest |p_onnx - p_torch| accepted, at load time and by the export check.
MAX_PROB_DIFF = 1e-4
#: Load-time check texts: varied lengths (one padded batch), categories, evasion characters.
CHECK_TEXTS = [
    "【食品】手撕牛肉干 净含量500g\n口感酥脆不粘牙",
    "【保健食品】鱼油软胶囊｜每瓶60粒\n本品不能代替药物，有助于维持血脂健康水平",
    "【化妆品】补水面膜 规格50ml，用完脸上的斑都淡了，补水保湿",
    "短",
    "【教育培训】考研英语网课 共40课时\n课程大纲详见详情页，学习效果因人而异，可试听一节后再决定。" * 3,
    "【日用百货】不锈钢保温杯 最高承重15kg 全 网 最 好 用 ＮＯ．１🔥🔥",
]
#: Files the reference belongs to (those present at export are hashed): a model shipped without a new
#: export, or a graph edited after it, no longer matches and is checked against PyTorch instead.
REFERENCE_FILES = (ONNX_FILE, "model.safetensors", "pytorch_model.bin", "config.json", TOKENIZER_FILE)
#: Files a usable reference must cover.
REQUIRED_REFERENCE_FILES = (ONNX_FILE, "config.json", TOKENIZER_FILE)


def export(model_dir: str | Path, out: str | Path | None = None) -> Path:
    """Export the checkpoint in ``model_dir`` to an fp32 ONNX graph (default: model_dir/model.onnx).

    Eager attention and a padded two-row example are required: with SDPA attention, or an example
    batch without padding, the traced graph mishandles the attention mask.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    class _Logits(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.model(
                input_ids=input_ids, attention_mask=attention_mask, return_dict=False
            )[0]
            return logits

    model_dir = Path(model_dir)
    out = Path(out) if out else model_dir / ONNX_FILE
    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    eager = (
        AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), attn_implementation="eager", local_files_only=True
        )
        .float()
        .eval()
    )
    example = tok(["示例文本，长一点", "短"], padding=True, return_tensors="pt")
    torch.onnx.export(
        _Logits(eager),
        (example["input_ids"], example["attention_mask"]),
        str(out),
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "logits": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    store_weights_as_fp16(out)
    return out


def store_weights_as_fp16(path: str | Path, min_elements: int = 1024) -> int:
    """Halve the graph file: weights that are exactly representable in fp16 are stored as fp16 and cast
    back to fp32 by a Cast node, which ONNX Runtime folds into an fp32 constant when the session opens.

    Lossless by construction: the shipped weights are fp16 (model.safetensors), so their fp32 copies
    round-trip exactly; any tensor that does not (a mask constant of -3.4e38, say) stays fp32. The
    arithmetic is still fp32, so scores are those of the fp32 graph. Returns the tensors converted.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = Path(path)
    model = onnx.load(str(path))
    graph = model.graph
    kept, casts, converted = [], [], 0
    for init in graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= min_elements:
            half = arr.astype(np.float16)
            if np.array_equal(half.astype(np.float32), arr):
                kept.append(numpy_helper.from_array(half, init.name + "__fp16"))
                casts.append(
                    helper.make_node(
                        "Cast",
                        [init.name + "__fp16"],
                        [init.name],
                        to=TensorProto.FLOAT,
                        name=init.name + "__cast",
                    )
                )
                converted += 1
                continue
        kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return converted


class OrtEncoder:
    """An onnxruntime session per thread count, returning logits like the PyTorch model.

    Without an explicit count a call uses ``default_threads()``, so whatever pins torch (the audit's
    one thread per worker process, ``torch_threads``) or OMP_NUM_THREADS pins this backend too.
    """

    def __init__(self, path: str | Path, default_threads: int | None = None) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.path = Path(path)
        self.default_threads = default_threads
        self._sessions: dict[int, Any] = {}
        self.session(default_threads)  # fail at load time, not at the first listing

    def session(self, threads: int | None) -> Any:
        n = threads or self.default_threads or default_threads()
        if n not in self._sessions:
            opts = self._ort.SessionOptions()
            opts.intra_op_num_threads = n
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = self._ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._sessions[n] = self._ort.InferenceSession(
                str(self.path), opts, providers=["CPUExecutionProvider"]
            )
        return self._sessions[n]

    def logits(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, threads: int | None = None
    ) -> np.ndarray:
        out = self.session(threads).run(
            None, {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        )[0]
        return np.asarray(out, dtype=np.float32)


def default_threads() -> int:
    """Intra-op threads when the caller gives none: torch's setting if torch is already imported (it
    may have been pinned), else OMP_NUM_THREADS (the audit sets it per worker), else the usable CPUs.
    Never imports torch."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def texts_sha256(texts: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def ids_sha256(rows: Sequence[Sequence[int]]) -> str:
    """Hash of token ids per text (unpadded), so the record stays readable."""
    return hashlib.sha256(json.dumps([[int(i) for i in r] for r in rows]).encode("ascii")).hexdigest()


def read_check(model_dir: Path) -> dict[str, Any] | None:
    """onnx_check.json as a dict, or None when it is missing or unreadable."""
    path = model_dir / ONNX_CHECK_FILE
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def legacy_check_passed(record: dict[str, Any] | None, model_dir: Path) -> bool:
    """The rule for an onnx_check.json without a reference: it passed, for a graph of this size."""
    onnx_path = model_dir / ONNX_FILE
    return (
        record is not None
        and bool(record.get("passed"))
        and onnx_path.exists()
        and record.get("onnx_bytes") == onnx_path.stat().st_size
    )


def recorded_reference(
    record: dict[str, Any] | None, model_dir: Path, *, fold: str, max_chars: int
) -> tuple[dict[str, Any] | None, str]:
    """The recorded reference when it belongs to the files in ``model_dir`` now and to this
    tokenisation (folding, characters read); else None and why not."""
    if record is None or not record.get("passed"):
        return None, f"no passing {ONNX_CHECK_FILE} (run scripts/export_onnx.py)"
    ref = record.get("reference")
    if not isinstance(ref, dict):
        return None, f"{ONNX_CHECK_FILE} has no reference scores (written before they were recorded)"
    if ref.get("texts_sha256") != texts_sha256(CHECK_TEXTS):
        return None, "the reference was recorded for other check texts"
    tok = ref.get("tokenizer") or {}
    if (tok.get("fold") or "") != (fold or "") or tok.get("max_chars") != max_chars:
        return None, (
            f"the reference was recorded with fold={tok.get('fold')!r}, max_chars={tok.get('max_chars')}, "
            f"the model now uses fold={fold!r}, max_chars={max_chars}"
        )
    hashes = ref.get("sha256") or {}
    missing = [name for name in REQUIRED_REFERENCE_FILES if name not in hashes]
    if missing:
        return None, f"the reference does not cover {', '.join(missing)}"
    for name, digest in hashes.items():
        if name not in REFERENCE_FILES:
            continue
        f = model_dir / name
        if not f.exists() or sha256_file(f) != digest:
            return None, f"{name} is not the file the reference was recorded for (sha256 differs)"
    logits = np.asarray(ref.get("logits"), dtype=np.float32)
    if logits.ndim != 2 or logits.shape[0] != len(CHECK_TEXTS):
        return None, "the reference logits have the wrong shape"
    return ref, ""


def max_prob_diff(p_a: Sequence[float] | np.ndarray, p_b: Sequence[float] | np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(p_a) - np.asarray(p_b)))) if len(p_a) else 0.0


def tokenizer_mismatches(rm: Any, texts: Sequence[str], batch_size: int = 64) -> int:
    """Texts whose input_ids or attention_mask from ``rm.tokenizer`` (the tokenizers library, as
    load_model uses it) differ from those of the transformers tokenizer training used (AutoTokenizer
    on the same directory), with the same folding, truncation and padding. Needs transformers."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(rm.path), local_files_only=True)
    prepared = rm.prepare(texts)
    bad = 0
    for s in range(0, len(prepared), batch_size):
        chunk = prepared[s : s + batch_size]
        kw: dict[str, Any] = {"padding": True, "truncation": True, "max_length": rm.max_length}
        want = hf(chunk, return_tensors="np", **kw)
        got = rm.tokenizer(chunk, return_tensors="np", **kw)
        for key in ("input_ids", "attention_mask"):
            if want[key].shape != got[key].shape:
                bad += len(chunk)
                break
        else:
            same = (want["input_ids"] == got["input_ids"]).all(1) & (
                want["attention_mask"] == got["attention_mask"]
            ).all(1)
            bad += int((~same).sum())
    return bad


def reference_record(rm: Any) -> dict[str, Any]:
    """What load_model checks the graph against: PyTorch's logits on CHECK_TEXTS (folded and cut as
    ``RiskModel.prepare`` does, tokenised by the transformers tokenizer training used, one padded
    batch), the calibrated probabilities they give, the token ids, the tokenisation settings and the
    sha256 of the files. Needs torch and transformers; ``rm`` is a PyTorch-loaded RiskModel."""
    import torch
    from transformers import AutoTokenizer

    from .predict import logit_margins

    hf = AutoTokenizer.from_pretrained(str(rm.path), local_files_only=True)
    texts = rm.prepare(CHECK_TEXTS)
    enc = hf(texts, padding=True, truncation=True, max_length=rm.max_length, return_tensors="pt")
    with torch.inference_mode():
        logits = (
            rm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.float().numpy()
        )
    ids = [hf(t, truncation=True, max_length=rm.max_length)["input_ids"] for t in texts]
    probs = rm.calibration.apply(logit_margins(logits, rm.calibration.positive_index))
    files = {name: sha256_file(rm.path / name) for name in REFERENCE_FILES if (rm.path / name).exists()}
    return {
        "texts_sha256": texts_sha256(CHECK_TEXTS),
        "logits": [[float(v) for v in row] for row in logits],
        "probs": [float(p) for p in probs],
        "input_ids_sha256": ids_sha256(ids),
        "tokenizer": {
            "library": "tokenizers",
            "file": TOKENIZER_FILE,
            "max_chars": rm.max_chars,
            "max_length": rm.max_length,
            "truncation": "longest_first, right",
            "padding": "longest, right",
            "pad_id": int(hf.pad_token_id or 0),
            "fold": rm.calibration.fold or "",
        },
        "sha256": files,
    }


def reference_fields(rm: Any, texts: Sequence[str]) -> dict[str, Any]:
    """The new fields of onnx_check.json for ``rm`` (PyTorch weights loaded, ONNX encoder attached):
    the tokenizer comparison on ``texts``, the reference, and the load-time check run on it exactly as
    load_model will run it. ``reference_ok`` says whether both agree."""
    from .predict import reference_diff

    mismatches = tokenizer_mismatches(rm, list(texts) + list(CHECK_TEXTS))
    reference = reference_record(rm)
    diff, why = reference_diff(rm, reference)
    return {
        "tokenizer_checked": len(texts) + len(CHECK_TEXTS),
        "tokenizer_mismatches": mismatches,
        "reference_max_abs_prob_diff": diff,
        "reference_ok": mismatches == 0 and not why and diff <= MAX_PROB_DIFF,
        "reference": reference,
    }


def export_and_check(
    model_dir: str | Path,
    texts: Sequence[str] | None = None,
    threads: int = 2,
    labels: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Export ``model_dir`` to model.onnx, score ``texts`` with PyTorch and with the graph, and record
    the check and the load-time reference in onnx_check.json (``load_model`` uses the graph only when
    it passed). Without texts the check uses the real dev hold-out (calibration) texts and the
    built-in check texts."""
    from .evaluate import threshold_at_fpr
    from .predict import load_model

    model_dir = Path(model_dir)
    (model_dir / ONNX_CHECK_FILE).unlink(missing_ok=True)
    fp32 = export(model_dir)
    rm = load_model(model_dir, backend="torch")
    if texts is None:
        from .realdata import real_split

        calib = real_split("calib", binary=False)
        texts = [r.example.text for r in calib] + list(CHECK_TEXTS)
        labels = [r.example.label for r in calib] + [0] * len(CHECK_TEXTS)
    texts = list(texts)
    ref = np.array(rm.score_texts(texts, threads=threads))
    y = np.array(labels) if labels is not None else np.zeros(len(texts), dtype=int)
    thr = threshold_at_fpr(ref[y == 0], 0.05) if (y == 0).any() else 0.5
    rm.encoder = OrtEncoder(fp32, default_threads=threads)
    got = np.array(rm.score_texts(texts, threads=threads))
    diff = float(np.abs(got - ref).max()) if len(texts) else 0.0
    fields = reference_fields(rm, texts)
    record = {
        "passed": diff <= MAX_PROB_DIFF and bool(fields.pop("reference_ok")),
        "max_abs_prob_diff": diff,
        "n": len(texts),
        "decision_agreement": float(((got >= thr) == (ref >= thr)).mean()),
        "threshold": float(thr),
        "onnx_bytes": fp32.stat().st_size,
        "threads": threads,
        **fields,
    }
    write_check(model_dir, record)
    return record


def write_check(model_dir: Path, record: dict[str, Any]) -> Path:
    path = model_dir / ONNX_CHECK_FILE
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
