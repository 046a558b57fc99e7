"""The ``moderation`` command line (shapes fixed by ../shared/CONTRACTS.md).

Sub-commands of the other parts (``images``, ``train``, ``eval``) live next to their code and are
registered here lazily, so ``moderation check`` does not pay for importing torch or image libraries it
does not use.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import IO, Any, ClassVar

import click

from moderation.schema import CheckResult


class _LazyGroup(click.Group):
    """A group whose heavier sub-commands are imported only when invoked."""

    _lazy: ClassVar[dict[str, tuple[str, str]]] = {
        "images": ("moderation.images.cli", "images"),
        "serve": ("moderation.api.cli", "serve"),
        "users": ("moderation.api.cli", "users"),
        "db": ("moderation.api.cli", "db"),
        "outbox": ("moderation.api.cli", "outbox"),
        "audit": ("moderation.audit.cli", "audit"),
        "train": ("moderation.classifier.cli", "train"),
        "eval": ("moderation.classifier.cli", "eval_cmd"),
        "classifier": ("moderation.classifier.cli", "classifier_group"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available()})

    def _available(self) -> list[str]:
        import importlib.util

        return [
            name
            for name, (module, _) in self._lazy.items()
            if importlib.util.find_spec(module) is not None
        ]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self._lazy:
            return command
        import importlib

        module_name, attr = self._lazy[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            return None
        return getattr(module, attr, None)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="listing-moderation")
def main() -> None:
    """Check Chinese e-commerce listings against the PRC Advertising Law and related rules."""


# -- check ---------------------------------------------------------------------------------------

_COLOURS = {"critical": "red", "high": "yellow", "medium": "cyan", "low": "blue"}
_VERDICT_COLOURS = {"pass": "green", "review": "yellow", "block": "red"}


def _highlight(text: str, spans: list[tuple[int, int, str]]) -> str:
    out: list[str] = []
    pos = 0
    for start, end, severity in sorted(spans):
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append(click.style(text[start:end], fg=_COLOURS[severity], bold=True, underline=True))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _print_human(result: CheckResult, fields: dict[str, str]) -> None:
    if result.error is not None:
        click.echo(click.style(f"错误 {result.error.code}: {result.error.message}", fg="red"), err=True)
        return
    verdict = result.verdict or "pass"
    click.echo(
        click.style(f"结论: {verdict}", fg=_VERDICT_COLOURS[verdict], bold=True)
        + f"   风险: {result.risk:.2f}"
        + (f"   模型分: {result.classifier.score:.2f} ({result.classifier.model})" if result.classifier else "")
    )
    for name, text in fields.items():
        spans = [(f.start, f.end, f.severity) for f in result.findings if f.field == name]
        click.echo(f"{name}: {_highlight(text, spans)}")
    if not result.findings:
        click.echo("未发现违规用语。")
    for i, f in enumerate(result.findings, 1):
        click.echo(
            f"\n{i}. "
            + click.style(f"[{f.severity}] {f.rule}", fg=_COLOURS[f.severity], bold=True)
            + f"  {f.field} {f.start}-{f.end} “{f.text}”"
            + (f"  框 {f.box}" if f.box else "")
        )
        click.echo(f"   依据: {f.law}")
        click.echo(f"   说明: {f.message}")
        if f.suggestion:
            click.echo(f"   建议: {f.suggestion}")


def _jsonl_results(stream: IO[str], checker: Any, batch_size: int) -> Iterator[dict[str, Any]]:
    """Read JSON Lines and yield one contract result per non-blank line, in input order."""
    batch: list[tuple[int, Any]] = []

    def flush() -> Iterator[dict[str, Any]]:
        todo = [raw for _, raw in batch if not isinstance(raw, CheckResult)]
        checked = iter(checker.check_many(todo))
        for lineno, raw in batch:
            result = raw if isinstance(raw, CheckResult) else next(checked)
            data = result.to_json_dict()
            if result.error is not None:
                data["line"] = lineno
            yield data
        batch.clear()

    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            raw: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raw = CheckResult.failed(None, "malformed_json", f"line {lineno}: {exc.msg} at column {exc.colno}")
        batch.append((lineno, raw))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


@main.command()
@click.argument("text", nargs=-1)
@click.option("--input", "input_path", type=click.Path(dir_okay=False, allow_dash=True),
              help="JSON Lines of listings ('-' for stdin); prints one JSON result per line.")
@click.option("--category", default="general", show_default=True, help="Category of the TEXT listing.")
@click.option("--description", default="", help="Description of the TEXT listing.")
@click.option("--json", "as_json", is_flag=True, help="Print the TEXT result as JSON.")
@click.option("--no-classifier", is_flag=True, help="Rules only (do not load the risk model).")
@click.option("--model", type=click.Path(exists=True, file_okay=False), help="A local classifier checkpoint.")
@click.option("--image-db", type=click.Path(), help="Image index to match listing images against.")
@click.option("--batch-size", default=64, show_default=True, help="Listings per classifier batch.")
@click.option("--ocr", is_flag=True, help="Also read the text in listing images and check it (docs/ocr.md).")
@click.option("--image", "images", multiple=True, type=click.Path(dir_okay=False),
              help="An image of the TEXT listing (repeatable); read with --ocr, matched with --image-db.")
def check(
    text: tuple[str, ...],
    input_path: str | None,
    category: str,
    description: str,
    as_json: bool,
    no_classifier: bool,
    model: str | None,
    image_db: str | None,
    batch_size: int,
    ocr: bool,
    images: tuple[str, ...],
) -> None:
    """Check one listing given as TEXT, or every listing of --input FILE (JSON Lines)."""
    from moderation.checker import Checker

    if bool(text) == bool(input_path):
        raise click.UsageError("give either TEXT or --input FILE")
    classifier: bool | str = False if no_classifier else (model or True)
    # the operator's files; OCR only when asked (MODERATION_OCR=1 too), so the text path stays ~1 ms
    checker = Checker(classifier=classifier, image_db=image_db, local_image_paths=True, ocr=True if ocr else None)
    if input_path:
        import gc

        checker.engine.tokeniser.cut("预热")  # load jieba's dictionary now, then freeze start-up objects:
        gc.freeze()  # later collections skip them (about 7% faster on long streams)
        stream = sys.stdin if input_path == "-" else open(input_path, encoding="utf-8", errors="replace")  # noqa: SIM115
        try:
            out = sys.stdout
            for data in _jsonl_results(stream, checker, batch_size):
                out.write(json.dumps(data, ensure_ascii=False) + "\n")
                out.flush()
        finally:
            if stream is not sys.stdin:
                stream.close()
        return
    title = " ".join(text)
    listing = {"id": "cli", "title": title, "description": description, "category": category,
               "images": list(images)}
    result = checker.check(listing)
    if as_json:
        click.echo(json.dumps(result.to_json_dict(), ensure_ascii=False, indent=2))
    else:
        fields = {"title": title}
        if description:
            fields["description"] = description
        for n, img in enumerate(result.images):  # text read from the images (--ocr)
            ocr = getattr(img, "ocr", None) or {}
            if ocr.get("text"):
                fields[f"image:{n}"] = ocr["text"]
            elif ocr.get("error"):
                click.echo(f"image:{n} {img.image}: {ocr['error']['code']} {ocr['error']['message']}", err=True)
        _print_human(result, fields)
    if result.error is not None:
        sys.exit(2)


# -- rules ---------------------------------------------------------------------------------------


@main.group()
def rules() -> None:
    """Inspect and validate the rule packs."""


@rules.command("list")
@click.option("--family", help="Only this family.")
@click.option("--db", "database_url", default=None, metavar="URL",
              help="Add each rule's precision as judged by reviewers (confirmed / decided items it fired on) "
                   "from this review-queue database (read only); '-' means $DATABASE_URL or var/moderation.db.")
def rules_list(family: str | None, database_url: str | None) -> None:
    """List every rule with its family, article, severity and categories."""
    from moderation.rules.engine import RulesEngine

    engine = RulesEngine.load()
    precision: dict[str, dict[str, Any]] | None = None
    if database_url is not None:
        from moderation.queue.db import Database
        from moderation.queue.stats import compute_stats

        db = Database(None if database_url == "-" else database_url, pool_size=1)
        try:
            precision = {e["rule"]: e for e in compute_stats(db)["rule_precision"]}
        except Exception as exc:  # a missing or unmigrated database: say which, do not dump a traceback
            raise click.ClickException(f"cannot read rule precision from {db.url}: {type(exc).__name__}") from exc
        finally:
            db.engine.dispose()
    for rule in engine.rules:
        if family and rule.family != family:
            continue
        cats = "all" if rule.categories is None else ",".join(sorted(rule.categories))
        line = f"{rule.id}\t{rule.severity}\t{rule.law}\t{cats}\t{len(rule.terms)} terms"
        if precision is not None:
            e = precision.get(rule.id)
            line += (f"\tprecision {e['precision']:.0%} ({e['confirmed']}/{e['decided']} decided)"
                     if e and e["decided"] else "\tprecision - (no decisions)")
        click.echo(line)


@rules.command("check")
@click.option("--dir", "directory", type=click.Path(exists=True, file_okay=False), help="A rules folder.")
def rules_check(directory: str | None) -> None:
    """Load every pack (failing on the first bad one) and run every rule's examples."""
    from moderation.rules.engine import RulesEngine
    from moderation.rules.selftest import run_examples

    engine = RulesEngine.load(directory)
    failures = run_examples(engine)
    for failure in failures:
        click.echo(failure, err=True)
    total = sum(len(r.fire) + len(r.pass_) for r in engine.rules)
    click.echo(f"{len(engine.packs)} packs, {len(engine.rules)} rules, {total} examples, {len(failures)} failing")
    if failures:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
