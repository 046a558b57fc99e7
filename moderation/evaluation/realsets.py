"""Load the real-text sets: enforcement cases (with sources) and blind labels of corpus lines.

Corpus text never enters the repository: a label names its corpus file and 1-based line (``ref``) and a
short hash of the text, and the text is read here from the corpora folder (``MODERATION_CORPORA``, else
``../shared/corpora`` next to the repository), or, for public corpora that the shared folder does not
hold, from the extra corpora folder (``MODERATION_EXTRA_CORPORA``, else ``var/corpora`` in the
repository, never committed; tests/real/README.md says where each file comes from). A hash mismatch
means the corpus changed under the label, which would silently corrupt every figure, so it is an error;
a missing extra corpus only leaves its labels out, since a fresh clone cannot have it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from moderation.paths import REPO_ROOT

REAL_DIR = REPO_ROOT / "tests" / "real"
LABELS = ("violation", "conditional", "lawful")
#: The corpus files of ../shared/corpora that labels name; every other corpus is an extra one.
SHARED_CORPORA = frozenset(
    {
        "taobao_titles.txt",
        "app_descriptions_iflytek.jsonl",
        "online_shopping_10_cats.csv",
        "product_reviews_eprstmt.jsonl",
        "ecommerce_search_queries.tsv",
    }
)
#: AdvertiseGen's 1,070 clothing ad copies (dev split), kept in the extra corpora folder.
COPIES = "advertisegen_dev.json"
#: The e-commerce NER set's test-split titles (the shared titles are its train and dev splits), kept in
#: the extra corpora folder: a fresh set of real titles, labelled blind after the rules were written.
NER_TITLES = "ecommerce_ner_test_titles.txt"
#: Product titles of Alibaba's Multi-CPR retrieval set (as EcomGPT ships its product-selection task), kept
#: in the extra corpora folder: a second fresh set of real titles, labelled blind (sixteenth session).
CPR_TITLES = "multicpr_titles.txt"

#: LEGAL.md's family names as used by ../shared/cases → the rule packs' family keys.
FAMILY_ALIASES = {
    "superstition_public_order": "superstition_vulgarity",
    "education_guarantees": "education",
    "investment_guarantees": "investment",
    "cosmetics_efficacy": "cosmetics",
}


def corpora_dir() -> Path:
    return Path(os.environ.get("MODERATION_CORPORA", REPO_ROOT.parent / "shared" / "corpora"))


def extra_corpora_dir() -> Path:
    return Path(os.environ.get("MODERATION_EXTRA_CORPORA", REPO_ROOT / "var" / "corpora"))


def corpus_path(name: str) -> Path:
    """Where corpus file ``name`` is: the shared corpora first, then the extra corpora folder."""
    shared = corpora_dir() / name
    return shared if shared.is_file() else extra_corpora_dir() / name


def shared_cases_path() -> Path:
    return corpora_dir().parent / "cases" / "dev_cases.jsonl"


def text_hash(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _line_text(name: str, raw: str) -> str:
    """The listing text of one physical corpus line, by the corpus file's format."""
    raw = raw.rstrip("\r\n")
    if name.endswith((".jsonl", ".json")):
        row = json.loads(raw)  # app descriptions carry "sentence"; AdvertiseGen ad copies "summary"
        return str(row.get("sentence", row.get("summary", ""))).strip()
    if name.endswith(".tsv"):
        return raw.split("\t", 1)[-1].strip()
    if name.endswith(".csv"):
        row = next(csv.reader([raw]), [])
        return row[-1].lstrip("\ufeff").strip() if row else ""
    return raw.strip()


@cache
def corpus_lines(name: str) -> tuple[str, ...]:
    """Every line of one corpus file as listing text; index ``i`` is line ``i + 1``."""
    path = corpus_path(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"corpus {name!r} not found under {corpora_dir()} or {extra_corpora_dir()} "
            "(set MODERATION_CORPORA or MODERATION_EXTRA_CORPORA)"
        )
    with path.open(encoding="utf-8") as fh:
        return tuple(_line_text(name, raw) for raw in fh)


def resolve(ref: str) -> str:
    """The text behind ``file:line``."""
    name, _, line = ref.rpartition(":")
    lines = corpus_lines(name)
    n = int(line)
    if not 1 <= n <= len(lines):
        raise ValueError(f"{ref}: line out of range (the corpus has {len(lines)} lines)")
    return lines[n - 1]


@dataclass(frozen=True)
class RealItem:
    """One labelled real text: a case or a corpus line."""

    id: str
    text: str
    label: str  # violation | conditional | lawful
    category: str
    families: tuple[str, ...] = ()
    spans: tuple[str, ...] = ()
    tier: str = ""  # cases: A (from the text alone), B (evidence-dependent), C (not detectable)
    split: str = "dev"  # dev | test
    source: str = ""  # URL for cases, corpus file for corpus lines
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def listing(self) -> dict[str, Any]:
        # An ad copy is a listing's description; titles, app blurbs and case wording go in as the title.
        field_name = "description" if self.source == COPIES else "title"
        return {"id": self.id, field_name: self.text, "category": self.category or "general"}


def _family(name: str) -> str:
    return FAMILY_ALIASES.get(name, name)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, 1):
            if raw.strip():
                try:
                    yield json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from None


def _split_of(key: str, test_share: float = 0.4) -> str:
    """A fixed split by a stable key (a case's source), so items of one case never straddle it."""
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_share else "dev"


def near_duplicate_key(text: str) -> str:
    """Lines that share their first Chinese characters are usually variants of one listing; they must
    land on the same side of the split."""
    han = "".join(ch for ch in text if "\u4e00" <= ch <= "\u9fff")
    return han[:6] or text[:12]


def _split(row: dict[str, Any], where: str, default: str) -> str:
    """The row's own split (a set read blind once and then tuned on marks its rows ``dev``), else the
    fixed one by hashing; a misspelt split is refused, since it would drop the item from both halves."""
    split = row.get("split") or default
    if split not in ("dev", "test"):
        raise ValueError(f"{where}: unknown split {split!r} (dev or test)")
    return str(split)


def _category(row: dict[str, Any], where: str) -> str:
    """The row's category, refused when the checker has no such category: an unknown one would be
    scored as an ``unknown_category`` error instead of a verdict and would drop the classifier's tag."""
    from moderation.schema import CATEGORIES

    category = row.get("category") or "general"
    if category not in CATEGORIES:
        raise ValueError(f"{where}: unknown category {category!r}")
    return str(category)


def case_item(row: dict[str, Any]) -> RealItem:
    label = "lawful" if row["label"] == "compliant" else row["label"]
    text = row.get("text") or resolve(row["ref"])
    family = row.get("family")
    families = tuple(_family(f) for f in ([family] if isinstance(family, str) else family or []))
    source = row.get("source") or row.get("ref", "")
    return RealItem(
        id=str(row["id"]),
        text=text,
        label=label,
        category=_category(row, str(row["id"])),
        families=families,
        tier=row.get("tier", ""),
        split=_split(row, str(row["id"]), _split_of(source)),
        source=source,
        extra={k: row[k] for k in ("article", "note") if k in row},
    )


def load_cases(include_shared: bool = True) -> list[RealItem]:
    """Our collected cases (tests/real/cases*.jsonl) plus the shared development cases when present."""
    items: list[RealItem] = []
    if include_shared and shared_cases_path().is_file():
        items.extend(case_item(r) for r in _read_jsonl(shared_cases_path()))
    for path in sorted(REAL_DIR.glob("cases*.jsonl")):
        items.extend(case_item(r) for r in _read_jsonl(path))
    return items


def label_item(row: dict[str, Any], check_hash: bool = True) -> RealItem:
    ref = row["ref"]
    text = resolve(ref)
    if check_hash and row.get("sha") and row["sha"] != text_hash(text):
        raise ValueError(f"{ref}: the corpus line changed since it was labelled (hash {row['sha']})")
    label = row["label"]
    if label not in LABELS:
        raise ValueError(f"{ref}: unknown label {label!r}")
    corpus = ref.rpartition(":")[0]
    return RealItem(
        id=ref,
        text=text,
        label=label,
        category=_category(row, ref),
        families=tuple(_family(f) for f in row.get("families") or ()),
        spans=tuple(row.get("spans") or ()),
        split=_split(row, ref, _split_of(near_duplicate_key(text), 0.5)),
        source=corpus,
        extra={k: row[k] for k in ("note", "labeller") if k in row},
    )


def _corpus_present(ref: str) -> bool:
    """Whether a label's corpus can be read here. The shared corpora must be (a missing one is an
    error below); an extra corpus may be absent on a fresh clone, and then its labels are left out."""
    name = ref.rpartition(":")[0]
    return name in SHARED_CORPORA or corpus_path(name).is_file()


def _adjudication() -> dict[str, dict[str, Any]]:
    """Decisions on texts that occur on several corpus lines and got conflicting labels (by text hash)."""
    path = REAL_DIR / "adjudication.jsonl"
    return {row["sha"]: row for row in _read_jsonl(path)} if path.is_file() else {}


def load_corpus_labels(pattern: str = "labels/*.jsonl") -> list[RealItem]:
    """The primary blind labels (one per ref; the double-labelled sample lives in ``labels-second/``).

    A text that occurs on several lines sometimes got different labels from different labellers; the
    adjudicated label (``adjudication.jsonl``, one decision per text with its reason) replaces them all,
    so the same words are never both a violation and lawful in one figure."""
    decided = _adjudication()
    items: dict[str, RealItem] = {}
    for path in sorted(REAL_DIR.glob(pattern)):
        for row in _read_jsonl(path):
            if not _corpus_present(str(row["ref"])):
                continue
            verdict = decided.get(row.get("sha", ""))
            if verdict is not None:
                row = {**row, "label": verdict["label"], "families": verdict["families"]}
            item = label_item(row)
            items[item.id] = item
    return list(items.values())
