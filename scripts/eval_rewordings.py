"""Recall of the rules on reworded real violations: does a rule catch the claim, or only its words?

``tests/eval/rewordings.jsonl`` holds two rewordings of each of 240 real violations from the dev half of
the enforcement cases (``of`` names the case item; the rules caught every original). Helpers who never saw
the rules wrote them: one with other words (synonyms, another disease or number), one with another
structure (reordered, split, a question, a testimonial, adverbs inserted, numbers in Chinese). A miss
means a rule matched the original's wording rather than its shape. Generated text, so a development
check (tests/test_rewordings.py keeps a floor), never a figure about real listings.

    .venv/bin/python scripts/eval_rewordings.py [--show]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from moderation.checker import Checker  # noqa: E402

REWORDINGS = REPO / "tests" / "eval" / "rewordings.jsonl"


def load() -> list[dict[str, str]]:
    with REWORDINGS.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def recall(
    checker: Checker, rows: list[dict[str, str]]
) -> tuple[float, dict[str, list[int]], list[dict[str, str]]]:
    """Overall recall, [rows, caught] per family, and the rows missed."""
    results = checker.check_many(
        [{"id": r["id"], "title": r["text"], "category": r["category"]} for r in rows]
    )
    per_family: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    missed = []
    for row, result in zip(rows, results, strict=True):
        counts = per_family[row["family"]]
        counts[0] += 1
        if result.verdict in ("review", "block"):
            counts[1] += 1
        else:
            missed.append(row)
    return 1 - len(missed) / len(rows), dict(per_family), missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show", action="store_true", help="print the rewordings the rules miss")
    args = ap.parse_args()
    rows = load()
    share, per_family, missed = recall(Checker(classifier=False), rows)
    print(f"rewordings caught: {len(rows) - len(missed)}/{len(rows)} = {share:.3f}")
    for family, (n, caught) in sorted(per_family.items(), key=lambda kv: -kv[1][0]):
        print(f"  {family:26s} {caught}/{n} = {caught / n:.2f}")
    if args.show:
        for row in missed:
            print(f"MISS {row['family']:24s} {row['category']:16s} {row['text']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
