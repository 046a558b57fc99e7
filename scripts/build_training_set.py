"""Build the classifier's train / calib / test JSONL files (seeded, reproducible).

    .venv/bin/python scripts/build_training_set.py [--corpora ../shared/corpora] [--out var/classifier/data]

Output goes under var/ (git-ignored): it contains corpus text, which must never enter the repository.
See moderation/classifier/synth.py for how examples are made and how the split keeps paraphrase
families and templates of the test set out of training.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moderation.classifier.data import write_jsonl  # noqa: E402
from moderation.classifier.synth import build_dataset, claim_files, describe_split  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", type=Path, default=REPO.parent / "shared" / "corpora")
    ap.add_argument("--packs", type=Path, default=REPO / "rules" / "packs")
    ap.add_argument("--lexicons", type=Path, default=REPO / "scripts" / "data")
    ap.add_argument("--out", type=Path, default=REPO / "var" / "classifier" / "data")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--generated", type=int, default=52000, help="generated listings (train + held out)")
    ap.add_argument("--corpus", type=int, default=20000, help="corpus lines used as lawful material")
    ap.add_argument("--train-scale", type=float, default=3.5,
                    help="generate this many times more training listings (held-out sets stay the same)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    # claims.yaml holds the groups and the fixed held-out list; claims_*.yaml files add training groups.
    claims, extra = claim_files(args.lexicons)
    data = build_dataset(args.lexicons / "templates.yaml", claims, args.corpora,
                         args.packs, seed=args.seed, n_generated=args.generated, n_corpus=args.corpus,
                         extra_claims=extra, train_scale=args.train_scale)
    for name, exs in data.items():
        write_jsonl(args.out / f"{name}.jsonl", exs)
    summary = describe_split(data)
    (args.out / "split.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for name in ("train", "calib", "test"):
        s = summary[name]
        print(f"{name}: {s['n']} examples, {s['positives']} violations, {len(s['groups'])} claim groups, "
              f"templates {','.join(s['templates'])}")
    print(f"group overlap train/held-out: {summary['group_overlap_train_heldout'] or 'none'}")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
