"""Reproducible construction of the labelled training set from lexicons, corpora and rule packs.

Why generated data: no labelled advertising-law corpus exists here, so violations are written as claim
lexicons (scripts/data/*.yaml) and inserted into listing frames and into real product titles from the
local corpora; lawful claims and hard negatives go into the very same frames and carriers, so the only
thing separating the classes is the claim itself, not the style of the text around it.

How the split is made: the unit is the paraphrase group (one claim idea written several ways) and the
listing template. Per family, about 30% of the claim groups (at least one when the family has two or
more) and 30% of the templates are held out; training examples only use training groups and templates,
held-out examples only held-out ones, so evaluation measures wording the model has never seen. Corpus
lines are split by a hash of the line. The held-out pool is then divided at random into a calibration
part (40%) and a test part (60%): Platt scaling fits two numbers on it, so sharing groups between calib
and test leaks nothing the model could memorise.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .config import CATEGORY_ZH
from .data import Example

HELD_OUT_FRACTION = 0.3
CALIB_SHARE = 0.4
_SLOT = re.compile(r"\{(\w+)\}")

#: online_shopping_10_cats categories → listing categories, for the category tag on corpus lines.
_REVIEW_CATS = {
    "书籍": "education",
    "平板": "general",
    "手机": "general",
    "水果": "agriculture",
    "洗发水": "cosmetics",
    "热水器": "general",
    "蒙牛": "food",
    "衣服": "apparel",
    "计算机": "general",
    "酒店": "general",
}


@dataclass
class ClaimGroup:
    family: str
    group: str
    label: int
    texts: list[str]
    categories: list[str]
    paraphrase: bool = False
    needs_category: bool = False


def stable_hash(text: str) -> float:
    """A number in [0, 1) from the text alone, so corpus splits never change between runs."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)


def load_claims(path: Path, *extra: Path) -> tuple[list[ClaimGroup], dict[str, list[str]], list[str]]:
    """Claim groups, slots and the corpus filter from ``path``, plus the groups of ``extra`` files.

    Extra files (such as ``claims_more.yaml``) only add groups: slots, the corpus filter and the
    fixed held-out list come from the main file, so a group in an extra file is training material
    unless the main file names it in ``heldout_groups``.
    """
    d = yaml.safe_load(path.read_text(encoding="utf-8"))
    docs = [d] + [yaml.safe_load(p.read_text(encoding="utf-8")) or {} for p in extra]
    groups: list[ClaimGroup] = []
    for label, key in ((1, "unlawful"), (0, "lawful")):
        for g in (g for doc in docs for g in doc.get(key, []) or []):
            cats = g.get("categories", "all")
            groups.append(
                ClaimGroup(
                    family=g.get("family", "lawful"),
                    group=g["group"],
                    label=label,
                    texts=list(g["texts"]),
                    categories=list(CATEGORY_ZH) if cats == "all" else list(cats),
                    paraphrase=bool(g.get("paraphrase", False)),
                    needs_category=bool(g.get("needs_category", False)),
                )
            )
    names = [g.group for g in groups]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ValueError(f"{path} (+{len(extra)} extra): duplicate group names {sorted(dupes)}")
    return (
        groups,
        {k: [str(v) for v in vs] for k, vs in d.get("slots", {}).items()},
        list(d.get("corpus_filter", [])),
    )


def claim_files(lexicon_dir: Path) -> tuple[Path, list[Path]]:
    """The main claims file (groups, slots, the fixed held-out list) and the extra ``claims_*.yaml``
    files that add training groups, as `build_dataset` and the tokenizer's vocabulary read them."""
    return lexicon_dir / "claims.yaml", sorted(lexicon_dir.glob("claims_*.yaml"))


def split_units(names_by_family: dict[str, list[str]], rng: random.Random) -> set[str]:
    """Names held out: ~30% per family (at least one when the family has two or more members)."""
    held: set[str] = set()
    for fam in sorted(names_by_family):
        names = sorted(names_by_family[fam])
        if len(names) < 2:
            continue
        rng.shuffle(names)
        k = max(1, round(HELD_OUT_FRACTION * len(names)))
        held.update(names[:k])
    return held


def _read_lines(path: Path, limit: int | None = None) -> list[str]:
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8-sig") as fh:
        for line in fh:
            line = line.strip()
            if line:
                out.append(line)
            if limit and len(out) >= limit:
                break
    return out


def load_corpora(corpora_dir: Path) -> dict[str, list[tuple[str, str | None]]]:
    """Corpus texts by source as (text, category or None); silently empty for absent files."""
    src: dict[str, list[tuple[str, str | None]]] = {}
    src["titles"] = [(t, None) for t in _read_lines(corpora_dir / "taobao_titles.txt")]
    reviews: list[tuple[str, str | None]] = []
    p = corpora_dir / "online_shopping_10_cats.csv"
    if p.exists():
        with open(p, encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                text = (row.get("review") or "").strip().lstrip("\ufeff")
                if text:
                    reviews.append((text, _REVIEW_CATS.get(row.get("cat", ""))))
    for line in _read_lines(corpora_dir / "product_reviews_eprstmt.jsonl"):
        reviews.append((json.loads(line)["sentence"].strip(), None))
    src["reviews"] = reviews
    src["queries"] = [
        (ln.split("\t", 1)[-1], None) for ln in _read_lines(corpora_dir / "ecommerce_search_queries.tsv")
    ]
    src["apps"] = [
        (json.loads(ln)["sentence"].strip(), None)
        for ln in _read_lines(corpora_dir / "app_descriptions_iflytek.jsonl")
    ]
    return src


def rule_pack_examples(packs_dir: Path) -> list[tuple[str, int, str, str, str | None]]:
    """(text, label, family, rule id, category) from every rule's examples in rules/packs/*.yaml.

    The pack format is owned by the rules engine; this reads only what it needs and tolerates the
    usual shapes (a pack with ``rules:`` or a bare list; examples as strings or {text, category}).
    """
    out: list[tuple[str, int, str, str, str | None]] = []
    if not packs_dir.exists():
        return out
    for path in sorted(packs_dir.glob("*.y*ml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules = doc.get("rules", []) if isinstance(doc, dict) else doc or []
        pack_family = doc.get("family", path.stem) if isinstance(doc, dict) else path.stem
        for rule in rules:
            if not isinstance(rule, dict):
                continue
            rid = str(rule.get("id", f"{path.stem}.?"))
            fam = str(rule.get("family", pack_family))
            ex = rule.get("examples") or {}
            for key, label in (("fire", 1), ("pass", 0)):
                for item in ex.get(key, []) or []:
                    if isinstance(item, str):
                        out.append((item, label, fam, rid, None))
                    elif isinstance(item, dict) and item.get("text"):
                        attrs = item.get("attributes") or {}
                        text = "\n".join([str(item["text"]), *[str(v) for v in attrs.values()]])
                        out.append((text, label, fam, rid, item.get("category")))
    return out


class Builder:
    """Generates examples for one split from its claim groups, templates and corpus lines."""

    def __init__(
        self,
        tpl: dict[str, Any],
        groups: list[ClaimGroup],
        slots: dict[str, list[str]],
        templates: list[dict[str, str]],
        carriers: list[str],
        reviews: list[str],
        rng: random.Random,
        split: str,
    ) -> None:
        self.tpl, self.slots, self.templates, self.rng, self.split = tpl, slots, templates, rng, split
        self.carriers, self.reviews = carriers, reviews
        self.by_cat: dict[tuple[int, str], list[ClaimGroup]] = defaultdict(list)
        for g in groups:
            for c in g.categories:
                self.by_cat[(g.label, c)].append(g)

    def _fill_slots(self, text: str, product: str) -> str:
        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key == "product":
                return product
            return self.rng.choice(self.slots[key]) if key in self.slots else m.group(0)

        return _SLOT.sub(sub, text)

    def _evade(self, text: str) -> str:
        """Seller-style obfuscation, applied to both classes so it is never a label cue."""
        r = self.rng.random()
        if r < 0.4:
            sep = self.rng.choice([" ", "*", "~", "·", "-"])
            return sep.join(text)
        if r < 0.7:
            return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)
        return text + self.rng.choice(["！！", "~~", "🔥", "👍", "❗", "✨"])

    def example(self) -> Example | None:
        rng = self.rng
        cat = rng.choice(list(CATEGORY_ZH))
        label = 1 if rng.random() < 0.5 else 0
        pool = self.by_cat.get((label, cat), [])
        info = self.tpl["categories"][cat]
        product = rng.choice(info["products"])
        if label == 0 and (not pool or rng.random() < 0.35):
            group = None
            claim = rng.choice(info["lawful"])
        elif not pool:
            return None
        else:
            group = rng.choice(pool)
            claim = self._fill_slots(rng.choice(group.texts), product)
        if rng.random() < 0.12:
            claim = self._evade(claim)
        template = rng.choice(self.templates)
        lawful = rng.sample(info["lawful"], 2)
        specs = rng.sample(info["specs"], 2)
        fill = {
            "product": product,
            "claim": claim,
            "lawful": lawful[0],
            "lawful2": lawful[1],
            "spec": specs[0],
            "spec2": specs[1],
            "brand": rng.choice(self.tpl["brands"]),
            "price": rng.choice(self.tpl["prices"]),
            "carrier": rng.choice(self.carriers) if self.carriers else product,
        }
        text = template["text"].format(**fill)
        if self.reviews and rng.random() < 0.2:
            text += "\n买家评价：" + rng.choice(self.reviews)[:120]
        needs_cat = group is not None and group.needs_category
        if needs_cat or rng.random() < 0.85:
            text = f"【{CATEGORY_ZH[cat]}】" + text
        return Example(
            text=text,
            label=label,
            family=group.family if group else "lawful",
            group=group.group if group else f"category_lawful:{cat}",
            source=f"generated:{template['id']}",
            split=self.split,
            paraphrase=bool(group and group.paraphrase),
        )


def build_dataset(
    templates_path: Path,
    claims_path: Path,
    corpora_dir: Path,
    packs_dir: Path,
    seed: int = 20240601,
    n_generated: int = 40000,
    n_corpus: int = 20000,
    rule_pack_repeat: int = 3,
    extra_claims: Sequence[Path] = (),
    train_scale: float = 1.0,
    exclude: Callable[[str], bool] | None = None,
    carrier_ok: Callable[[str], bool] | None = None,
    weak_weights: dict[str, float] | None = None,
) -> dict[str, list[Example]]:
    """The train / calib / test examples (see the module docstring for how they are split).

    Each part is drawn from its own random stream (seeded from ``seed`` and the part's name), so
    adding training groups or templates leaves the held-out calib and test sets unchanged.

    ``exclude``: corpus lines for which it is true are never used (the real test set's lines and their
    near duplicates). ``carrier_ok``: only titles it accepts carry generated claims (real titles
    labelled lawful). ``weak_weights``: which corpora give weakly lawful lines, and their shares
    (default: titles, reviews, queries, apps); app descriptions, 37% of which a blind labeller marked
    as violations, are not lawful material.
    """
    rng = random.Random(seed)
    tpl = yaml.safe_load(templates_path.read_text(encoding="utf-8"))
    groups, slots, corpus_filter = load_claims(claims_path, *extra_claims)

    fam_groups: dict[str, list[str]] = defaultdict(list)
    for g in groups:
        fam_groups[f"{g.label}:{g.family}"].append(g.group)
    # A lexicon may fix the split by name (heldout_groups / heldout_templates), so that adding groups
    # does not reshuffle which ones are held out; otherwise ~30% per family is drawn with the seed.
    fixed = yaml.safe_load(claims_path.read_text(encoding="utf-8")).get("heldout_groups")
    held_groups = set(fixed) if fixed else split_units(fam_groups, rng)
    fixed_t = tpl.get("heldout_templates")
    held_templates = set(fixed_t) if fixed_t else split_units({"t": [t["id"] for t in tpl["templates"]]}, rng)

    bad = re.compile("|".join(re.escape(t) for t in corpus_filter), re.IGNORECASE) if corpus_filter else None
    corpora = load_corpora(corpora_dir)

    def usable(text: str) -> bool:
        return bool(text) and not (bad and bad.search(text)) and not (exclude and exclude(text))

    def corpus_split(text: str) -> str:
        return "heldout" if stable_hash(text) < HELD_OUT_FRACTION else "train"

    parts: dict[str, list[Example]] = {"train": [], "heldout": []}
    for part in parts:
        in_part = [g for g in groups if (g.group in held_groups) == (part == "heldout")]
        tpls = [t for t in tpl["templates"] if (t["id"] in held_templates) == (part == "heldout")]
        carriers = [
            t
            for t, _ in corpora.get("titles", [])
            if usable(t) and corpus_split(t) == part and (carrier_ok is None or carrier_ok(t))
        ]
        reviews = [t for t, _ in corpora.get("reviews", []) if usable(t) and corpus_split(t) == part]
        b = Builder(tpl, in_part, slots, tpls, carriers, reviews, random.Random(f"{seed}:{part}"), part)
        share = 1.0 - HELD_OUT_FRACTION if part == "train" else HELD_OUT_FRACTION
        # train_scale grows the training part only; the held-out part keeps its size (and content).
        target = int(n_generated * share * (train_scale if part == "train" else 1.0))
        while len(parts[part]) < target:
            ex = b.example()
            if ex is not None:
                parts[part].append(ex)

    # Real text as weakly lawful material, filtered of lines with strong violation terms.
    weights = (
        weak_weights
        if weak_weights is not None
        else {"titles": 0.3, "reviews": 0.4, "queries": 0.15, "apps": 0.15}
    )
    rng = random.Random(f"{seed}:corpus")
    for source, w in weights.items():
        lines = [(t, c) for t, c in corpora.get(source, []) if usable(t)]
        rng.shuffle(lines)
        for text, cat in lines[: int(n_corpus * w)]:
            text = text[:300]
            if cat and rng.random() < 0.6:
                text = f"【{CATEGORY_ZH[cat]}】" + text
            part = corpus_split(text)
            parts[part].append(
                Example(
                    text=text,
                    label=0,
                    family="lawful",
                    group=f"corpus:{source}",
                    source=f"corpus:{source}",
                    split=part,
                )
            )

    # Rule-pack examples are few but hand-checked (including hard negatives next to each rule), so the
    # training copies are repeated; whole rules are held out, like claim groups.
    for text, label, fam, rid, cat in rule_pack_examples(packs_dir):
        part = "heldout" if stable_hash(rid) < HELD_OUT_FRACTION else "train"
        if cat in CATEGORY_ZH:
            text = f"【{CATEGORY_ZH[cat]}】" + text
        for _ in range(rule_pack_repeat if part == "train" else 1):
            parts[part].append(
                Example(
                    text=text,
                    label=label,
                    family=fam if label else "lawful",
                    group=f"rule:{rid}",
                    source="rule_pack",
                    split=part,
                )
            )

    random.Random(f"{seed}:train-order").shuffle(parts["train"])
    held = parts["heldout"]
    random.Random(f"{seed}:heldout-order").shuffle(held)
    n_cal = int(len(held) * CALIB_SHARE)
    calib, test = held[:n_cal], held[n_cal:]
    for e in calib:
        e.split = "calib"
    for e in test:
        e.split = "test"
    for e in parts["train"]:
        e.split = "train"
    return {"train": parts["train"], "calib": calib, "test": test}


def describe_split(data: dict[str, list[Example]]) -> dict[str, Any]:
    """What went where: held-out groups and templates, and the class balance of each split."""
    summary: dict[str, Any] = {}
    for name, exs in data.items():
        summary[name] = {
            "n": len(exs),
            "positives": sum(e.label for e in exs),
            "groups": sorted(
                {e.group for e in exs if not e.group.startswith(("corpus:", "category_lawful:", "rule:"))}
            ),
            "templates": sorted(
                {e.source.split(":", 1)[1] for e in exs if e.source.startswith("generated:")}
            ),
        }
    overlap = set(summary["train"]["groups"]) & (
        set(summary["test"]["groups"]) | set(summary["calib"]["groups"])
    )
    summary["group_overlap_train_heldout"] = sorted(overlap)
    return summary


def lexicon_texts(paths: Iterable[Path]) -> list[str]:
    """All string values in the YAML lexicons, for the tokenizer's forced characters."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    for p in paths:
        walk(yaml.safe_load(Path(p).read_text(encoding="utf-8")))
    return out
