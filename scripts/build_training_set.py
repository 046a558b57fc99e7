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
    ap.add_argument(
        "--train-scale",
        type=float,
        default=1.0,
        help="generate this many times more training listings (held-out sets stay the same)",
    )
    ap.add_argument(
        "--no-real",
        dest="real",
        action="store_false",
        help="generated material only (the 0.3.0 recipe): no real labelled text, titles and app "
        "descriptions as weak lawful lines",
    )
    ap.add_argument("--case-repeat", type=int, default=6, help="copies of each real training case")
    ap.add_argument(
        "--lawful-case-repeat",
        type=int,
        default=None,
        help="copies of each lawful look-alike training case (default: --case-repeat)",
    )
    ap.add_argument("--line-repeat", type=int, default=3, help="copies of each real labelled training line")
    ap.add_argument(
        "--copy-repeat",
        type=int,
        default=None,
        help="copies of each clothing ad copy (default: --line-repeat)",
    )
    ap.add_argument(
        "--real-dir",
        type=Path,
        default=None,
        help="read the real sets from this frozen copy of tests/real (experiments)",
    )
    ap.add_argument(
        "--regulated",
        type=int,
        default=0,
        help="add this many listings written from the cited lawful wording of regulated products "
        "(scripts/data/lawful_regulated.yaml, about half lawful, half unlawful counterparts)",
    )
    ap.add_argument(
        "--regulated-file", type=Path, default=REPO / "scripts" / "data" / "lawful_regulated.yaml"
    )
    ap.add_argument(
        "--lookalikes",
        type=int,
        default=0,
        help="add this many minimal pairs of lawful look-alikes and their violations (LEGAL.md §3 "
        "exemptions, rules/frames.yaml), plus rules/lawful_wording.yaml's examples and extra copies of "
        "the training rules' pass examples (moderation/classifier/lookalikes.py)",
    )
    ap.add_argument("--lookalike-wording-repeat", type=int, default=3)
    ap.add_argument("--lookalike-pass-repeat", type=int, default=2)
    ap.add_argument("--lawful-wording", type=Path, default=REPO / "rules" / "lawful_wording.yaml")
    ap.add_argument(
        "--rule-lawful",
        type=int,
        default=0,
        help="add this many unlabelled corpus lines (queries, reviews, apps) that the rules pass, as "
        "lawful, together with the lines the rules flag, as violations (moderation/classifier/distil.py)",
    )
    ap.add_argument("--rule-flagged-max", type=int, default=5000, help="at most this many rule-flagged lines")
    ap.add_argument("--rule-flagged-repeat", type=int, default=1, help="copies of each rule-flagged line")
    ap.add_argument(
        "--rule-sources", default="queries,reviews,apps", help="corpora the rule-labelled lines come from"
    )
    args = ap.parse_args(argv)
    if args.real_dir is not None:
        from moderation.classifier.realdata import use_real_dir

        use_real_dir(args.real_dir)
    t0 = time.perf_counter()
    # claims.yaml holds the groups and the fixed held-out list; claims_*.yaml files add training groups.
    claims, extra = claim_files(args.lexicons)
    kw: dict[str, object] = {}
    if args.real:
        from moderation.classifier.realdata import is_held_out, load_real, real_split, training_examples

        lawful_dev_titles = {
            r.raw.strip()
            for r in load_real()
            if r.example.source == "real:titles" and r.label == "lawful" and r.example.split != "test"
        }
        # Real test lines (and near duplicates) are never used; titles carry generated claims only when a
        # blind labeller called them lawful; app descriptions are not lawful material (37% violations).
        kw = {
            "exclude": is_held_out,
            "carrier_ok": lambda t: t.strip() in lawful_dev_titles,
            "weak_weights": {"reviews": 0.7, "queries": 0.3},
        }
    data = build_dataset(
        args.lexicons / "templates.yaml",
        claims,
        args.corpora,
        args.packs,
        seed=args.seed,
        n_generated=args.generated,
        n_corpus=args.corpus,
        extra_claims=extra,
        train_scale=args.train_scale,
        **kw,
    )  # type: ignore[arg-type]
    if args.real:
        import random

        real_train = training_examples(
            args.case_repeat, args.line_repeat, args.lawful_case_repeat, args.copy_repeat
        )
        data["train"].extend(real_train)
        random.Random(f"{args.seed}:train-order-real").shuffle(data["train"])
        data["calib_real"] = [r.example for r in real_split("calib")]
        lawful_x = "" if args.lawful_case_repeat is None else f", lawful cases x{args.lawful_case_repeat}"
        print(
            f"real: {len(real_train)} training examples (cases x{args.case_repeat}{lawful_x}, lines x{args.line_repeat}), "
            f"{len(data['calib_real'])} for calibration; the real test set is never written here"
        )
    if args.regulated:
        import random

        from moderation.classifier.realdata import is_held_out
        from moderation.classifier.regulated import regulated_examples

        excl = is_held_out if args.real else None
        reg, dropped = regulated_examples(args.regulated_file, args.regulated, args.seed, "train", excl)
        data["train"].extend(reg)
        random.Random(f"{args.seed}:train-order-regulated").shuffle(data["train"])
        # Held-out products only: a check that the lawful/unlawful distinction carries to new products.
        data["regulated_check"], dropped_check = regulated_examples(
            args.regulated_file, max(200, args.regulated // 4), args.seed, "check", excl
        )
        print(
            f"regulated: {len(reg)} training listings ({sum(e.label for e in reg)} unlawful), "
            f"{len(data['regulated_check'])} check listings on held-out products; "
            f"{dropped + dropped_check} drafts dropped as near duplicates of real test items"
        )
    if args.lookalikes:
        import random

        from moderation.classifier.lookalikes import lookalike_examples
        from moderation.classifier.realdata import is_held_out

        la, dropped = lookalike_examples(
            args.lookalikes,
            args.seed,
            args.packs,
            args.lawful_wording,
            wording_repeat=args.lookalike_wording_repeat,
            pass_repeat=args.lookalike_pass_repeat,
            exclude=is_held_out if args.real else None,
        )
        for e in la:
            e.split = "train"
        data["train"].extend(la)
        random.Random(f"{args.seed}:train-order-lookalikes").shuffle(data["train"])
        print(
            f"look-alikes: {len(la)} training examples ({sum(e.label for e in la)} violations), "
            f"{dropped} dropped as near duplicates of real test items"
        )
    if args.rule_lawful:
        import random

        from moderation.classifier.distil import rule_labelled_examples

        rl, stats = rule_labelled_examples(  # never a line a real set holds (distil.real_set_line)
            args.corpora,
            n_lawful=args.rule_lawful,
            max_flagged=args.rule_flagged_max,
            flagged_repeat=args.rule_flagged_repeat,
            seed=args.seed,
            sources=args.rule_sources.split(","),
        )
        data["train"].extend(rl)
        random.Random(f"{args.seed}:train-order-rules").shuffle(data["train"])
        read = ", ".join(f"{k} {v['flagged']}/{v['lines']}" for k, v in stats.items())
        print(
            f"rule-labelled lines: {len(rl)} training examples ({sum(e.label for e in rl)} flagged); read {read}"
        )
    for name, exs in data.items():
        write_jsonl(args.out / f"{name}.jsonl", exs)
    if not args.real:
        (args.out / "calib_real.jsonl").unlink(missing_ok=True)
    summary = describe_split({k: v for k, v in data.items() if k in ("train", "calib", "test")})
    (args.out / "split.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    for name in ("train", "calib", "test"):
        s = summary[name]
        print(
            f"{name}: {s['n']} examples, {s['positives']} violations, {len(s['groups'])} claim groups, "
            f"templates {','.join(s['templates'])}"
        )
    print(f"group overlap train/held-out: {summary['group_overlap_train_heldout'] or 'none'}")
    print(f"wrote {args.out} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
