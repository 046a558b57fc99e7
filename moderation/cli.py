"""The ``moderation`` command line (shapes fixed by docs/contracts.md).

Sub-commands of the other parts (``images``, ``train``, ``eval``) live next to their code and are
registered here lazily, so ``moderation check`` does not pay for importing torch or image libraries it
does not use, and ``moderation --help`` imports none of them (their one-line help is listed here).

Exit status: 0 done; 1 ``--fail-on`` threshold reached (``check``, ``fix``) or a run that failed;
2 a user error (a missing file, an unknown name, a bad option), always as one line without a traceback
(``MODERATION_DEBUG=1`` shows the traceback of an unexpected error).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, ClassVar, TypeVar

import click

if TYPE_CHECKING:
    from moderation.schema import CheckResult


class _LazyGroup(click.Group):
    """A group whose heavier sub-commands are imported only when invoked."""

    #: name → (module, attribute, one-line help shown by ``moderation --help`` without importing it)
    _lazy: ClassVar[dict[str, tuple[str, str, str]]] = {
        "images": (
            "moderation.images.cli",
            "images",
            "Copied-image detection: index product photos, find copies of them.",
        ),
        "serve": (
            "moderation.api.cli",
            "serve",
            "Run the HTTP API and the reviewer console (http://HOST:PORT/review).",
        ),
        "users": ("moderation.api.cli", "users", "Manage reviewer accounts and API tokens."),
        "db": (
            "moderation.api.cli",
            "db",
            "Database schema: upgrade, and verify the event log against the queue state.",
        ),
        "outbox": (
            "moderation.api.cli",
            "outbox",
            "Deliver the outbox (seller notifications and withdrawals) from the shell.",
        ),
        "audit": (
            "moderation.audit.cli",
            "audit",
            "Bulk audit of a catalogue: `moderation audit INPUT --out DIR`, `audit diff`, `audit report`.",
        ),
        "train": (
            "moderation.classifier.cli",
            "train",
            "Train the risk classifier, calibrate it, and write OUT (weights, tokenizer, calibration.json).",
        ),
        "eval": (
            "moderation.classifier.cli",
            "eval_cmd",
            "Per-family precision/recall and expected calibration error on labelled held-out data.",
        ),
        "classifier": (
            "moderation.classifier.cli",
            "classifier_group",
            "The risk classifier: learn from reviewers' decisions.",
        ),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available()})

    def _available(self) -> list[str]:
        """Lazy commands whose module is installed, found by file: ``find_spec`` would import the
        parent packages (``moderation.classifier`` imports torch)."""
        from pathlib import Path

        root = Path(__file__).resolve().parent.parent
        return [
            name
            for name, (module, _, _) in self._lazy.items()
            if (root / (module.replace(".", "/") + ".py")).is_file()
        ]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table above for lazy commands: listing them imports nothing."""
        rows = []
        limit = formatter.width - 6 - max((len(n) for n in self.list_commands(ctx)), default=0)
        for name in self.list_commands(ctx):
            if name in self._lazy and name not in self.commands:
                # a stand-in command gives the short form of the table's help (click's public way)
                rows.append((name, click.Command(name, help=self._lazy[name][2]).get_short_help_str(limit)))
                continue
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self._lazy:
            return command
        import importlib

        module_name, attr, _ = self._lazy[cmd_name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            return None
        return getattr(module, attr, None)

    def invoke(self, ctx: click.Context) -> Any:
        """Every error a user can cause ends as one line and exit status 2 (or 1 for a failure of the
        run itself), never a traceback; ``MODERATION_DEBUG=1`` re-raises unexpected ones."""
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # one line, with where to look, instead of the usage block
            where = exc.ctx.command_path if exc.ctx is not None else "moderation"
            raise UserError(f"{exc.format_message()} (see '{where} --help')") from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `moderation check --input x | head`
            sys.stderr.close()
            sys.exit(0)
        except Exception as exc:  # the one place that turns errors into messages
            if os.environ.get("MODERATION_DEBUG"):
                raise
            raise UserError(_describe(exc)) from None


class UserError(click.ClickException):
    """A one-line error and exit status 2 (a missing file, an unknown name, a bad setting)."""

    exit_code = 2


def _describe(exc: Exception) -> str:
    """One line saying what went wrong, in the user's terms."""
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = {
            FileNotFoundError: "no such file",
            IsADirectoryError: "is a folder, not a file",
            PermissionError: "permission denied",
            NotADirectoryError: "not a folder",
        }.get(type(exc))
        return f"{exc.filename}: {reason or exc.strerror or type(exc).__name__}"
    if isinstance(exc, UnicodeDecodeError):
        return f"the input is not UTF-8 text ({exc.reason} at byte {exc.start})"
    name = type(exc).__name__
    if name == "RulePackError":
        return f"rule pack: {exc}"
    if name in ("ArgumentError", "NoSuchModuleError"):  # SQLAlchemy: a database URL it cannot use
        return f"cannot use that database URL: {exc}"
    if name == "OperationalError":
        first = str(exc).splitlines()[0] if str(exc) else name
        return f"cannot reach the database: {first}"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return (
        f"{name}: {text} (MODERATION_DEBUG=1 shows the traceback)"
        if text
        else f"{name} (MODERATION_DEBUG=1 shows the traceback)"
    )


@click.group(cls=_LazyGroup)
@click.version_option(package_name="listing-moderation")
def main() -> None:
    """Check Chinese e-commerce listings against the PRC Advertising Law and related rules."""


# -- check ---------------------------------------------------------------------------------------

_COLOURS = {"critical": "red", "high": "yellow", "medium": "cyan", "low": "blue"}
_VERDICT_COLOURS = {"pass": "green", "review": "yellow", "block": "red"}


def _highlight(text: str, spans: Sequence[tuple[int, int, str]]) -> str:
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


_REASONS_ZH = {
    "delegated": "交给更专门的规则判断",
    "context": "上下文表明不是宣称",
    "global_exempt": "强制声明或专名",
}


def _print_human(
    result: CheckResult,
    fields: dict[str, str],
    *,
    explain: bool = False,
    exempted: list[dict[str, Any]] | None = None,
) -> None:
    if result.error is not None:
        click.echo(click.style(f"错误 {result.error.code}: {result.error.message}", fg="red"), err=True)
        return
    verdict = result.verdict or "pass"
    click.echo(
        click.style(f"结论: {verdict}", fg=_VERDICT_COLOURS[verdict], bold=True)
        + f"   风险: {result.risk:.2f}"
        + (
            f"   模型分: {result.classifier.score:.2f} ({result.classifier.model})"
            if result.classifier
            else ""
        )
    )
    lawful = result.classifier.lawful_wording if result.classifier else None
    if lawful is not None:
        click.echo(f"模型分未据此送审: 文字为法定或许可用语（{lawful.explain}）")
    inferred = getattr(result, "category_inferred", None)
    if inferred is not None:
        click.echo(
            f"类目: 按 {inferred.category} 检查（由文字推断，置信度 {inferred.confidence:.2f}"
            + (f"，依据 {'、'.join(inferred.evidence)}" if inferred.evidence else "")
            + "）"
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
        if explain:
            click.echo(f"   为何命中: 规则 {f.rule} 匹配“{f.text}”，没有豁免情形成立；处理: {f.action}")
    if explain:
        _print_explanation(result, exempted or [])


def _print_explanation(result: CheckResult, exempted: list[dict[str, Any]]) -> None:
    """Why each candidate that did not fire passed, and why a score with no rule is high."""
    if exempted:
        click.echo("\n未判为违规的候选:")
        for e in exempted:
            reason = str(e.get("reason", ""))
            why = str(e.get("explain") or _REASONS_ZH.get(reason, ""))
            click.echo(f"  - “{e.get('text', '')}”  {e.get('rule', '')}  [{reason}] {why}")
    else:
        click.echo("\n没有被豁免的候选。")
    spans = result.classifier.explanation if result.classifier is not None else None
    if spans:
        words = "，".join(f"“{sp.text}”({sp.weight:.2f})" for sp in spans)
        click.echo(f"模型分的主要依据: {words}")


def _exempted(checker: Any, listing: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidates the rules judged not to be claims, with their reasons (``detect(explain=True)``)."""
    from moderation.schema import parse_listing

    detection = checker.engine.detect(parse_listing(listing), explain=True)
    return [dict(e) for e in detection.exempted]


def _jsonl_results(
    stream: IO[str], checker: Any, batch_size: int, explain: bool = False, rewrite: bool = False
) -> Iterator[tuple[dict[str, Any], CheckResult]]:
    """Read JSON Lines and yield one contract result per non-blank line, in input order."""
    from moderation.schema import read_json_line

    batch: list[tuple[int, Any]] = []

    def flush() -> Iterator[tuple[dict[str, Any], CheckResult]]:
        results = checker.check_many([raw for _, raw in batch])
        for (lineno, raw), result in zip(batch, results, strict=True):
            data = result.to_json_dict()
            if result.error is not None:
                data["line"] = lineno
            elif explain:
                data["exempted"] = _exempted(checker, raw)
            if rewrite and result.error is None:
                from moderation.rules.rewrite import rewrite_listing

                data["rewrite"] = rewrite_listing(checker, raw, result).to_json()
            yield data, result
        batch.clear()

    for lineno, line in enumerate(stream, 1):
        if not line.strip():
            continue
        batch.append((lineno, read_json_line(line, lineno)))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


#: ``--fail-on``: the verdicts that make the exit status 1.
_FAIL_ON = {"block": ("block",), "review": ("review", "block"), "never": ()}


def _common_checker(no_classifier: bool, model: str | None, image_db: str | None, ocr: bool) -> Any:
    from moderation.checker import Checker

    if image_db is not None and not os.path.exists(image_db):
        raise UserError(f"{image_db}: no image index there; build one with `moderation images index`")
    classifier: bool | str = False if no_classifier else (model or True)
    # the operator's files; OCR only when asked (MODERATION_OCR=1 too), so the text-only path stays fast
    return Checker(
        classifier=classifier, image_db=image_db, local_image_paths=True, ocr=True if ocr else None
    )


def _check_category(category: str) -> None:
    from moderation.schema import CATEGORIES

    if category not in CATEGORIES:
        raise UserError(f"unknown category {category!r}; known: {', '.join(CATEGORIES)}")


def _open_input(input_path: str) -> IO[str]:
    if input_path == "-":
        return sys.stdin
    return open(input_path, encoding="utf-8", errors="replace")  # closed by the caller


_Command = TypeVar("_Command", bound=Callable[..., Any])


def _listing_source(prints: str, as_json: str, fail_on: str) -> Callable[[_Command], _Command]:
    """The options ``check`` and ``fix`` share: one listing as TEXT or many as JSON Lines, and a gate."""
    options = [
        click.argument("text", nargs=-1),
        click.option(
            "--input",
            "input_path",
            type=click.Path(exists=True, dir_okay=False, allow_dash=True),
            help=f"JSON Lines of listings ('-' for stdin); {prints}",
        ),
        click.option(
            "--category", default="general", show_default=True, help="Category of the TEXT listing."
        ),
        click.option("--description", default="", help="Description of the TEXT listing."),
        click.option("--json", "as_json", is_flag=True, help=as_json),
        click.option(
            "--fail-on",
            type=click.Choice(["block", "review", "never"]),
            default="never",
            show_default=True,
            help=fail_on,
        ),
    ]

    def apply(command: _Command) -> _Command:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


@main.command()
@_listing_source(
    "prints one JSON result per line.",
    "Print the TEXT result as JSON.",
    "Exit with status 1 when a listing gets this verdict or a stricter one (block ⊂ review), "
    "so the check can gate a pipeline.",
)
@click.option(
    "--explain",
    is_flag=True,
    help="Also say why each candidate fired or passed (with --input: an `exempted` list per result).",
)
@click.option(
    "--rewrite",
    is_flag=True,
    help="Also give the listing with every fixable span rewritten and re-checked (see `moderation fix`).",
)
@click.option("--no-classifier", is_flag=True, help="Rules only (do not load the risk model).")
@click.option("--model", type=click.Path(exists=True, file_okay=False), help="A local classifier checkpoint.")
@click.option("--image-db", type=click.Path(), help="Image index to match listing images against.")
@click.option(
    "--batch-size",
    default=64,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Listings per classifier batch.",
)
@click.option("--ocr", is_flag=True, help="Also read the text in listing images and check it (docs/ocr.md).")
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An image of the TEXT listing (repeatable); read with --ocr, matched with --image-db.",
)
def check(
    text: tuple[str, ...],
    input_path: str | None,
    category: str,
    description: str,
    as_json: bool,
    fail_on: str,
    explain: bool,
    rewrite: bool,
    no_classifier: bool,
    model: str | None,
    image_db: str | None,
    batch_size: int,
    ocr: bool,
    images: tuple[str, ...],
) -> None:
    """Check one listing given as TEXT, or every listing of --input FILE (JSON Lines).

    Exit status: 0, or 1 with --fail-on when a listing reached that verdict, 2 for a user error (and
    for a TEXT listing that could not be checked)."""
    if bool(text) == bool(input_path):
        raise click.UsageError("give either TEXT or --input FILE")
    _check_category(category)
    checker = _common_checker(no_classifier, model, image_db, ocr)
    failing = _FAIL_ON[fail_on]
    if input_path:
        import gc

        checker.engine.tokeniser.cut("预热")  # load jieba's dictionary now, then freeze start-up objects:
        gc.freeze()  # later collections skip them (about 7% faster on long streams)
        stream = _open_input(input_path)
        failed = 0
        try:
            out = sys.stdout
            for data, result in _jsonl_results(stream, checker, batch_size, explain=explain, rewrite=rewrite):
                out.write(json.dumps(data, ensure_ascii=False) + "\n")
                out.flush()
                failed += result.verdict in failing
        finally:
            if stream is not sys.stdin:
                stream.close()
        if failed:
            click.echo(f"{failed} listing(s) reached --fail-on {fail_on}", err=True)
            sys.exit(1)
        return
    title = " ".join(text)
    listing = {
        "id": "cli",
        "title": title,
        "description": description,
        "category": category,
        "images": list(images),
    }
    result = checker.check(listing)
    exempted = _exempted(checker, listing) if explain and result.error is None else []
    fixed = None
    if rewrite and result.error is None:
        from moderation.rules.rewrite import rewrite_listing

        fixed = rewrite_listing(checker, listing, result)
    if as_json:
        data = result.to_json_dict()
        if explain and result.error is None:
            data["exempted"] = exempted
        if fixed is not None:
            data["rewrite"] = fixed.to_json()
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        fields = {"title": title}
        if description:
            fields["description"] = description
        for n, img in enumerate(result.images):  # text read from the images (--ocr)
            ocr_info = getattr(img, "ocr", None) or {}
            if ocr_info.get("text"):
                fields[f"image:{n}"] = ocr_info["text"]
            elif ocr_info.get("error"):
                click.echo(
                    f"image:{n} {img.image}: {ocr_info['error']['code']} {ocr_info['error']['message']}",
                    err=True,
                )
        _print_human(result, fields, explain=explain, exempted=exempted)
        if fixed is not None:
            _print_rewrite(fixed)
    if result.error is not None:
        sys.exit(2)
    if result.verdict in failing:
        sys.exit(1)


def _print_rewrite(fixed: Any) -> None:
    if not fixed.edits:
        click.echo("\n没有可以自动改写的用语。")
        return
    click.echo("\n改写后" + ("（复查通过）" if fixed.clean else "（仍需人工修改）") + ":")
    for name, value in fixed.fields.items():
        click.echo(f"  {name}: {value}")
    for e in fixed.remaining:
        click.echo(f"  仍有: [{e['severity']}] {e['rule']} “{e['text']}” {e.get('suggestion') or ''}")


# -- fix ---------------------------------------------------------------------------------------


@main.command()
@_listing_source(
    "prints each listing rewritten, one per line.",
    "Print the TEXT listing's rewrite as JSON.",
    "Exit with status 1 when a rewritten listing still gets this verdict (or a stricter one).",
)
def fix(
    text: tuple[str, ...],
    input_path: str | None,
    category: str,
    description: str,
    as_json: bool,
    fail_on: str,
) -> None:
    """Rewrite every fixable span of a listing (rules' `rewrite` key) and check it again.

    TEXT: prints the rewritten listing, each change and what still needs a person. --input: prints
    each listing as JSON with its fields rewritten (the same shape, ready to publish or check again);
    a summary goes to stderr. Rules only: the classifier is not loaded."""
    from moderation.checker import Checker
    from moderation.rules.rewrite import rewrite_listing
    from moderation.schema import ListingError

    if bool(text) == bool(input_path):
        raise click.UsageError("give either TEXT or --input FILE")
    _check_category(category)
    checker = Checker(classifier=False)
    failing = _FAIL_ON[fail_on]
    if not input_path:
        listing = {"id": "cli", "title": " ".join(text), "description": description, "category": category}
        try:
            fixed = rewrite_listing(checker, listing)
        except ListingError as exc:
            raise UserError(f"{exc.code}: {exc.message}") from None
        if as_json:
            click.echo(json.dumps(fixed.to_json(), ensure_ascii=False, indent=2))
        else:
            for e in fixed.edits:
                arrow = f"“{e.replacement}”" if e.replacement else "删除"
                click.echo(f"{e.field} {e.start}-{e.end} “{e.text}” → {arrow}  ({', '.join(e.rules)})")
            _print_rewrite(fixed)
        sys.exit(1 if fixed.verdict in failing else 0)
    stream = _open_input(input_path)
    total = changed = failed = errors = 0
    try:
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            total += 1
            try:
                fixed = rewrite_listing(checker, json.loads(line))
            except (json.JSONDecodeError, ListingError) as exc:
                errors += 1
                code = getattr(exc, "code", "malformed_json")
                click.echo(f"line {lineno}: {code}: {getattr(exc, 'message', None) or exc}", err=True)
                continue
            changed += fixed.changed
            failed += fixed.verdict in failing
            sys.stdout.write(json.dumps(fixed.listing, ensure_ascii=False) + "\n")
    finally:
        if stream is not sys.stdin:
            stream.close()
    click.echo(
        f"fix: {total} listings, {changed} rewritten, {failed} still at --fail-on {fail_on}, "
        f"{errors} could not be read",
        err=True,
    )
    if failed:
        sys.exit(1)


# -- rules ---------------------------------------------------------------------------------------


@main.group()
def rules() -> None:
    """Inspect and validate the rule packs."""


@rules.command("list")
@click.option("--family", help="Only this family.")
@click.option(
    "--db",
    "database_url",
    default=None,
    metavar="URL",
    help="Add each rule's precision as judged by reviewers (confirmed / decided items it fired on) "
    "from this review-queue database (read only); '-' means $DATABASE_URL or var/moderation.db.",
)
def rules_list(family: str | None, database_url: str | None) -> None:
    """List every rule with its family, article, severity and categories."""
    from moderation.rules.engine import RulesEngine

    engine = RulesEngine.load()
    families = sorted({rule.family for rule in engine.rules})
    if family and family not in families:
        raise UserError(f"unknown family {family!r}; known: {', '.join(families)}")
    precision: dict[str, dict[str, Any]] | None = None
    if database_url is not None:
        from moderation.queue.db import Database
        from moderation.queue.stats import compute_stats

        db = Database(None if database_url == "-" else database_url, pool_size=1)
        try:
            precision = {e["rule"]: e for e in compute_stats(db)["rule_precision"]}
        except Exception as exc:  # a missing or unmigrated database: say which, do not dump a traceback
            raise UserError(f"cannot read rule precision from {db.url}: {type(exc).__name__}") from exc
        finally:
            db.engine.dispose()
    for rule in engine.rules:
        if family and rule.family != family:
            continue
        cats = "all" if rule.categories is None else ",".join(sorted(rule.categories))
        line = f"{rule.id}\t{rule.severity}\t{rule.law}\t{cats}\t{len(rule.terms)} terms"
        if precision is not None:
            e = precision.get(rule.id)
            line += (
                f"\tprecision {e['precision']:.0%} ({e['confirmed']}/{e['decided']} decided)"
                if e and e["decided"]
                else "\tprecision - (no decisions)"
            )
        click.echo(line)


@rules.command("check")
@click.option("--dir", "directory", type=click.Path(exists=True, file_okay=False), help="A rules folder.")
def rules_check(directory: str | None) -> None:
    """Load every pack (failing on the first bad one), run every rule's examples, and look for patterns
    that can match without any of their rule's anchors (such matches are never reported)."""
    from moderation.rules.engine import RulesEngine
    from moderation.rules.selftest import anchor_gaps, run_examples

    engine = RulesEngine.load(directory)
    failures = run_examples(engine)
    gaps = anchor_gaps(engine)
    for failure in [*failures, *gaps]:
        click.echo(failure, err=True)
    total = sum(len(r.fire) + len(r.pass_) for r in engine.rules)
    click.echo(
        f"{len(engine.packs)} packs, {len(engine.rules)} rules, {total} examples, {len(failures)} failing; "
        f"{len(gaps)} patterns with anchor gaps"
    )
    if failures or gaps:
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
