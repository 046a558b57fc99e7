"""Measure the rules engine against the labelled evaluation set, or against a real corpus.

Labelled mode (default)::

    python scripts/eval_rules.py [tests/eval/listings.jsonl] [--show] [--json OUT]

prints recall on violations, the false-alarm rate on lawful listings, precision and recall per family,
recall on evasions and per ``kind``; ``--show`` lists every miss and false alarm with its findings.

Corpus mode::

    python scripts/eval_rules.py --corpus /work/shared/corpora/taobao_titles.txt [--limit N]

runs the checker over real lines (a ``.txt`` with one title per line, a ``.csv`` with a ``review``
column, or a ``.jsonl`` with a ``sentence`` field) and prints the flag rate and the most frequent
flagged spans per rule. These corpora are mostly lawful, so every flag there is a candidate for a
missing exemption. Corpus text is only printed, never written into the repository by this script
(``--json`` in corpus mode stores rule ids, counts and short spans only).

The checker runs with ``classifier=False``: this is a yardstick for the rules alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from moderation.checker import Checker  # noqa: E402

DEFAULT_SET = REPO / "tests" / "eval" / "listings.jsonl"
VIOLATION_KINDS = ("plain", "evasion", "conditional")
FAMILIES = (
    "absolute_claims", "state_symbols", "military_names", "superstition_vulgarity", "minors",
    "medical_claims", "health_food", "drugs_devices", "endorsements", "education", "investment",
    "real_estate", "agriculture", "alcohol", "tobacco", "false_claims", "data_without_source", "patents",
    "disparagement", "price_claims", "fake_sales_reviews", "food_labels", "cosmetics",
)  # fmt: skip


# -- labelled set ------------------------------------------------------------------------------------


@dataclass
class Case:
    """One labelled listing together with what the checker said about it."""

    item: dict[str, Any]
    verdict: str
    findings: list[Any]
    error: str | None = None

    @property
    def id(self) -> str:
        return str(self.item["id"])

    @property
    def is_violation(self) -> bool:
        return self.item["label"] == "violation"

    @property
    def families(self) -> set[str]:
        return set(self.item.get("families") or [])

    @property
    def flagged(self) -> bool:
        """The checker did not simply pass the listing."""
        return self.verdict != "pass"

    @property
    def false_alarm(self) -> bool:
        """For a lawful listing: a non-pass verdict, or any finding whose action is not ``pass``."""
        return self.flagged or any(getattr(f, "action", "review") != "pass" for f in self.findings)

    def predicted_families(self) -> set[str]:
        """Families with at least one finding that asks for more than ``pass``."""
        return {f.family for f in self.findings if getattr(f, "action", "review") != "pass"}


@dataclass
class Ratio:
    """A hit count over a total, printed as a percentage."""

    hits: int = 0
    total: int = 0

    def add(self, hit: bool) -> None:
        self.total += 1
        self.hits += int(hit)

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    def __str__(self) -> str:
        v = self.value
        return f"{self.hits}/{self.total} = {v:6.1%}" if v is not None else f"{self.hits}/0 =    n/a"

    def as_json(self) -> dict[str, Any]:
        return {"hits": self.hits, "total": self.total, "rate": self.value}


@dataclass
class FamilyScore:
    """Per-family confusion counts (a listing counts once per family)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    fp_ids: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    def as_json(self) -> dict[str, Any]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
        }


def load_set(path: Path) -> list[dict[str, Any]]:
    """Read the JSON Lines evaluation set; a broken line stops the run with its line number."""
    items: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{n}: {exc}") from exc
    return items


def in_split(item: dict[str, Any], split: str) -> bool:
    """Deterministic halves of the set by the number in the id, so tuning can leave one half unseen."""
    if split == "all":
        return True
    digits = "".join(ch for ch in str(item.get("id", "")) if ch.isdigit())
    odd = int(digits or 0) % 2 == 1
    return odd if split == "dev" else not odd


def as_listing(item: dict[str, Any]) -> dict[str, Any]:
    """The Listing part of an evaluation line (labels stripped, so the checker cannot see them)."""
    keys = ("id", "title", "description", "category", "attributes", "brand")
    return {k: item[k] for k in keys if k in item}


def run_checker(checker: Checker, items: Sequence[dict[str, Any]]) -> list[Case]:
    """Check every item and pair it with its result."""
    results = checker.check_many([as_listing(i) for i in items])
    cases = []
    for item, res in zip(items, results, strict=True):
        err = f"{res.error.code}: {res.error.message}" if res.error else None
        cases.append(Case(item=item, verdict=res.verdict, findings=list(res.findings), error=err))
    return cases


def score(cases: Sequence[Case]) -> dict[str, Any]:
    """All labelled-set metrics as plain data."""
    recall, false_alarm, evasion = Ratio(), Ratio(), Ratio()
    by_kind: dict[str, Ratio] = defaultdict(Ratio)
    fams: dict[str, FamilyScore] = {f: FamilyScore() for f in FAMILIES}
    for case in cases:
        kind = case.item.get("kind", "")
        predicted = case.predicted_families()
        if case.is_violation:
            recall.add(case.flagged)
            by_kind[f"{kind} (recall)"].add(case.flagged)
            if kind == "evasion":
                evasion.add(case.flagged)
        else:
            false_alarm.add(case.false_alarm)
            by_kind[f"{kind} (false alarm)"].add(case.false_alarm)
        for fam in case.families:
            score_ = fams.setdefault(fam, FamilyScore())
            if case.flagged and fam in predicted:
                score_.tp += 1
            else:
                score_.fn += 1
        for fam in predicted - case.families:
            score_ = fams.setdefault(fam, FamilyScore())
            score_.fp += 1
            score_.fp_ids.append(case.id)
    return {
        "n": len(cases),
        "errors": [c.id for c in cases if c.error],
        "recall": recall,
        "false_alarm": false_alarm,
        "evasion_recall": evasion,
        "by_kind": dict(sorted(by_kind.items())),
        "families": fams,
    }


def _fmt(v: float | None) -> str:
    return f"{v:6.1%}" if v is not None else "   n/a"


def describe(case: Case, width: int = 90) -> str:
    """One block of text for a miss or false alarm: id, labels, listing text and findings."""
    text = " / ".join(str(case.item.get(k)) for k in ("title", "description") if case.item.get(k)).replace(
        "\n", " "
    )
    attrs = case.item.get("attributes")
    if attrs:
        text += " " + json.dumps(attrs, ensure_ascii=False)
    if len(text) > width:
        text = text[: width - 1] + "…"
    head = f"{case.id} [{case.item.get('kind')}/{case.item.get('category', 'general')}]"
    if case.families:
        head += " families=" + ",".join(sorted(case.families))
    lines = [f"{head} verdict={case.verdict}", f"    {text}"]
    if case.error:
        lines.append(f"    ERROR {case.error}")
    for f in case.findings:
        lines.append(f"    - {f.rule} ({f.family}, {getattr(f, 'action', '?')}) {f.field}: {f.text!r}")
    return "\n".join(lines)


def report(cases: Sequence[Case], metrics: dict[str, Any], show: bool) -> None:
    """Print the labelled-set metrics (and, with ``show``, every miss and false alarm)."""
    print(f"listings: {metrics['n']}   errors: {len(metrics['errors'])} {metrics['errors'][:10]}")
    print(f"recall on violations (verdict != pass): {metrics['recall']}")
    print(f"false-alarm rate on lawful listings:    {metrics['false_alarm']}")
    print(f"recall on evasions:                     {metrics['evasion_recall']}")
    print("\nby kind:")
    for name, ratio in metrics["by_kind"].items():
        print(f"  {name:28s} {ratio}")
    print("\nper family:            precision  recall   tp  fp  fn")
    for fam, s in metrics["families"].items():
        print(f"  {fam:22s} {_fmt(s.precision)}   {_fmt(s.recall)}  {s.tp:3d} {s.fp:3d} {s.fn:3d}")
    if not show:
        return
    misses = [c for c in cases if c.is_violation and not c.flagged]
    family_misses = [c for c in cases if c.is_violation and c.flagged and c.families - c.predicted_families()]
    alarms = [c for c in cases if not c.is_violation and c.false_alarm]
    print(f"\n=== misses: violations passed ({len(misses)}) ===")
    for c in misses:
        print(describe(c))
    print(f"\n=== caught, but a labelled family has no finding ({len(family_misses)}) ===")
    for c in family_misses:
        missing = ",".join(sorted(c.families - c.predicted_families()))
        print(describe(c) + f"\n    missing family: {missing}")
    print(f"\n=== false alarms on lawful listings ({len(alarms)}) ===")
    for c in alarms:
        print(describe(c))


def metrics_json(metrics: dict[str, Any]) -> dict[str, Any]:
    """The metrics dict with its helper objects turned into JSON-ready values."""
    return {
        "n": metrics["n"],
        "errors": metrics["errors"],
        "recall": metrics["recall"].as_json(),
        "false_alarm": metrics["false_alarm"].as_json(),
        "evasion_recall": metrics["evasion_recall"].as_json(),
        "by_kind": {k: v.as_json() for k, v in metrics["by_kind"].items()},
        "families": {k: v.as_json() for k, v in metrics["families"].items()},
    }


# -- corpus mode -------------------------------------------------------------------------------------


def corpus_lines(path: Path) -> Iterator[str]:
    """Text lines of a corpus file: ``.txt`` lines, a ``.csv`` ``review`` column, ``.jsonl`` ``sentence``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                text = (row.get("review") or "").lstrip("\ufeff").strip()
                if text:
                    yield text
    elif suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                obj = json.loads(line)
                text = str(obj.get("sentence") or obj.get("text") or "").strip()
                if text:
                    yield text
    else:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                text = line.strip()
                if text:
                    yield text


def run_corpus(checker: Checker, path: Path, limit: int | None, category: str, show: bool) -> dict[str, Any]:
    """Check corpus lines as listings and print the flag rate and the most frequent flagged spans."""
    texts: list[str] = []
    for text in corpus_lines(path):
        texts.append(text)
        if limit is not None and len(texts) >= limit:
            break
    field_name = "title" if path.suffix.lower() == ".txt" else "description"
    listings = [{"id": f"c{i}", field_name: t[:5000], "category": category} for i, t in enumerate(texts)]
    results = checker.check_many(listings)
    flagged = [r for r in results if r.verdict != "pass"]
    with_findings = [r for r in results if r.findings]
    errors = [r for r in results if r.error]
    verdicts = Counter(r.verdict for r in results)
    by_rule: Counter[str] = Counter()
    spans: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    for res, text in zip(results, texts, strict=True):
        for f in res.findings:
            by_rule[f.rule] += 1
            spans[f.rule][f.text] += 1
            if len(examples[f.rule]) < 3:
                lo, hi = max(0, f.start - 15), f.end + 15
                examples[f.rule].append(
                    f"…{text[lo : f.start]}【{text[f.start : f.end]}】{text[f.end : hi]}…"
                )
    n = len(results)
    print(f"corpus: {path} ({n} lines, category={category}, field={field_name})")
    print(f"flag rate (verdict != pass): {len(flagged)}/{n} = {len(flagged) / n if n else 0:.1%}")
    print(f"lines with any finding:      {len(with_findings)}/{n} = {len(with_findings) / n if n else 0:.1%}")
    print(f"verdicts: {dict(verdicts)}   errors: {len(errors)}")
    print("\nfindings by rule (most frequent spans):")
    for rule, count in by_rule.most_common():
        top = ", ".join(f"{s!r}×{c}" for s, c in spans[rule].most_common(8))
        print(f"  {count:5d}  {rule:40s} {top}")
        if show:
            for ex in examples[rule]:
                print(f"           {ex}")
    return {
        "corpus": str(path),
        "n": n,
        "category": category,
        "flagged": len(flagged),
        "flag_rate": len(flagged) / n if n else None,
        "with_findings": len(with_findings),
        "verdicts": dict(verdicts),
        "errors": len(errors),
        "by_rule": {
            rule: {"count": count, "top_spans": spans[rule].most_common(10)}
            for rule, count in by_rule.most_common()
        },
    }


# -- command line ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT_SET, help="labelled JSON Lines set")
    ap.add_argument("--show", action="store_true", help="list misses and false alarms (or corpus examples)")
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write the metrics as JSON to OUT")
    ap.add_argument("--corpus", type=Path, metavar="PATH", help="run over a real corpus instead of the set")
    ap.add_argument("--limit", type=int, default=None, help="corpus mode: check at most N lines")
    ap.add_argument("--category", default="general", help="corpus mode: category given to every line")
    ap.add_argument("--classifier", action="store_true", help="rules + the shipped risk classifier")
    ap.add_argument(
        "--review-threshold", type=float, help="override classifier.review_threshold of the policy"
    )
    ap.add_argument(
        "--split",
        choices=("all", "dev", "test"),
        default="all",
        help="dev = odd-numbered ids (the half rule authors may look at while tuning), "
        "test = even-numbered ids (held out: report it as the honest figure)",
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    checker = Checker(classifier=bool(args.classifier))
    if args.review_threshold is not None:
        from dataclasses import replace

        checker.engine.policy = replace(
            checker.engine.policy, classifier_review_threshold=args.review_threshold
        )
    if args.corpus:
        out: dict[str, Any] = run_corpus(checker, args.corpus, args.limit, args.category, args.show)
    else:
        items = [item for item in load_set(args.path) if in_split(item, args.split)]
        cases = run_checker(checker, items)
        metrics = score(cases)
        report(cases, metrics, args.show)
        out = metrics_json(metrics)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"\nmetrics written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
