"""Export the classifier to an fp32 ONNX graph next to its weights, and check it against PyTorch.

    .venv/bin/python scripts/export_onnx.py [--model models/risk-classifier] [--n 3000] [--int8]
    .venv/bin/python scripts/export_onnx.py --check-only ...   # keep model.onnx, redo the check

Needs torch, transformers, `onnx` and `onnxruntime`. Writes MODEL/model.onnx (not with --check-only),
scores the first --n held-out listings with both PyTorch and ONNX Runtime, compares the `tokenizers`
pipeline load_model uses with the transformers tokenizer on them, and writes MODEL/onnx_check.json
with the load-time reference (PyTorch's logits on ort_backend.CHECK_TEXTS, the tokenisation
settings, the sha256 of model.onnx, the weights, config.json and tokenizer.json). The check passes
when the largest probability difference is <= 1e-4, the tokenizers agree on every text and the
load-time check passes on the reference; only then does `load_model` use the graph, without torch.
With --int8 a dynamically quantised copy is measured under var/ for comparison; it is never used by
load_model (its decisions do not match fp32 exactly). The export uses eager attention and a padded
two-row example (see ort_backend.export).
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

from moderation.classifier.data import read_jsonl  # noqa: E402
from moderation.classifier.evaluate import threshold_at_fpr  # noqa: E402
from moderation.classifier.ort_backend import (  # noqa: E402
    MAX_PROB_DIFF,
    ONNX_CHECK_FILE,
    ONNX_FILE,
    OrtEncoder,
    export,
    reference_fields,
    write_check,
)
from moderation.classifier.predict import load_model  # noqa: E402


def p50_ms(fn, reps: int = 200) -> float:  # type: ignore[no-untyped-def]
    fn()
    lat = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t0)
    return 1000 * statistics.median(lat)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "risk-classifier")
    ap.add_argument("--data", type=Path, default=REPO / "var" / "classifier" / "data" / "test.jsonl")
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--int8", action="store_true", help="also measure a dynamically quantised int8 copy")
    ap.add_argument("--int8-out", type=Path, default=REPO / "var" / "classifier" / "onnx" / "model.int8.onnx")
    ap.add_argument(
        "--check-only",
        action="store_true",
        help="do not export: check the model.onnx already there (its bytes stay as they are)",
    )
    args = ap.parse_args(argv)

    (args.model / ONNX_CHECK_FILE).unlink(missing_ok=True)
    fp32 = args.model / ONNX_FILE if args.check_only else export(args.model)
    rm = load_model(args.model, backend="torch")
    examples = read_jsonl(args.data)
    texts = [e.text for e in examples[: args.n]]
    y = np.array([e.label for e in examples[: args.n]])
    ref = np.array(rm.score_texts(texts, threads=args.threads))
    thr = threshold_at_fpr(ref[y == 0], 0.05) if (y == 0).any() else 0.5
    long_text = next((t for t in texts if len(t) >= rm.max_chars), texts[0] * 10)[: rm.max_chars]
    torch_p50 = p50_ms(lambda: rm.score_texts([long_text], batch_size=1, threads=args.threads))

    rm.encoder = OrtEncoder(fp32, default_threads=args.threads)
    t0 = time.perf_counter()
    got = np.array(rm.score_texts(texts, threads=args.threads))
    rate = len(texts) / (time.perf_counter() - t0)
    diff = float(np.abs(got - ref).max())
    agree = float(((got >= thr) == (ref >= thr)).mean())
    onnx_p50 = p50_ms(lambda: rm.score_texts([long_text], batch_size=1, threads=args.threads))
    fields = reference_fields(rm, texts)
    reference_ok = bool(fields.pop("reference_ok"))
    record = {
        "passed": diff <= MAX_PROB_DIFF and reference_ok,
        "max_abs_prob_diff": diff,
        "n": len(texts),
        "decision_agreement": agree,
        "threshold": float(thr),
        "onnx_bytes": fp32.stat().st_size,
        "p50_ms_256_chars": {"onnx": onnx_p50, "torch": torch_p50},
        "threads": args.threads,
        **fields,
    }
    write_check(args.model, record)
    print(
        f"{fp32}: {fp32.stat().st_size / 1e6:.2f} MB, max |p - p_torch| {diff:.2e} on {len(texts)} held-out listings, "
        f"decision agreement at {thr:.4f}: {agree:.4f}, batch-64 throughput {rate:.0f}/s"
    )
    print(f"256-char p50, {args.threads} threads: onnx {onnx_p50:.2f} ms, pytorch {torch_p50:.2f} ms")
    print(
        f"tokenizers vs transformers tokenizer: {fields['tokenizer_mismatches']} of {fields['tokenizer_checked']} "
        f"texts differ; load-time check on the reference: max |p - p_ref| "
        f"{fields['reference_max_abs_prob_diff']:.2e}"
    )
    print(
        f"check {'PASSED' if record['passed'] else 'FAILED'} (bound {MAX_PROB_DIFF}); wrote {args.model / ONNX_CHECK_FILE}"
    )

    if args.int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        args.int8_out.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(str(fp32), str(args.int8_out), weight_type=QuantType.QInt8)
        rm.encoder = OrtEncoder(args.int8_out, default_threads=args.threads)
        q = np.array(rm.score_texts(texts, threads=args.threads))
        print(
            f"{args.int8_out.name} (not used): max |p - p_torch| {np.abs(q - ref).max():.4f}, decisions differ on "
            f"{int(((q >= thr) != (ref >= thr)).sum())} of {len(texts)}, 256-char p50 "
            f"{p50_ms(lambda: rm.score_texts([long_text], batch_size=1, threads=args.threads)):.2f} ms"
        )
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
