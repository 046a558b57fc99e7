"""Train the risk classifier and write models/risk-classifier/ (weights, tokenizer, calibration).

    .venv/bin/python scripts/build_training_set.py
    .venv/bin/python scripts/train_classifier.py [--epochs 3] [--mlm-steps 2000] [--out models/risk-classifier]
    .venv/bin/python scripts/eval_classifier.py      # metrics, plots and numbers for MODEL_CARD.md

Pre-train once, fine-tune many recipes from it (the masked LM is most of the cost):

    .venv/bin/python scripts/train_classifier.py --pretrain-only --mlm-steps 6000 --mlm-snapshots 1000,3000 \
        --vocab-data var/classifier/data-big/train.jsonl --out var/classifier/pre/m6k
    .venv/bin/python scripts/train_classifier.py --data var/classifier/data --init var/classifier/pre/m6k \
        --mlm-steps 0 --out var/classifier/runs/NAME
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from moderation.classifier.config import ModelSpec  # noqa: E402
from moderation.classifier.entities import DEFAULT_KINDS, ENTITY_FILE  # noqa: E402
from moderation.classifier.pipeline import DEFAULT_DATA_DIR, DEFAULT_PRETRAIN_DIR, train_from_data_dir  # noqa: E402
from moderation.classifier.train import TrainConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "risk-classifier")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument(
        "--mlm-steps",
        type=int,
        default=2000,
        help="masked-LM pre-training steps on corpus lines (0 = none; the shipped model used 600)",
    )
    ap.add_argument(
        "--corpora",
        type=Path,
        default=REPO.parent / "shared" / "corpora",
        help="unlabelled lines for --mlm-steps (training-split lines only)",
    )
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument(
        "--threads",
        type=int,
        default=TrainConfig.threads,
        help="torch threads; 1 avoids OpenMP spin contention on a shared 2-core machine",
    )
    ap.add_argument("--from-decisions", default=None, help="JSONL of {text,label} or a SQLAlchemy URL")
    ap.add_argument("--hidden-size", type=int, default=ModelSpec.hidden_size)
    ap.add_argument("--intermediate-size", type=int, default=ModelSpec.intermediate_size)
    ap.add_argument("--heads", type=int, default=ModelSpec.num_attention_heads)
    ap.add_argument("--layers", type=int, default=ModelSpec.num_hidden_layers)
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this checkpoint (tokenizer + weights) instead of from scratch",
    )
    ap.add_argument(
        "--no-fold",
        action="store_true",
        help="do not fold traditional characters and full-width ASCII (textfold.py) before the model",
    )
    ap.add_argument(
        "--no-pretrain-text",
        action="store_true",
        help="masked-LM on ../shared/corpora only, not the package texts of build_pretrain_text.py",
    )
    ap.add_argument("--mlm-lr", type=float, default=None, help="masked-LM learning rate (default: --lr)")
    ap.add_argument(
        "--pretrain-only",
        action="store_true",
        help="masked-LM pre-training only: write an encoder checkpoint for --init (see above)",
    )
    ap.add_argument(
        "--mlm-snapshots",
        default="",
        help="with --pretrain-only: also save the encoder at these steps (comma-separated)",
    )
    ap.add_argument(
        "--vocab-data",
        type=Path,
        action="append",
        default=[],
        help="with --pretrain-only: train.jsonl files the vocabulary must cover (repeatable)",
    )
    ap.add_argument(
        "--no-test",
        action="store_true",
        help="experiments: score the real calib part only, not the generated or real test sets",
    )
    ap.add_argument(
        "--real-dir",
        type=Path,
        default=None,
        help="read the real sets from this frozen copy of tests/real (experiments)",
    )
    ap.add_argument(
        "--entities",
        action="store_true",
        help="tag the names of well-known people and other marketplaces (rules lexicons) before the model "
        "reads a text (moderation/classifier/entities.py); a soup takes its members' setting",
    )
    ap.add_argument(
        "--entity-kinds",
        default=",".join(DEFAULT_KINDS),
        help="with --entities: the kinds of names tagged, comma-separated (person, marketplace, brand)",
    )
    ap.add_argument(
        "--soup",
        type=Path,
        action="append",
        default=[],
        help="average the weights of these fine-tuned checkpoints (repeat; seeds of one recipe from one "
        "encoder) into --out, calibrated on --data's calib_real.jsonl (pipeline.soup_models)",
    )
    args = ap.parse_args(argv)
    if args.real_dir is not None:
        from moderation.classifier.realdata import use_real_dir

        use_real_dir(args.real_dir)
    spec = ModelSpec(
        hidden_size=args.hidden_size,
        intermediate_size=args.intermediate_size,
        num_attention_heads=args.heads,
        num_hidden_layers=args.layers,
    )
    cfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        mlm_steps=args.mlm_steps,
        seed=args.seed,
        threads=args.threads,
        fold="" if args.no_fold else "t2s",
        entities=ENTITY_FILE if args.entities else "",
        entity_kinds=tuple(k for k in args.entity_kinds.split(",") if k),
        mlm_lr=args.mlm_lr,
    )
    if args.soup:
        from moderation.classifier.pipeline import soup_models

        rec = soup_models(args.soup, args.data, args.out, cfg, score_tests=not args.no_test)
        print(
            json.dumps({k: rec[k] for k in ("soup_of", "calibration", "real")}, ensure_ascii=False, indent=2)
        )
        return 0
    if args.pretrain_only:
        from moderation.classifier.pipeline import pretrain_encoder

        snaps = [int(x) for x in args.mlm_snapshots.split(",") if x.strip()]
        rec = pretrain_encoder(
            args.out,
            cfg,
            args.corpora,
            vocab_data=args.vocab_data,
            spec=spec,
            pretrain_dir=None if args.no_pretrain_text else DEFAULT_PRETRAIN_DIR,
            snapshot_steps=snaps,
        )
        print(
            json.dumps(
                {
                    k: rec[k]
                    for k in (
                        "total_seconds",
                        "cpu_seconds",
                        "mlm_seconds",
                        "mlm_cpu_seconds",
                        "mlm_loss_first",
                        "mlm_loss_last",
                        "mlm_eval_loss_last",
                    )
                },
                indent=2,
            )
        )
        return 0
    record = train_from_data_dir(
        args.data,
        args.out,
        cfg,
        decisions=args.from_decisions,
        corpora=args.corpora if args.mlm_steps else None,
        spec=spec,
        init=args.init,
        pretrain_dir=None if args.no_pretrain_text else DEFAULT_PRETRAIN_DIR,
        score_tests=not args.no_test,
    )
    print(
        json.dumps(
            {
                k: record[k]
                for k in (
                    "total_seconds",
                    "cpu_seconds",
                    "train_seconds",
                    "train_cpu_seconds",
                    "mlm_seconds",
                    "total_seconds_with_pretrain",
                    "cpu_seconds_with_pretrain",
                    "calibration",
                    "test",
                    "real",
                )
                if k in record
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
