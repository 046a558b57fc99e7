"""How faithful and how fast are the classifier's explanations (moderation/classifier/explain.py)?

    .venv/bin/python scripts/eval_explanations.py [--model models/risk-classifier] [--part test] [--n 150]

On the real items of --part that the model scores highest (the ones a reviewer would see explained),
compares the score drop when the explained spans are deleted with the drop when as many characters of
other words, chosen at random, are deleted (a deletion test), and times explain_listing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moderation.classifier.explain import _words, explain_fields  # noqa: E402
from moderation.classifier.predict import load_model  # noqa: E402
from moderation.classifier.realdata import real_split  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=REPO / "models" / "risk-classifier")
    ap.add_argument("--part", default="test")
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rm = load_model(args.model)
    items = real_split(args.part)
    scores = rm.score_texts([r.example.text for r in items])
    top = sorted(range(len(items)), key=lambda i: -scores[i])[: args.n]
    rng = random.Random(0)
    drops_expl, drops_rand, times, n_spans, hits = [], [], [], [], 0
    explain_fields(rm, [("title", "预热")], "general")  # jieba and sessions warm
    for i in top:
        r = items[i]
        t0 = time.perf_counter()
        spans = explain_fields(rm, [("title", r.raw)], r.category)
        times.append(time.perf_counter() - t0)
        if not spans:
            continue
        n_spans.append(len(spans))
        cut = sorted(((s.start, s.end) for s in spans), reverse=True)
        text = r.raw
        for s, e in cut:
            text = text[:s] + text[e:]
        k = sum(e - s for s, e in cut)
        others = [w for w in _words(r.raw) if not any(s < w[1] and w[0] < e for s, e in cut)]
        rng.shuffle(others)
        chosen, total = [], 0
        for w in others:
            if total >= k:
                break
            chosen.append(w)
            total += w[1] - w[0]
        rand_text = r.raw
        for s, e in sorted(chosen, reverse=True):
            rand_text = rand_text[:s] + rand_text[e:]
        a, b = rm.score_listings(
            [{"title": text, "category": r.category}, {"title": rand_text, "category": r.category}]
        )
        drops_expl.append(scores[i] - a)
        drops_rand.append(scores[i] - b)
        hits += int(scores[i] - a > scores[i] - b)
    n = len(drops_expl)
    print(f"model {rm.name} ({rm.backend}); {n} highest-scoring real {args.part} items explained")
    print(
        f"mean score drop, explained spans deleted: {statistics.mean(drops_expl):.3f}; "
        f"same number of characters of other words deleted: {statistics.mean(drops_rand):.3f}; "
        f"explained > random on {hits / n:.0%} of items"
    )
    print(f"spans per explanation: mean {statistics.mean(n_spans):.1f}")
    times.sort()
    print(
        f"explain_listing time ({args.threads} thread(s)): p50 {1000 * statistics.median(times):.1f} ms, "
        f"p95 {1000 * times[int(0.95 * (len(times) - 1))]:.1f} ms, max {1000 * times[-1]:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
