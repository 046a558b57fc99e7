"""Export the classifier to ONNX (fp32 and dynamically quantised int8) and check it against PyTorch.

    .venv/bin/python scripts/export_onnx.py [--model models/risk-classifier] [--out var/classifier/onnx]

Needs `onnx` and `onnxruntime`. The export uses eager attention and a padded two-row example: with
the default SDPA attention, or with an example batch that has no padding, the traced graph handles the
attention mask wrongly, and decisions disagree with PyTorch on about 4% of listings. The script prints the largest
probability difference and how often the decision agrees at the operating threshold (the bench's 5% FPR
threshold by default). Nothing here is loaded by load_model yet: the runtime still uses PyTorch.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402

from moderation.classifier.data import length_bucketed_batches, read_jsonl  # noqa: E402
from moderation.classifier.predict import load_model  # noqa: E402


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=False)[0]


def onnx_margins(session: object, rm: object, texts: list[str]) -> np.ndarray:
    out = np.zeros(len(texts))
    for idx in length_bucketed_batches([len(t) for t in texts], 64):
        enc = rm.tokenizer([texts[i] for i in idx], padding=True, return_tensors="np")  # type: ignore[attr-defined]
        logits = session.run(None, {"input_ids": enc["input_ids"].astype(np.int64),  # type: ignore[attr-defined]
                                    "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
        out[idx] = logits[:, 1] - logits[:, 0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "risk-classifier")
    ap.add_argument("--out", type=Path, default=REPO / "var" / "classifier" / "onnx")
    ap.add_argument("--data", type=Path, default=REPO / "var" / "classifier" / "data" / "test.jsonl")
    ap.add_argument("--threshold", type=float, default=0.6604)
    ap.add_argument("--n", type=int, default=3000)
    args = ap.parse_args(argv)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    rm = load_model(args.model)
    eager = AutoModelForSequenceClassification.from_pretrained(
        str(args.model), attn_implementation="eager", local_files_only=True).float().eval()
    args.out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = args.out / "model.onnx", args.out / "model.int8.onnx"
    example = rm.tokenizer(["示例文本，长一点", "短"], padding=True, return_tensors="pt")
    torch.onnx.export(_Logits(eager), (example["input_ids"], example["attention_mask"]), str(fp32),
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)

    texts = [e.text[: rm.max_chars] for e in read_jsonl(args.data)[: args.n]]
    ref = rm.calibration.apply(rm.margins(texts, threads=2))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    long_text = next((t for t in texts if len(t) >= rm.max_chars), texts[0])
    for path in (fp32, int8):
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        t0 = time.perf_counter()
        p = rm.calibration.apply(onnx_margins(sess, rm, texts))
        rate = len(texts) / (time.perf_counter() - t0)
        agree = float(((p >= args.threshold) == (ref >= args.threshold)).mean())
        lat = []
        for _ in range(200):
            t0 = time.perf_counter()
            onnx_margins(sess, rm, [long_text])
            lat.append(time.perf_counter() - t0)
        print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, max |p - p_torch| {np.abs(p - ref).max():.4f}, "
              f"decision agreement at {args.threshold}: {agree:.4f} ({round((1 - agree) * len(texts))} of "
              f"{len(texts)} differ), batch-64 throughput {rate:.0f}/s, 256-char p50 {1000 * statistics.median(lat):.2f} ms")
    lat = []
    for _ in range(200):
        t0 = time.perf_counter()
        rm.score_texts([long_text], batch_size=1, threads=2)
        lat.append(time.perf_counter() - t0)
    print(f"pytorch fp32 (same run): 256-char p50 {1000 * statistics.median(lat):.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
