"""``moderation audit``: bulk audit of a catalogue, plus ``audit diff`` and ``audit report``.

``moderation audit INPUT --out DIR`` is the main form; the group forwards anything that is not a
sub-command name to ``run``, so the contract's short form works and ``diff``/``report`` still read as
sub-commands.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click


class _DefaultGroup(click.Group):
    """A group whose first argument, when it is not a sub-command, is the INPUT of ``run``."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


@click.group(cls=_DefaultGroup)
def audit() -> None:
    """Bulk audit of a catalogue: `moderation audit INPUT --out DIR` (see `moderation audit run --help`),
    `moderation audit diff OLD_DIR NEW_DIR`, `moderation audit report DIR`."""


@audit.command("run")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--workers", type=int, default=None, help="Worker processes / Ray actors [default: cores].")
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    help="Listings per batch: the unit of work, of checkpointing and of part files.",
)
@click.option("--no-classifier", is_flag=True, help="Rules only (do not load the risk model).")
@click.option("--model", type=click.Path(exists=True, file_okay=False), help="A local classifier checkpoint.")
@click.option(
    "--classifier-batch", default=16, show_default=True, help="Listings per classifier forward pass."
)
@click.option("--image-db", type=click.Path(), help="Image index to match listing images against.")
@click.option("--ocr", is_flag=True, help="Also read the text in listing images and check it (docs/ocr.md).")
@click.option(
    "--ocr-cache",
    type=click.Path(dir_okay=False),
    default=None,
    help="OCR cache file shared by runs [default: MODERATION_OCR_CACHE or var/ocr-cache.sqlite].",
)
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option(
    "--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)."
)
@click.option(
    "--enqueue", is_flag=True, help="Put non-pass listings into the review queue, highest risk first."
)
@click.option("--database-url", default=None, help="Review queue database (default: DATABASE_URL or var/).")
@click.option(
    "--jsonl", is_flag=True, help="Also write DIR/results.jsonl (contract Check results + source/line)."
)
@click.option(
    "--resume/--restart",
    default=True,
    show_default=True,
    help="Continue an interrupted audit in DIR, or discard it and start over.",
)
@click.option(
    "--diff",
    "diff_dir",
    type=click.Path(exists=True, file_okay=False),
    help="After the run, compare with this earlier audit (writes DIR/diff.html, diff.json).",
)
@click.option("--no-report", is_flag=True, help="Skip report.html / summary.json.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def run_cmd(
    input_path: str,
    out_dir: str,
    workers: int | None,
    no_classifier: bool,
    model: str | None,
    ray_address: str | None,
    diff_dir: str | None,
    no_report: bool,
    quiet: bool,
    **same: Any,
) -> None:
    """Audit every listing of INPUT (JSON Lines, CSV or Parquet, or a folder of them) into DIR.

    Writes DIR/listings/ (one row per listing), DIR/findings/ (one row per finding), DIR/images/
    (Parquet datasets), DIR/report.html and DIR/summary.json. Rerunning the same command after an
    interruption continues where it stopped.
    """
    from moderation.audit.runner import AuditError, AuditOptions, run_audit
    from moderation.settings import settings

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    opts = AuditOptions(
        input=Path(input_path),
        out=Path(out_dir),
        workers=workers if workers is not None else (os.cpu_count() or 1),
        classifier=False if no_classifier else (model or True),
        progress=not quiet,
        report=not no_report,
        ray_address=ray_address or settings().ray_address,
        **same,  # the options named as AuditOptions names them (--batch-size, --engine, --jsonl, …)
    )
    try:
        result = run_audit(opts)
    except AuditError as exc:
        raise click.ClickException(str(exc)) from exc
    parts = [
        f"{result.listings:,} listings",
        f"{result.findings:,} findings",
        f"{result.errors:,} rows with errors",
    ]
    if result.resumed:
        parts.append(f"resumed ({result.batches - result.batches_run} of {result.batches} batches were done)")
    if result.listings_run:
        steady = result.extra.get("steady_rate")
        parts.append(
            f"{result.rate:,.0f} listings/s over {result.seconds:,.1f} s including start-up"
            + (f" ({steady:,.0f}/s once the workers were up)" if steady else "")
        )
    if "ocr" in result.extra:
        o = result.extra["ocr"]
        rate = f", {o['images_per_s']:,.2f} images/s" if o.get("images_per_s") else ""
        parts.append(f"{o['images']:,} images read ({o['cached']:,} from the OCR cache{rate})")
    if result.enqueued is not None:
        parts.append(f"{result.enqueued:,} queued for review")
    click.echo(f"audit: {', '.join(parts)} -> {result.out}", err=True)
    if diff_dir:
        from moderation.audit.diff import write_diff

        d = write_diff(Path(diff_dir), Path(out_dir))
        _echo_diff(d)


def _echo_diff(d: dict[str, Any]) -> None:
    f, li = d["findings"], d["listings"]
    click.echo(
        f"findings +{f['added']} -{f['removed']} (old {f['old']}, new {f['new']}); "
        f"verdict changed for {li['verdict_changed']} listings",
        err=True,
    )
    shown = ("findings", "listings", "verdict_transitions", "by_rule")
    click.echo(json.dumps({k: d[k] for k in shown}, ensure_ascii=False, indent=1))


@audit.command("diff")
@click.argument("old_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("new_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write diff.html and diff.json [default: NEW_DIR].",
)
def diff_cmd(old_dir: str, new_dir: str, out_dir: str | None) -> None:
    """Compare two audits: findings added or removed (e.g. by a rule change) and changed verdicts."""
    from moderation.audit.diff import write_diff

    try:
        d = write_diff(Path(old_dir), Path(new_dir), Path(out_dir) if out_dir else None)
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    _echo_diff(d)


@audit.command("report")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False))
def report_cmd(out_dir: str) -> None:
    """Rebuild DIR/report.html and DIR/summary.json from an audit's output."""
    from moderation.audit.report import write_report

    summary = write_report(Path(out_dir))
    click.echo(json.dumps(summary["totals"], ensure_ascii=False))


if __name__ == "__main__":  # pragma: no cover - `python -m moderation.audit.cli`
    audit()
