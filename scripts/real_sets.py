"""Build and check the blind-labelled real-text sets (docs/labelling.md, tests/real/README.md).

    python scripts/real_sets.py batches            # write tests/real/batches/*.jsonl (refs + hashes only)
    python scripts/real_sets.py copies             # add the ad-copy batches c01… and d02 (extra corpus)
    python scripts/real_sets.py ner-titles test.txt  # the NER set's test titles → var/corpora, batches n01…
    python scripts/real_sets.py cpr-titles test.json # Multi-CPR product titles → var/corpora, batches m01…
    python scripts/real_sets.py show t01           # what a labeller reads: ref, hash, text
    python scripts/real_sets.py check              # every batch labelled once, labels well-formed
    python scripts/real_sets.py agreement          # primary vs second labels on the double-labelled sample
    python scripts/real_sets.py stats              # counts by label, family, category and stratum

Batches hold no corpus text: a labeller reads the lines with ``show``. The sampling is fixed by a seed,
so the batches can be rebuilt byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import unicodedata
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from moderation.evaluation.realsets import (  # noqa: E402
    COPIES,
    CPR_TITLES,
    LABELS,
    NER_TITLES,
    REAL_DIR,
    corpus_lines,
    extra_corpora_dir,
    text_hash,
)
from moderation.schema import CATEGORIES  # noqa: E402

BATCHES = REAL_DIR / "batches"
TITLES = "taobao_titles.txt"
APPS = "app_descriptions_iflytek.jsonl"
FAMILIES = (
    "absolute_claims", "state_symbols", "military_names", "superstition_vulgarity", "minors",
    "medical_claims", "health_food", "drugs_devices", "endorsements", "education", "investment",
    "real_estate", "agriculture", "alcohol", "tobacco", "false_claims", "data_without_source", "patents",
    "disparagement", "price_claims", "fake_sales_reviews", "food_labels", "cosmetics",
    "counterfeit_signals", "brand_keyword_misuse", "name_and_image_use", "off_platform_diversion",
    "prohibited_goods",
)  # fmt: skip
#: A deliberately broad net of characters and words that claims are made of, used only to weight the
#: app-description sample toward text worth labelling (titles are labelled exhaustively).
RISKY = re.compile(
    r"最|第一|首[家个款创选]|唯一|独家|顶级|极致|极品|领先|冠军|之王|王者|国家|权威|专家|医生|治|疗|防|抗|"
    r"降|瘦|美白|祛|保本|收益|回报|稳赚|包过|通过率|提分|保证|100%|\d+%|万人|销量|好评|专利|官方|特供|军"
)
#: Candidate titles per line of the Multi-CPR product-selection task.
CPR_CANDIDATES = 4
BATCH_SIZE = {TITLES: 500, APPS: 200, COPIES: 270, NER_TITLES: 220, CPR_TITLES: 250}


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _refs(name: str, numbers: list[int]) -> list[dict[str, object]]:
    lines = corpus_lines(name)
    return [{"ref": f"{name}:{n}", "sha": text_hash(lines[n - 1])} for n in numbers if lines[n - 1]]


def _batch_every_line(
    prefix: str, corpus: str, numbers: list[int], manifest: dict[str, dict[str, object]]
) -> None:
    """Batches ``prefix``01… of the corpus lines ``numbers`` (every line, already shuffled), listed in
    ``manifest``."""
    size = BATCH_SIZE[corpus]
    for i in range(0, len(numbers), size):
        name = f"{prefix}{i // size + 1:02d}"
        _write(BATCHES / f"{name}.jsonl", _refs(corpus, numbers[i : i + size]))
        manifest[name] = {"corpus": corpus, "stratum": "all", "lines": len(numbers[i : i + size])}


def _write_manifest(manifest: dict[str, dict[str, object]]) -> None:
    """``batches/manifest.json``: how each batch was sampled (read by ``agreement`` and the README)."""
    (BATCHES / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def cmd_batches(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    manifest: dict[str, dict[str, object]] = {}
    # Titles: every line, shuffled, in batches of 500 (t01…).
    titles = list(range(1, len(corpus_lines(TITLES)) + 1))
    rng.shuffle(titles)
    _batch_every_line("t", TITLES, titles, manifest)
    # App descriptions: 400 at random plus 400 from the lines the broad net catches (a01…a04).
    apps = corpus_lines(APPS)
    numbers = list(range(1, len(apps) + 1))
    rng.shuffle(numbers)
    random_part = numbers[:400]
    risky_pool = [n for n in numbers[400:] if RISKY.search(apps[n - 1])]
    risky_part = risky_pool[:400]
    for j, (stratum, part) in enumerate((("random", random_part), ("risky", risky_part))):
        for k in range(0, len(part), BATCH_SIZE[APPS]):
            name = f"a{j * 2 + k // BATCH_SIZE[APPS] + 1:02d}"
            _write(BATCHES / f"{name}.jsonl", _refs(APPS, part[k : k + BATCH_SIZE[APPS]]))
            manifest[name] = {
                "corpus": APPS,
                "stratum": stratum,
                "lines": len(part[k : k + BATCH_SIZE[APPS]]),
            }
    # The double-labelled sample: 400 titles and 100 app descriptions drawn from the batches above.
    double = _refs(TITLES, rng.sample(titles, 400)) + _refs(APPS, rng.sample(random_part + risky_part, 100))
    _write(BATCHES / "d01.jsonl", double)
    manifest["d01"] = {"corpus": "both", "stratum": "second labels", "lines": len(double)}
    old_path = BATCHES / "manifest.json"
    if old_path.is_file():  # the ad-copy batches (``copies``) are not rebuilt here: keep them listed
        for name, info in json.loads(old_path.read_text(encoding="utf-8")).items():
            if info.get("corpus") == COPIES:
                manifest.setdefault(name, info)
    _write_manifest(manifest)
    print(f"{len(manifest)} batches in {BATCHES}")
    return 0


def cmd_copies(args: argparse.Namespace) -> int:
    """Every AdvertiseGen ad copy, shuffled, in batches c01…, plus 150 of them for a second labeller
    (d02). Added beside the title and app batches without rebuilding those, with a seed of its own."""
    rng = random.Random(args.seed)
    manifest = json.loads((BATCHES / "manifest.json").read_text(encoding="utf-8"))
    numbers = list(range(1, len(corpus_lines(COPIES)) + 1))
    rng.shuffle(numbers)
    _batch_every_line("c", COPIES, numbers, manifest)
    double = _refs(COPIES, rng.sample(numbers, 150))
    _write(BATCHES / "d02.jsonl", double)
    manifest["d02"] = {"corpus": COPIES, "stratum": "second labels", "lines": len(double)}
    _write_manifest(manifest)
    print(f"{-(-len(numbers) // BATCH_SIZE[COPIES])} ad-copy batches and d02 in {BATCHES}")
    return 0


def conll_titles(conll: str) -> list[str]:
    """The titles of a character-per-line NER file (``字 TAG``, a blank line after each title), joined
    back into text. A line holding only a tag had a blank or invisible character in its first column;
    that, and any other space, control, format or replacement character, is written as a plain space, so
    the file comes out the same whichever invisible character a copy of the source kept. The tags
    themselves (brand, product, model…) are not used."""
    titles: list[str] = []
    chars: list[str] = []
    for raw in conll.split("\n"):
        line = raw.rstrip("\r")
        if not line.strip():
            if chars:
                titles.append("".join(chars).strip())
                chars = []
            continue
        head, sep, _tag = line.rpartition(" ")
        ch = head if sep and head else " "
        chars.append(" " if _invisible(ch) else ch)
    if chars:
        titles.append("".join(chars).strip())
    return titles


def cmd_ner_titles(args: argparse.Namespace) -> int:
    """The e-commerce NER set's test split (tests/real/README.md) as one title per line in the extra
    corpora folder, and batches n01… of the titles that are not already lines of taobao_titles.txt (that
    file is the set's train and dev splits; the test split repeats some of their titles)."""
    titles = conll_titles(Path(args.source).read_text(encoding="utf-8"))
    return _fresh_titles(NER_TITLES, titles, "n", (TITLES,), args)


def cpr_titles(jsonl: str) -> list[str]:
    """The product titles of the Multi-CPR product-selection task as EcomGPT ships it: each line is a
    search query and four candidate titles (``Query: …\\nCandidate Document: t1, t2, t3, t4.``) with the
    matching one in ``spans``. Every distinct title, in order of first appearance. A title is cut at
    ``, ``; a line that does not cut into four pieces, or whose matching title is not one of them (a title
    that holds ``, `` itself), is refused rather than guessed. Invisible characters become spaces
    (``_visible``). Lines end at ``\n`` only: a JSON string may hold U+2028, which is not a line end here."""
    titles: dict[str, None] = {}
    for n, raw in enumerate(jsonl.split("\n"), 1):
        if not raw.strip():
            continue
        row = json.loads(raw)
        _query, sep, docs = str(row["sentences"]).partition("Candidate Document: ")
        if not sep:
            raise SystemExit(f"line {n}: no candidate titles")
        pieces = [t.strip() for t in docs.strip().removesuffix(".").split(", ")]
        if len(pieces) != CPR_CANDIDATES:
            raise SystemExit(f"line {n}: {len(pieces)} pieces, not {CPR_CANDIDATES} candidate titles")
        for span in row.get("spans") or []:
            if span["term"].strip() not in pieces:
                raise SystemExit(f"line {n}: the matching title is not one of the cut pieces")
        titles.update((t, None) for t in map(_visible, pieces) if t)
    return list(titles)


def _visible(text: str) -> str:
    """Invisible characters (format, control, replacement) written as a space, as in ``conll_titles``:
    a copy read through a viewer that hides them keeps a placeholder, and every copy gives one file."""
    return "".join(" " if _invisible(ch) else ch for ch in text).strip()


def _invisible(ch: str) -> bool:
    """A space, control or format character, or the replacement character a copy may have put in its
    place (judged by the first character of ``ch``)."""
    return ch == "\ufffd" or unicodedata.category(ch[0])[0] in "ZC"


def cmd_cpr_titles(args: argparse.Namespace) -> int:
    """The Multi-CPR product titles (tests/real/README.md) as one title per line in the extra corpora
    folder, and batches m01… of those that no other labelled corpus holds."""
    titles = cpr_titles(Path(args.source).read_text(encoding="utf-8"))
    return _fresh_titles(CPR_TITLES, titles, "m", (TITLES, NER_TITLES), args)


def _fresh_titles(
    name: str, titles: list[str], prefix: str, known_corpora: tuple[str, ...], args: argparse.Namespace
) -> int:
    """Write ``titles`` as the extra corpus ``name`` (refusing another sha256 than ``--expect``) and, with
    ``--batches``, batch every title that the ``known_corpora`` do not hold, once, at its first line."""
    out = extra_corpora_dir() / name
    data = "".join(t + "\n" for t in titles).encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    if args.expect and digest != args.expect:  # refused before writing: a good copy is never overwritten
        raise SystemExit(
            f"sha256 {digest} differs from the expected {args.expect}: not the file the labels name; "
            f"{out} left as it was"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"{len(titles)} titles → {out} (sha256 {digest})")
    known: set[str] = set()
    for corpus in known_corpora:
        try:
            known.update(corpus_lines(corpus))
        except FileNotFoundError:
            if args.batches:  # which titles are new depends on it: refuse rather than batch others
                raise
            print(f"note: {corpus} is not here; titles it holds are not told apart")
    seen: set[str] = set()
    numbers = []
    for n, title in enumerate(corpus_lines(name), 1):
        if title and title not in known and title not in seen:
            numbers.append(n)
        seen.add(title)
    if args.batches:
        random.Random(args.seed).shuffle(numbers)
        manifest = json.loads((BATCHES / "manifest.json").read_text(encoding="utf-8"))
        _batch_every_line(prefix, name, numbers, manifest)
        _write_manifest(manifest)
        print(
            f"{len(numbers)} new titles in {-(-len(numbers) // BATCH_SIZE[name])} batches {prefix}01… in {BATCHES}"
        )
    return 0


def _batch_rows(name: str) -> list[dict[str, object]]:
    path = BATCHES / f"{name}.jsonl"
    if not path.is_file():
        raise SystemExit(f"no batch {name!r} (expected {path})")
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def cmd_show(args: argparse.Namespace) -> int:
    from moderation.evaluation.realsets import resolve

    for row in _batch_rows(args.batch):
        text = resolve(str(row["ref"])).replace("\t", " ").replace("\n", " ")
        print(f"{row['ref']}\t{row['sha']}\t{text}")
    return 0


def _check_row(row: dict[str, object], where: str) -> list[str]:
    problems = []
    if row.get("label") not in LABELS:
        problems.append(f"{where}: label must be one of {LABELS}")
    if row.get("category") not in CATEGORIES:
        problems.append(f"{where}: unknown category {row.get('category')!r}")
    families = row.get("families") or []
    if row.get("label") in ("violation", "conditional") and not families:
        problems.append(f"{where}: a {row.get('label')} needs families")
    bad = [f for f in families if f not in FAMILIES] if isinstance(families, list) else ["<not a list>"]
    if bad:
        problems.append(f"{where}: unknown families {bad}")
    if row.get("split") not in (None, "dev", "test"):
        problems.append(f"{where}: unknown split {row.get('split')!r} (dev or test)")
    return problems


def cmd_check(args: argparse.Namespace) -> int:
    problems: list[str] = []
    for folder in ("labels", "labels-second"):
        for path in sorted((REAL_DIR / folder).glob("*.jsonl")):
            batch = {str(r["ref"]): r["sha"] for r in _batch_rows(path.stem)}
            seen: set[str] = set()
            for lineno, raw in enumerate(path.open(encoding="utf-8"), 1):
                if not raw.strip():
                    continue
                where = f"{path.relative_to(REPO)}:{lineno}"
                try:
                    row = json.loads(raw)
                except json.JSONDecodeError as exc:
                    problems.append(f"{where}: not JSON ({exc})")
                    continue
                ref = str(row.get("ref"))
                if ref not in batch:
                    problems.append(f"{where}: {ref} is not in batch {path.stem}")
                elif row.get("sha") != batch[ref]:
                    problems.append(f"{where}: {ref} hash {row.get('sha')} != {batch[ref]}")
                if ref in seen:
                    problems.append(f"{where}: {ref} labelled twice")
                seen.add(ref)
                problems.extend(_check_row(row, where))
            missing = set(batch) - seen
            if missing:
                problems.append(f"{path.relative_to(REPO)}: {len(missing)} refs of the batch have no label")
    for p in problems[:50]:
        print(p)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


def _labels(folder: str) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for path in sorted((REAL_DIR / folder).glob("*.jsonl")):
        for raw in path.open(encoding="utf-8"):
            if raw.strip():
                row = json.loads(raw)
                out[str(row["ref"])] = row
    return out


def kappa(pairs: list[tuple[str, str]]) -> float:
    """Cohen's kappa of two labellers over the same items."""
    n = len(pairs)
    if n == 0:
        return float("nan")
    observed = sum(a == b for a, b in pairs) / n
    left, right = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(left[k] * right[k] for k in set(left) | set(right)) / (n * n)
    return (observed - expected) / (1 - expected) if expected < 1 else 1.0


def cmd_agreement(args: argparse.Namespace) -> int:
    first, second = _labels("labels"), _labels("labels-second")
    everything = sorted(set(first) & set(second))
    if not everything:
        print("no ref has two labels yet")
        return 1
    groups = {
        "titles and app descriptions": [
            r for r in everything if not r.startswith((COPIES, NER_TITLES, CPR_TITLES))
        ]
    }
    groups["ad copies"] = [r for r in everything if r.startswith(COPIES)]
    groups["fresh titles (NER test split, every line twice)"] = [
        r for r in everything if r.startswith(NER_TITLES)
    ]
    groups["fresh titles (Multi-CPR, every line twice)"] = [r for r in everything if r.startswith(CPR_TITLES)]
    for title, common in groups.items():
        if common:
            print(f"## {title}")
            _agreement(first, second, common)
    return 0


def _agreement(
    first: dict[str, dict[str, object]], second: dict[str, dict[str, object]], common: list[str]
) -> None:
    three = [(str(first[r]["label"]), str(second[r]["label"])) for r in common]
    binary = [tuple("flag" if x != "lawful" else "lawful" for x in p) for p in three]
    cat = [(str(first[r]["category"]), str(second[r]["category"])) for r in common]
    both_flag = [r for r in common if first[r]["label"] != "lawful" and second[r]["label"] != "lawful"]
    fam = sum(bool(set(first[r]["families"]) & set(second[r]["families"])) for r in both_flag)  # type: ignore[arg-type]
    print(f"double-labelled refs: {len(common)}")
    print(
        f"label (3-way) agreement {sum(a == b for a, b in three) / len(common):.3f}, kappa {kappa(three):.3f}"
    )
    print(
        f"flag vs lawful agreement {sum(a == b for a, b in binary) / len(common):.3f}, kappa {kappa(binary):.3f}"
    )  # type: ignore[arg-type]
    print(f"category agreement {sum(a == b for a, b in cat) / len(common):.3f}, kappa {kappa(cat):.3f}")
    if both_flag:
        print(f"family overlap where both flag: {fam}/{len(both_flag)} = {fam / len(both_flag):.3f}")
    print("confusion (primary → second):", dict(Counter(three)))


def cmd_stats(args: argparse.Namespace) -> int:
    labels = _labels("labels")
    manifest = json.loads((BATCHES / "manifest.json").read_text())
    stratum = {}
    for name, info in manifest.items():
        if name.startswith("d"):
            continue
        for row in _batch_rows(name):
            stratum[str(row["ref"])] = f"{info['corpus']}/{info['stratum']}"
    print(f"labelled refs: {len(labels)}")
    by_stratum: Counter[tuple[str, str]] = Counter()
    for ref, row in labels.items():
        by_stratum[(stratum.get(ref, "?"), str(row["label"]))] += 1
    for key, n in sorted(by_stratum.items()):
        print(f"  {key[0]:45s} {key[1]:12s} {n}")
    fams = Counter(f for row in labels.values() for f in row.get("families") or [])  # type: ignore[union-attr]
    print("families:", dict(fams.most_common()))
    print("categories:", dict(Counter(str(row["category"]) for row in labels.values()).most_common()))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("batches")
    b.add_argument("--seed", type=int, default=20261206)
    c = sub.add_parser("copies")
    c.add_argument("--seed", type=int, default=20261207)
    n = sub.add_parser("ner-titles")
    n.add_argument("source", help="data/ecommerce/test.txt of the NER set (tests/real/README.md)")
    n.add_argument("--expect", help="the sha256 the written titles file must have")
    n.add_argument("--batches", action="store_true", help="also write the batches n01… (once)")
    n.add_argument("--seed", type=int, default=20261208)
    m = sub.add_parser("cpr-titles")
    m.add_argument(
        "source", help="the Multi-CPR product-selection test.json of EcomGPT (tests/real/README.md)"
    )
    m.add_argument("--expect", help="the sha256 the written titles file must have")
    m.add_argument("--batches", action="store_true", help="also write the batches m01… (once)")
    m.add_argument("--seed", type=int, default=20261209)
    s = sub.add_parser("show")
    s.add_argument("batch")
    sub.add_parser("check")
    sub.add_parser("agreement")
    sub.add_parser("stats")
    args = ap.parse_args(argv)
    return {
        "batches": cmd_batches, "copies": cmd_copies, "ner-titles": cmd_ner_titles, "cpr-titles": cmd_cpr_titles, "show": cmd_show, "check": cmd_check, "agreement": cmd_agreement,
        "stats": cmd_stats,
    }[args.cmd](args)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
