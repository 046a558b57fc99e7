"""Train the category model (character-bigram naive Bayes) on the development half of the real sets.

    python scripts/train_category.py              # writes models/category/, prints held-out figures
    python scripts/train_category.py --no-save    # evaluate only

Training text: blind-labelled corpus lines and enforcement cases of the ``dev`` split (their labelled
category). The ``test`` split is held out and reported: accuracy, and per category the precision and
recall of inferring it for a listing that arrives as ``general`` (with the confidence rules of
moderation/rules/category.py). Only bigram statistics are saved, never corpus text.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from moderation.evaluation.realsets import RealItem, load_cases, load_corpus_labels  # noqa: E402
from moderation.paths import models_dir, rules_dir  # noqa: E402
from moderation.rules.category import CategoryInferrer, CategoryModel, features  # noqa: E402
from moderation.rules.pack import Lexicons  # noqa: E402
from moderation.schema import CATEGORIES  # noqa: E402
from moderation.text.normalise import fold_term  # noqa: E402

ALPHA = 0.5
MIN_DF = 2


def train(items: list[RealItem]) -> CategoryModel:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    docs = Counter(i.category for i in items)
    df: Counter[str] = Counter()
    for item in items:
        feats = set(features(fold_term(item.text)))
        counts[item.category].update(feats)
        df.update(feats)
    vocab_list = sorted(f for f, n in df.items() if n >= MIN_DF)
    vocab = {f: i for i, f in enumerate(vocab_list)}
    cats = [c for c in CATEGORIES if docs[c] > 0]
    weights = np.zeros((len(vocab), len(cats)), dtype=np.float32)
    prior = np.zeros(len(cats), dtype=np.float64)
    n_items = len(items)
    for j, cat in enumerate(cats):
        total = sum(counts[cat][f] for f in vocab)
        denom = total + ALPHA * len(vocab)
        prior[j] = np.log(docs[cat] / n_items)
        for f, i in vocab.items():
            weights[i, j] = np.log((counts[cat][f] + ALPHA) / denom)
    return CategoryModel(cats, prior, vocab, weights)


def evaluate(inferrer: CategoryInferrer, items: list[RealItem]) -> dict[str, dict[str, int]]:
    per: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        guess = inferrer.infer(fold_term(item.text))
        predicted = guess.category if guess else "general"
        per[item.category]["n"] += 1
        per[predicted]["predicted"] += 1
        per[predicted]["correct"] += predicted == item.category
    return {k: dict(v) for k, v in per.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=models_dir() / "category")
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    items = [*load_corpus_labels(), *load_cases()]
    dev = [i for i in items if i.split == "dev"]
    test = [i for i in items if i.split == "test"]
    model = train(dev)
    lexicons = Lexicons(rules_dir() / "lexicons")
    inferrer = CategoryInferrer.load(lexicons, Path("/nonexistent"))
    inferrer.model = model
    per = evaluate(inferrer, test)
    correct = sum(v.get("correct", 0) for v in per.values())
    print(f"trained on {len(dev)} dev items, {len(model.vocab)} features; held-out test items: {len(test)}")
    print(f"accuracy (general when not confident): {correct / len(test):.3f}")
    print(f"{'category':16s} {'n':>5s} {'inferred':>8s} {'precision':>9s} {'recall':>7s}")
    for cat in sorted(per):
        v = per[cat]
        prec = v.get("correct", 0) / v["predicted"] if v.get("predicted") else float("nan")
        rec = v.get("correct", 0) / v["n"] if v.get("n") else float("nan")
        print(f"{cat:16s} {v.get('n', 0):5d} {v.get('predicted', 0):8d} {prec:9.2f} {rec:7.2f}")
    if not args.no_save:
        info = {
            "name": "category-nb",
            "trained_on": f"dev split of tests/real (corpus labels and cases): {len(dev)} items",
            "features": "character bigrams of Chinese runs and Latin words of 3+ letters, document frequency >= 2",
            "smoothing": ALPHA,
            "held_out_accuracy": round(correct / len(test), 4),
        }
        model.save(args.out, info)
        print(f"saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
