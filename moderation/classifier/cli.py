"""`moderation train` and `moderation eval`: retrain and evaluate the risk classifier.

The lead registers these on the main click group (main.add_command(train); main.add_command(eval_cmd)).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .config import default_model_dir, repo_root
from .errors import ModelLoadError
from .pipeline import DEFAULT_DATA_DIR, QueueExportPending, train_from_data_dir
from .train import TrainConfig


@click.command("train")
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True, help="fine-tuning epochs")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=repo_root() / "models" / "risk-classifier",
    show_default=True,
    help="checkpoint directory to write",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="train/calib/test JSONL from scripts/build_training_set.py",
)
@click.option(
    "--from-decisions",
    "decisions",
    metavar="DB_URL_OR_FILE",
    default=None,
    help="add reviewer decisions: a JSONL file of {text, label}, or a SQLAlchemy URL whose database "
    "has a classifier_training_decisions(text, label) table or view (the review-queue export "
    "is pending, so today only the JSONL form has a producer)",
)
@click.option(
    "--mlm-steps",
    type=int,
    default=2000,
    show_default=True,
    help="masked-LM pre-training steps on training-split corpus lines (0 = none)",
)
@click.option("--threads", type=int, default=TrainConfig.threads, show_default=True)
@click.option("--seed", type=int, default=TrainConfig.seed, show_default=True)
def train(
    epochs: int, out: Path, data: Path, decisions: str | None, mlm_steps: int, threads: int, seed: int
) -> None:
    """Train the risk classifier, calibrate it, and write OUT (weights, tokenizer, calibration.json)."""
    cfg = TrainConfig(epochs=epochs, mlm_steps=mlm_steps, threads=threads, seed=seed, fold="t2s")
    try:
        record = train_from_data_dir(
            data,
            out,
            cfg,
            decisions=decisions,
            corpora=repo_root().parent / "shared" / "corpora" if mlm_steps else None,
            progress=lambda s: click.echo(s, err=True),
        )
    except (FileNotFoundError, QueueExportPending, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {k: record.get(k) for k in ("model", "total_seconds", "calibration", "test")},
            ensure_ascii=False,
            indent=2,
        )
    )


@click.command("eval")
@click.option(
    "--model",
    "model_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="checkpoint directory [default: $MODERATION_MODEL_DIR or models/risk-classifier]",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR / "test.jsonl",
    show_default=True,
    help="labelled JSONL ({text, label[, family]}) to evaluate on",
)
@click.option("--threshold", type=float, default=0.5, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the metrics as JSON")
def eval_cmd(model_dir: Path | None, data: Path, threshold: float, as_json: bool) -> None:
    """Per-family precision/recall and expected calibration error on labelled held-out data."""
    from .data import read_jsonl
    from .evaluate import compute_metrics, format_report
    from .predict import load_model

    try:
        rm = load_model(model_dir)
    except ModelLoadError as exc:
        raise click.ClickException(str(exc)) from exc
    if not data.exists():
        raise click.ClickException(f"{data} not found; run scripts/build_training_set.py or pass --data")
    try:
        examples = read_jsonl(data)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    scores = rm.score_texts([e.text for e in examples])
    m = compute_metrics(scores, examples, threshold=threshold)
    if as_json:
        click.echo(json.dumps(m, ensure_ascii=False, indent=2))
    else:
        click.echo(f"model {rm.name} from {rm.path or default_model_dir()}")
        click.echo(format_report(m))


@click.group("classifier")
def classifier_group() -> None:
    """The risk classifier: learn from reviewers' decisions."""


@classifier_group.command("retrain")
@click.option(
    "--from-queue",
    "from_queue",
    is_flag=True,
    required=True,
    help="learn from the decided items of the review queue (read only)",
)
@click.option(
    "--db",
    "database_url",
    default=None,
    metavar="URL",
    help="queue database [default: $DATABASE_URL, else sqlite:///var/moderation.db]",
)
@click.option(
    "--model",
    "model_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="the shipped model to start from and to replace [default: models/risk-classifier]",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="train.jsonl and calib_real.jsonl from scripts/build_training_set.py",
)
@click.option(
    "--work",
    type=click.Path(file_okay=False, path_type=Path),
    default=repo_root() / "var" / "classifier" / "retrain",
    show_default=True,
    help="where the candidate, the previous model and retrain.json go",
)
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option(
    "--decision-repeat",
    type=int,
    default=3,
    show_default=True,
    help="copies of each decided listing in the training set",
)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--no-replace", is_flag=True, help="evaluate the candidate but never replace the shipped model")
def retrain_cmd(
    from_queue: bool,
    database_url: str | None,
    model_dir: Path | None,
    data: Path,
    work: Path,
    epochs: int,
    decision_repeat: int,
    threads: int,
    no_replace: bool,
) -> None:
    """Retrain on reviewers' decisions; replace the shipped model only if it is not worse on the real test set.

    Exit status 0 when the new model replaced the old one (or --no-replace and it would have), 3 when
    the new model was worse and the shipped one was kept."""
    from .feedback import retrain_from_queue

    try:
        record = retrain_from_queue(
            database_url,
            model_dir or default_model_dir(),
            data,
            work,
            epochs=epochs,
            decision_repeat=decision_repeat,
            threads=threads,
            replace=not no_replace,
            progress=lambda s: click.echo(s, err=True),
        )
    except (FileNotFoundError, ValueError, ModelLoadError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {k: record[k] for k in ("decisions", "skipped", "accepted", "replaced", "reasons")},
            ensure_ascii=False,
        )
    )
    if not record["accepted"]:
        raise SystemExit(3)
