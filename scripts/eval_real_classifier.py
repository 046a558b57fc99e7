"""Score a classifier checkpoint on the real-text sets (enforcement cases, blind-labelled listings).

    .venv/bin/python scripts/eval_real_classifier.py [--model models/risk-classifier] [--part test] [--json OUT]
    .venv/bin/python scripts/eval_real_classifier.py --part test --plots models     # the model card's plots
    .venv/bin/python scripts/eval_real_classifier.py --model NEW --threshold T --baseline models/risk-classifier \
        --baseline-threshold T0 --part test --with-rules      # a candidate against the shipped model, one run

Reports ROC-AUC (with a 90% group-bootstrap interval) on cases (violations vs lawful look-alikes) and
on labelled corpus lines (titles, app descriptions), ECE on the part, and what the policy's review
threshold (or --threshold) flags. ``--part calib`` is the real dev hold-out used for calibration and
model selection; ``test`` is the fixed real test set (report only).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moderation.classifier.predict import load_model  # noqa: E402
from moderation.classifier.realdata import RealExample, format_real_report, real_report, real_split  # noqa: E402


def policy_threshold() -> float:
    import yaml

    d = yaml.safe_load((REPO / "rules" / "policy.yaml").read_text(encoding="utf-8"))
    return float(d["classifier"]["review_threshold"])


def with_rules(items: list[RealExample], scores: list[float], thr: float) -> dict[str, dict[str, float]]:
    """Rules alone (Checker(classifier=False): verdict review or block) vs rules + the score at ``thr``."""
    from moderation.checker import Checker

    checker = Checker(classifier=False)
    results = checker.check_many(
        [{"id": f"r{i}", "title": r.raw, "category": r.category} for i, r in enumerate(items)]
    )
    out: dict[str, dict[str, float]] = {}
    for kind in ("lines", "cases"):
        idx = [i for i, r in enumerate(items) if r.kind == kind and r.label in ("violation", "lawful")]
        y = [items[i].label == "violation" for i in idx]
        rules = [results[i].verdict in ("review", "block") for i in idx]
        both = [r or scores[i] >= thr for r, i in zip(rules, idx, strict=True)]
        pos, neg = sum(y), len(y) - sum(y)
        d: dict[str, float] = {"violations": pos, "lawful": neg}
        for name, flag in (("rules", rules), ("both", both)):
            d[f"{name}_tp"] = sum(f and t for f, t in zip(flag, y, strict=True))
            d[f"{name}_fp"] = sum(f and not t for f, t in zip(flag, y, strict=True))
            d[f"{name}_recall"] = d[f"{name}_tp"] / pos
            d[f"{name}_fpr"] = d[f"{name}_fp"] / neg
        d["added_recall"] = d["both_recall"] - d["rules_recall"]
        d["added_fpr"] = d["both_fpr"] - d["rules_fpr"]
        out[kind] = d
    return out


def paired_auc_difference(
    new: list[float], old: list[float], items: list[RealExample], kind: str, n: int = 1000, seed: int = 0
) -> dict[str, float]:
    """new − old ROC-AUC on one kind of binary item, with a 90% interval from a paired bootstrap over
    whole groups (cases by source, lines by near-duplicate key): both models are scored on the same
    resampled items, so the interval is that of the difference, not of either AUC."""
    import numpy as np

    from moderation.classifier.evaluate import roc_auc

    idx = [i for i, r in enumerate(items) if r.kind == kind and r.label in ("violation", "lawful")]
    y = np.array([items[i].label == "violation" for i in idx], dtype=int)
    a, b = np.array([new[i] for i in idx]), np.array([old[i] for i in idx])
    groups = sorted({items[i].key for i in idx})
    gid = {g: k for k, g in enumerate(groups)}
    members: list[list[int]] = [[] for _ in groups]
    for j, i in enumerate(idx):
        members[gid[items[i].key]].append(j)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        pick = np.concatenate([members[k] for k in rng.integers(0, len(groups), len(groups))])
        yy = y[pick]
        if yy.min() == yy.max():
            continue
        diffs.append(roc_auc(a[pick], yy) - roc_auc(b[pick], yy))
    d = np.array(diffs)
    return {
        "difference": roc_auc(a, y) - roc_auc(b, y),
        "ci90": (float(np.percentile(d, 5)), float(np.percentile(d, 95))),
        "p_new_not_better": float((d <= 0).mean()),
    }


def _print_with_rules(per_kind: dict[str, dict[str, Any]], tag: str) -> None:
    """One line per kind of real item: what the rules find alone and what the score adds to them."""
    for kind, d in per_kind.items():
        print(
            f"{kind}{tag}: rules alone recall {d['rules_recall']:.1%} ({d['rules_tp']}/{d['violations']}), false "
            f"alarms {d['rules_fpr']:.1%} ({d['rules_fp']}/{d['lawful']}); rules + classifier recall "
            f"{d['both_recall']:.1%} ({d['both_tp']}), false alarms {d['both_fpr']:.1%} ({d['both_fp']}): "
            f"+{d['added_recall']:.1%} recall, +{d['added_fpr']:.2%} false alarms"
        )


def _finite(value: Any) -> Any:
    """The report with NaN (a share of no items, the AUC of a set without cases) written as null, which
    strict JSON readers accept."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "risk-classifier")
    ap.add_argument(
        "--part", default="test", choices=["train", "calib", "test", "all"], help="all: only with --corpus"
    )
    ap.add_argument("--threshold", type=float, default=None, help="default: classifier.review_threshold")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--plots",
        type=Path,
        default=None,
        help="write reliability.png and precision_recall.png of this part (binary items) into this folder",
    )
    ap.add_argument(
        "--with-rules",
        action="store_true",
        help="also: rules alone vs rules + classifier (score >= threshold sends to review)",
    )
    ap.add_argument(
        "--real-dir",
        type=Path,
        default=None,
        help="read the real sets from this frozen copy of tests/real (A/B runs on identical items)",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also score this model (the shipped one) in the same run: both reports, the replacement "
        "rule (feedback.compare) and paired-bootstrap intervals of the AUC differences",
    )
    ap.add_argument("--baseline-threshold", type=float, default=None, help="default: the policy's")
    ap.add_argument(
        "--corpus",
        default=None,
        help="score only the labelled lines of this corpus file (e.g. multicpr_titles.txt) in --part; "
        "--part all reads the whole set, which is unseen only until a model trains on its dev rows",
    )
    args = ap.parse_args(argv)
    if args.part == "all" and not args.corpus:
        ap.error("--part all needs --corpus")
    if args.real_dir is not None:
        from moderation.classifier.realdata import use_real_dir

        use_real_dir(args.real_dir)
    t0 = time.perf_counter()
    rm = load_model(args.model)
    if args.corpus:
        from moderation.classifier.realdata import load_real

        items = [
            r
            for r in load_real()
            if r.kind == "lines"
            and r.ref.startswith(f"{args.corpus}:")
            and (args.part == "all" or r.example.split == args.part)
        ]
        if not items:
            raise SystemExit(
                f"no labelled lines of {args.corpus!r} in part {args.part!r} (a corpus file name as labels "
                "name it; an extra corpus must be in var/corpora: tests/real/README.md)"
            )
        part = f"{args.corpus} ({args.part})"
    else:
        items = real_split(args.part, binary=False)
        part = args.part
    scores = rm.score_texts([r.example.text for r in items], threads=args.threads)
    thr = args.threshold if args.threshold is not None else policy_threshold()
    rep = real_report(scores, items, threshold=thr)
    print(f"model {rm.name} ({args.model}), {len(items)} real {part} items, {time.perf_counter() - t0:.1f}s")
    print(format_real_report(rep, part))
    if args.with_rules:
        rep["with_rules"] = with_rules(items, scores, thr)
        _print_with_rules(rep["with_rules"], "")
    if args.plots is not None:
        from moderation.classifier.evaluate import save_plots

        binary = [(s, r.example) for s, r in zip(scores, items, strict=True) if r.label != "conditional"]
        for p in save_plots(
            [s for s, _ in binary], [e for _, e in binary], args.plots, title=f"{rm.name}, real {part}"
        ):
            print(f"wrote {p}")
    if args.baseline is not None:
        from moderation.classifier.feedback import compare

        old = load_model(args.baseline)
        old_scores = old.score_texts([r.example.text for r in items], threads=args.threads)
        old_thr = args.baseline_threshold if args.baseline_threshold is not None else policy_threshold()
        old_rep = real_report(old_scores, items, threshold=old_thr)
        print(f"baseline {old.name} ({args.baseline})")
        print(format_real_report(old_rep, part))
        if args.with_rules:
            old_rep["with_rules"] = with_rules(items, old_scores, old_thr)
            _print_with_rules(old_rep["with_rules"], " (baseline)")
        ok, reasons = compare(old_rep, rep)
        kinds = [
            k
            for k in ("cases", "lines")
            if {r.label for r in items if r.kind == k} >= {"violation", "lawful"}
        ]
        diffs = {k: paired_auc_difference(scores, old_scores, items, k) for k in kinds}
        for k, d in diffs.items():
            print(
                f"{k}: AUC new − baseline {d['difference']:+.4f} (paired 90% CI {d['ci90'][0]:+.3f}–"
                f"{d['ci90'][1]:+.3f}; share of resamples where new is not better {d['p_new_not_better']:.2f})"
            )
        print("replacement rule: " + ("accepted" if ok else "refused: " + "; ".join(reasons)))
        rep["baseline"] = {"model": old.name, "path": str(args.baseline), "report": old_rep}
        rep["comparison"] = {"accepted": ok, "reasons": reasons, "auc_difference": diffs}
    if args.json:
        args.json.write_text(json.dumps(_finite(rep), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
