"""Optional ONNX Runtime backend: the same fp32 encoder as an ONNX graph, for lower CPU latency.

`scripts/export_onnx.py` writes ``model.onnx`` next to the weights and records the check it passed
against PyTorch in ``onnx_check.json``. `load_model` uses the graph only when onnxruntime is
importable, both files are present, the recorded check passed, and the graph's scores match the
PyTorch model on a small built-in check set at load time; otherwise it scores with PyTorch.
Set ``MODERATION_CLASSIFIER_BACKEND=torch`` to force PyTorch (``onnx`` to require the graph).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ONNX_FILE = "model.onnx"
ONNX_CHECK_FILE = "onnx_check.json"
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


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.model(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=False
        )[0]
        return logits


def export(model_dir: str | Path, out: str | Path | None = None) -> Path:
    """Export the checkpoint in ``model_dir`` to an fp32 ONNX graph (default: model_dir/model.onnx).

    Eager attention and a padded two-row example are required: with SDPA attention, or an example
    batch without padding, the traced graph mishandles the attention mask.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

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

    Without an explicit count a call uses torch's current intra-op setting, so whatever pins torch
    (the audit's one thread per worker process, ``torch_threads``) pins this backend too.
    """

    def __init__(self, path: str | Path, default_threads: int | None = None) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.path = Path(path)
        self.default_threads = default_threads
        self._sessions: dict[int, Any] = {}
        self.session(default_threads)  # fail at load time, not at the first listing

    def session(self, threads: int | None) -> Any:
        n = threads or self.default_threads or torch.get_num_threads()
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


def recorded_check_passed(model_dir: Path) -> bool:
    """True when export_onnx.py recorded a passing check for the graph that is in the directory now."""
    path = model_dir / ONNX_CHECK_FILE
    if not path.exists():
        return False
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
    onnx_path = model_dir / ONNX_FILE
    return bool(d.get("passed")) and d.get("onnx_bytes") == onnx_path.stat().st_size


def max_prob_diff(p_a: Sequence[float], p_b: Sequence[float]) -> float:
    return float(np.max(np.abs(np.asarray(p_a) - np.asarray(p_b)))) if len(p_a) else 0.0


def export_and_check(
    model_dir: str | Path,
    texts: Sequence[str] | None = None,
    threads: int = 2,
    labels: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Export ``model_dir`` to model.onnx, score ``texts`` with PyTorch and with the graph, and record
    the check in onnx_check.json (``load_model`` uses the graph only when it passed). Without texts the
    check uses the real dev hold-out (calibration) texts and the built-in check texts."""
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
    record = {
        "passed": diff <= MAX_PROB_DIFF,
        "max_abs_prob_diff": diff,
        "n": len(texts),
        "decision_agreement": float(((got >= thr) == (ref >= thr)).mean()),
        "threshold": float(thr),
        "onnx_bytes": fp32.stat().st_size,
        "threads": threads,
    }
    (model_dir / ONNX_CHECK_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record
