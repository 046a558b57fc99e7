"""Held-out metrics, the numbers on the model card, and its two plots.

Per-family precision needs negatives that belong to a family: lawful hard-negative groups are tagged in
claims.yaml with the family whose trigger words they carry (最高承重 → absolute_claims), so precision for
a family is TP / (TP + false alarms on that family's hard negatives). Untagged lawful text (corpus lines,
ordinary copy) is reported separately as a false-alarm rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import expected_calibration_error, reliability_bins
from .data import Example


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="mergesort")
    y = labels[order]
    tp = np.cumsum(y)
    prec = tp / np.arange(1, len(y) + 1)
    return float((prec * y).sum() / max(1, y.sum()))


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = np.argsort(np.argsort(np.concatenate([pos, neg]), kind="mergesort"), kind="mergesort") + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def threshold_at_fpr(neg_scores: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold whose false-alarm rate on ``neg_scores`` (score >= t flags) is <= max_fpr."""
    s = np.sort(neg_scores)[::-1]
    k = int(np.floor(max_fpr * len(s)))  # at most k negatives may be flagged
    if k >= len(s):
        return 0.0
    return float(np.nextafter(s[k], np.inf))


def pr_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="mergesort")
    y = labels[order]
    tp = np.cumsum(y)
    precision = tp / np.arange(1, len(y) + 1)
    recall = tp / max(1, y.sum())
    return precision, recall


def compute_metrics(
    scores: Sequence[float], examples: Sequence[Example], threshold: float = 0.5, max_fpr: float = 0.05
) -> dict[str, Any]:
    """Overall and per-family figures for scored held-out examples."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.array([e.label for e in examples])
    pred = s >= threshold
    tp, fp = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum())
    fn = int((~pred & (y == 1)).sum())
    t_fpr = threshold_at_fpr(s[y == 0], max_fpr)
    fam_tp: dict[str, int] = defaultdict(int)
    fam_pos: dict[str, int] = defaultdict(int)
    fam_fp: dict[str, int] = defaultdict(int)
    fam_neg: dict[str, int] = defaultdict(int)
    src_fp: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    src_rec: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e, p in zip(examples, pred, strict=True):
        if e.label == 1:
            fam_pos[e.family] += 1
            fam_tp[e.family] += int(p)
        elif e.family and e.family != "lawful":
            fam_neg[e.family] += 1
            fam_fp[e.family] += int(p)
        else:
            key = "generated" if e.source.startswith("generated") else (e.source or "unknown")
            src_fp[key][0] += int(p)
            src_fp[key][1] += 1
        if e.label == 1:
            key = "generated" if e.source.startswith("generated") else (e.source or "unknown")
            src_rec[key][0] += int(p)
            src_rec[key][1] += 1
    families = {}
    for fam in sorted(set(fam_pos) | set(fam_neg)):
        t, f, n = fam_tp[fam], fam_fp[fam], fam_pos[fam]
        families[fam] = {
            "positives": n,
            "hard_negatives": fam_neg[fam],
            "recall": t / n if n else None,
            "precision": t / (t + f) if fam_neg[fam] and (t + f) else None,
            "false_alarm_rate_hard_negatives": f / fam_neg[fam] if fam_neg[fam] else None,
        }
    para = np.array([e.paraphrase for e in examples])
    return {
        "n": len(y),
        "positives": int(y.sum()),
        "threshold": threshold,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "average_precision": average_precision(s, y),
        "roc_auc": roc_auc(s, y),
        "ece": expected_calibration_error(s, y),
        "brier": float(np.mean((s - y) ** 2)),
        "threshold_at_fpr": t_fpr,
        "max_fpr": max_fpr,
        "recall_at_fpr": float((s[y == 1] >= t_fpr).mean()) if (y == 1).any() else None,
        "paraphrase_recall_at_fpr": float((s[(y == 1) & para] >= t_fpr).mean())
        if ((y == 1) & para).any()
        else None,
        "families": families,
        "lawful_false_alarm_by_source": {k: v[0] / v[1] for k, v in sorted(src_fp.items())},
        "violation_recall_by_source": {k: v[0] / v[1] for k, v in sorted(src_rec.items())},
    }


def format_report(m: dict[str, Any]) -> str:
    """Plain-text table for the CLI and the model card."""

    def pct(v: float | None) -> str:
        return "   -  " if v is None else f"{100 * v:5.1f}%"

    lines = [
        f"held-out examples: {m['n']} ({m['positives']} violations); threshold {m['threshold']:.2f}",
        f"precision {pct(m['precision'])}  recall {pct(m['recall'])}  AP {m['average_precision']:.3f}  "
        f"ROC-AUC {m['roc_auc']:.3f}  ECE {m['ece']:.4f}  Brier {m['brier']:.4f}",
        f"at false-alarm rate <= {m['max_fpr']:.0%} (threshold {m['threshold_at_fpr']:.3f}): recall "
        f"{pct(m['recall_at_fpr'])}, paraphrase-only recall {pct(m['paraphrase_recall_at_fpr'])}",
        "",
        f"{'family':<24}{'viol.':>6}{'hard neg.':>10}{'precision':>11}{'recall':>9}",
    ]
    for fam, r in m["families"].items():
        lines.append(
            f"{fam:<24}{r['positives']:>6}{r['hard_negatives']:>10}{pct(r['precision']):>11}"
            f"{pct(r['recall']):>9}"
        )
    lines.append("")
    lines.append("false-alarm rate on untagged lawful text by source:")
    for src, v in m["lawful_false_alarm_by_source"].items():
        lines.append(f"  {src:<22}{pct(v)}")
    lines.append("recall on violations by source:")
    for src, v in m.get("violation_recall_by_source", {}).items():
        lines.append(f"  {src:<22}{pct(v)}")
    return "\n".join(lines)


def load_listing_set(path: str | Path, tag_category: bool = True) -> list[Example]:
    """A labelled listing file in the contract shape (tests/eval/listings.jsonl: title, description,
    category, attributes, label "violation"/"lawful", families, kind) as examples.

    ``tag_category`` adds the category tag the model was trained with; without it the text is exactly
    Listing.text(), which is what a caller passing bare text gets.
    """
    import json

    from .config import listing_text

    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            label = 1 if r["label"] in ("violation", 1, True) else 0
            fams = r.get("families") or []
            text = listing_text(
                r.get("title", ""),
                r.get("description", ""),
                r.get("category") if tag_category else None,
                r.get("attributes"),
            )
            out.append(
                Example(
                    text=text,
                    label=label,
                    family=fams[0] if label and fams else "lawful",
                    group=r.get("id", ""),
                    source=f"eval:{r.get('kind', '')}",
                    split="eval",
                )
            )
    return out


def save_plots(
    scores: Sequence[float], examples: Sequence[Example], out_dir: str | Path, title: str = ""
) -> list[Path]:
    """reliability.png and precision_recall.png (matplotlib is only needed here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = np.asarray(scores, dtype=np.float64)
    y = np.array([e.label for e in examples])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    bins = reliability_bins(s, y)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.plot(
        [b[0] for b in bins],
        [b[1] for b in bins],
        "o-",
        label=f"model (ECE {expected_calibration_error(s, y):.3f})",
    )
    for b in bins:
        ax.annotate(str(b[2]), (b[0], b[1]), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set_xlabel("predicted probability of violation")
    ax.set_ylabel("observed violation rate")
    ax.set_title(f"Reliability (held-out test) {title}".strip(), fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    paths.append(out / "reliability.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    precision, recall = pr_curve(s, y)
    ax.plot(recall, precision, label=f"all held-out (AP {average_precision(s, y):.3f})")
    para = np.array([e.paraphrase or e.label == 0 for e in examples])
    if para.any() and (y[para] == 1).any():
        p2, r2 = pr_curve(s[para], y[para])
        ax.plot(r2, p2, label=f"paraphrased violations only (AP {average_precision(s[para], y[para]):.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Precision-recall (held-out test) {title}".strip(), fontsize=9)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    paths.append(out / "precision_recall.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
