"""Cross-validated AUC on the real dev enforcement cases: a steadier model-selection figure than the
calib part's cases alone (which hold only a handful of lawful look-alikes).

    .venv/bin/python scripts/cv_real_cases.py --data var/classifier/data5-g15 --init var/classifier/pre5/fold-m6k \\
        --out var/classifier/cv5/NAME [--folds 3] [--epochs 1] [--no-fold]

The dev cases of the training part are cut into ``--folds`` folds by source (a case's items stay
together). For each fold a model is fine-tuned on the recipe's train.jsonl without that fold's cases
(and calibrated on the real calib part, as usual); it scores that fold's cases. The calib part's cases are
never trained on and are scored by every fold model (their mean is used). Reported: ROC-AUC of violations
vs lawful look-alikes per fold and pooled over all dev cases, out of fold; and, as a guard for listings,
the calib part's labelled lines AUC (mean score of the fold models). The real test set is not read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from moderation.classifier.data import read_jsonl  # noqa: E402
from moderation.classifier.evaluate import roc_auc  # noqa: E402
from moderation.classifier.pipeline import train_model  # noqa: E402
from moderation.classifier.predict import load_model  # noqa: E402
from moderation.classifier.realdata import real_split  # noqa: E402
from moderation.classifier.synth import stable_hash  # noqa: E402
from moderation.classifier.train import TrainConfig  # noqa: E402


def fold_of(group: str, folds: int) -> int:
    return min(folds - 1, int(stable_hash("cv-cases:" + group) * folds))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument(
        "--init", type=Path, default=None, help="pre-trained encoder (train_classifier.py --pretrain-only)"
    )
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-fold", action="store_true")
    ap.add_argument(
        "--real-dir",
        type=Path,
        default=None,
        help="read the real sets from this frozen copy of tests/real (experiments)",
    )
    ap.add_argument(
        "--check",
        type=Path,
        default=None,
        help="also score these generated listings with every fold model (default: the recipe's "
        "regulated_check.jsonl when present: regulated products held out of training)",
    )
    args = ap.parse_args(argv)
    if args.real_dir is not None:
        from moderation.classifier.realdata import use_real_dir

        use_real_dir(args.real_dir)
    t0 = time.perf_counter()
    train = read_jsonl(args.data / "train.jsonl")
    calib = read_jsonl(args.data / "calib_real.jsonl")
    dev_cases = real_split("train", kinds=("cases",))
    calib_all = real_split("calib")
    calib_cases = [r for r in calib_all if r.kind == "cases"]
    calib_lines = [r for r in calib_all if r.kind == "lines"]
    check_path = args.check or args.data / "regulated_check.jsonl"
    check = read_jsonl(check_path) if check_path.exists() else []
    y_check = np.array([e.label for e in check], dtype=int)
    check_scores = []
    y_calib = np.array([r.label == "violation" for r in calib_cases], dtype=int)
    y_lines = np.array([r.label == "violation" for r in calib_lines], dtype=int)
    line_scores = []
    oof: list[tuple[float, int, int]] = []  # (score, label, fold)
    oof_refs: list[str] = []
    calib_scores = []
    per_fold = []
    cpu = 0.0
    for k in range(args.folds):
        out = args.out / f"fold-{k}"
        held = {r.key for r in dev_cases if fold_of(r.key, args.folds) == k}
        tr = [e for e in train if not (e.source == "real:cases" and e.group in held)]
        cfg = TrainConfig(
            epochs=args.epochs,
            lr=args.lr,
            threads=args.threads,
            mlm_steps=0,
            fold="" if args.no_fold else "t2s",
        )
        rec = train_model(tr, calib, out, cfg, init=args.init, progress=lambda s: None)
        cpu += rec["cpu_seconds"]
        rm = load_model(out, backend="torch")
        items = [r for r in dev_cases if r.key in held]
        s = np.array(rm.score_texts([r.example.text for r in items], threads=args.threads))
        y = np.array([r.label == "violation" for r in items], dtype=int)
        oof.extend((float(a), int(b), k) for a, b in zip(s, y, strict=True))
        oof_refs.extend(r.ref for r in items)
        calib_scores.append(rm.score_texts([r.example.text for r in calib_cases], threads=args.threads))
        line_scores.append(rm.score_texts([r.example.text for r in calib_lines], threads=args.threads))
        if check:
            check_scores.append(rm.score_texts([e.text for e in check], threads=args.threads))
        per_fold.append(
            {
                "fold": k,
                "sources": len(held),
                "n": len(items),
                "violations": int(y.sum()),
                "lawful": int(len(y) - y.sum()),
                "auc": roc_auc(s, y),
                "removed_examples": len(train) - len(tr),
            }
        )
        print(json.dumps(per_fold[-1]), flush=True)
    cs = np.mean(np.array(calib_scores), axis=0)
    s_all = np.array([o[0] for o in oof] + list(cs))
    y_all = np.array([o[1] for o in oof] + list(y_calib))
    rec = {
        "data": str(args.data),
        "init": str(args.init) if args.init else None,
        "epochs": args.epochs,
        "folds": per_fold,
        "mean_fold_auc": float(np.mean([f["auc"] for f in per_fold])),
        "oof_train_cases_auc": roc_auc(np.array([o[0] for o in oof]), np.array([o[1] for o in oof])),
        "calib_cases_auc": roc_auc(cs, y_calib),
        "calib_lines_auc": roc_auc(np.mean(np.array(line_scores), axis=0), y_lines),
        "calib_lines_auc_per_fold": [roc_auc(np.array(ls), y_lines) for ls in line_scores],
        "pooled_dev_cases_auc": roc_auc(s_all, y_all),
        "pooled_n": len(y_all),
        "pooled_violations": int(y_all.sum()),
        "pooled_lawful": int(len(y_all) - y_all.sum()),
        "check": str(check_path) if check else None,
        "check_auc": roc_auc(np.mean(np.array(check_scores), axis=0), y_check) if check else None,
        "check_lawful_mean_score": float(np.mean(np.array(check_scores), axis=0)[y_check == 0].mean())
        if check
        else None,
        "cpu_seconds": cpu,
        "wall_seconds": time.perf_counter() - t0,
    }
    # Per-item scores (out of fold for the training part's cases, fold mean for calib), for ensembles.
    ls = np.mean(np.array(line_scores), axis=0)
    rec["scores"] = (
        [
            {"ref": ref, "part": "train", "score": o[0], "label": o[1], "fold": o[2]}
            for ref, o in zip(oof_refs, oof, strict=True)
        ]
        + [
            {"ref": r.ref, "part": "calib", "score": float(v), "label": int(yy)}
            for r, v, yy in zip(calib_cases, cs, y_calib, strict=True)
        ]
        + [
            {"ref": r.ref, "part": "calib-lines", "score": float(v), "label": int(yy)}
            for r, v, yy in zip(calib_lines, ls, y_lines, strict=True)
        ]
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cv.json").write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in rec.items() if k not in ("folds", "scores")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
