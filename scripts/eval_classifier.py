"""Evaluate a classifier checkpoint on the held-out test split and write the model card's figures.

    .venv/bin/python scripts/eval_classifier.py [--model models/risk-classifier] [--plots models]

Prints the per-family report, writes metrics.json into the model directory and reliability.png /
precision_recall.png into --plots (models/ by default, next to MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moderation.classifier.data import read_jsonl  # noqa: E402
from moderation.classifier.evaluate import (  # noqa: E402
    compute_metrics,
    format_report,
    load_listing_set,
    save_plots,
)
from moderation.classifier.pipeline import DEFAULT_DATA_DIR  # noqa: E402
from moderation.classifier.predict import load_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "risk-classifier")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR / "test.jsonl")
    ap.add_argument("--plots", type=Path, default=None, help="where to write the PNGs (default: none)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--eval-set",
        type=Path,
        default=None,
        help="optional labelled listings JSONL reported separately (off by default: the hand-written "
        "tests/eval set is to be used only through scripts/eval_rules.py --split dev --classifier)",
    )
    args = ap.parse_args(argv)
    rm = load_model(args.model)
    test = read_jsonl(args.data)
    scores = rm.score_texts([e.text for e in test], threads=args.threads)
    m = compute_metrics(scores, test)
    print(f"model {rm.name} ({args.model})")
    print(format_report(m))
    (args.model / "metrics.json").write_text(
        json.dumps(m, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    if args.plots:
        for p in save_plots(scores, test, args.plots, title=rm.name):
            print(f"wrote {p}")
    if args.eval_set is not None and args.eval_set.exists():
        out = {}
        for tagged in (True, False):
            ev = load_listing_set(args.eval_set, tag_category=tagged)
            em = compute_metrics(rm.score_texts([e.text for e in ev], threads=args.threads), ev)
            how = "with category tag (score_listings)" if tagged else "bare Listing.text() (score_texts)"
            print(f"\n=== hand-written evaluation set {args.eval_set.name}, {how} ===")
            print(format_report(em))
            out["tagged" if tagged else "bare"] = em
        (args.model / "metrics_eval_set.json").write_text(
            json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
