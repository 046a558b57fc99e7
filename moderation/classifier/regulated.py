"""Listings of regulated products written from cited lawful wording, with unlawful counterparts.

Why: the real enforcement cases' lawful look-alikes include approved health-food function claims and
mandatory label text (本品不能代替药物, 低毒, 适宜人群 …) that the training data nearly lacked, so the
model scored lawful approved wording as risky. ``scripts/data/lawful_regulated.yaml`` holds that wording
with its sources; this module turns it into listings. Each lawful listing (label 0) has a counterpart
drawn from the same products, frames and label lines with one claim replaced by a disease, cure or
guarantee claim (label 1), so the model has to learn the claim, not "health food is lawful" or
"a mandatory line means lawful".

The unit of the split is the product: about a quarter of each category's products (fixed by a hash of
the name) are held out and only appear in the check set (``part="check"``), which measures wording on
products the model never saw in training.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .data import Example
from .synth import stable_hash

#: Share of each category's products kept out of training for the check set.
CHECK_SHARE = 0.25
_SLOT = re.compile(r"\{(\w+)\}")


def load_regulated(path: Path) -> dict[str, Any]:
    """The YAML source (sources, number formats, categories); validated for the keys generation needs."""
    d: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    for cat, info in d["categories"].items():
        for key in ("products", "label_lines", "unlawful", "tag", "share"):
            if key not in info:
                raise ValueError(f"{path}: category {cat} lacks {key!r}")
        for list_name in info.get("cite", {}):
            if list_name not in info and list_name not in ("functions", "old"):
                raise ValueError(f"{path}: category {cat} cites a missing list {list_name!r}")
    return d


def product_part(category: str, name: str) -> str:
    """``check`` for the held-out products, ``train`` for the rest (stable across runs)."""
    return "check" if stable_hash(f"regulated:{category}:{name}") < CHECK_SHARE else "train"


class _Writer:
    def __init__(self, d: dict[str, Any], rng: random.Random, part: str) -> None:
        self.d, self.rng = d, rng
        self.cats = list(d["categories"])
        self.weights = [float(d["categories"][c]["share"]) for c in self.cats]
        self.products = {
            c: [p for p in info["products"] if product_part(c, p["name"]) == part]
            for c, info in d["categories"].items()
        }

    def _digits(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789") for _ in range(n))

    def _number(self, kind: str) -> str:
        return self._fill(self.rng.choice(self.d["numbers"][kind]), {})

    def _fill(self, text: str, ctx: dict[str, str]) -> str:
        def sub(m: re.Match[str]) -> str:
            key = m.group(1)
            if key in ctx:
                return ctx[key]
            if key.startswith("d") and key[1:].isdigit():
                return self._digits(int(key[1:]))
            if key == "fert":
                return self._number("fertiliser")
            return m.group(0)

        return _SLOT.sub(sub, text)

    def _context(self, cat: str, prod: dict[str, Any]) -> dict[str, str]:
        info = self.d["categories"][cat]
        kind = {
            "health_food": "health_food",
            "food": "food",
            "agriculture": "pesticide",
            "medical_device": "device",
            "drug": "drug",
        }.get(cat)
        if cat == "cosmetics":
            kind = "cosmetics_special" if prod.get("special") else "cosmetics_ordinary"
        ctx = {k: str(v) for k, v in prod.items() if isinstance(v, str)}
        ctx["product"] = prod["name"]
        ad = {"drug": "ad_drug", "medical_device": "ad_device", "health_food": "ad_health_food"}.get(cat)
        if ad:
            ctx["ad"] = self._number(ad)
        if kind:
            ctx["number"] = self._number(kind)
        diseases = info.get("diseases") or []
        if diseases:
            ctx["disease"] = self.rng.choice(diseases)
        return ctx

    def _claims(self, cat: str, prod: dict[str, Any], ctx: dict[str, str]) -> list[str]:
        """The product's own lawful claims (approved functions, nutrient wording, efficacy, toxicity)."""
        info, rng = self.d["categories"][cat], self.rng
        out: list[str] = []
        for f in prod.get("functions", []):
            out.append(rng.choice(info["function_forms"]).format(f=f))
        for f in prod.get("old", []):
            if rng.random() < 0.5:
                out.append(rng.choice(info["old_forms"]).format(f=f))
        for n in prod.get("nutrients", []):
            if cat == "health_food" and rng.random() < 0.5:
                out.append(rng.choice(info["nutrient_forms"]).format(n=n))
            out.extend(
                rng.sample(
                    info["nutrient_claims"].get(n, []), k=min(2, len(info["nutrient_claims"].get(n, [])))
                )
            )
        if cat == "food":
            out.append(rng.choice(info["content_claims"]))
        for e in prod.get("efficacy", []):
            out.append(rng.choice(info["efficacy_forms"]).format(e=e))
        if prod.get("special"):
            out.append(
                self._fill(
                    rng.choice(info["special_forms"]).format(s=prod["special"], number="{number}"), ctx
                )
            )
        if prod.get("tox"):
            out.append(rng.choice(info["tox_forms"]).format(tox=prod["tox"]))
        if prod.get("kind") and prod["kind"] != "肥料":
            out.append(rng.choice(info["band_forms"]).format(kind=prod["kind"]))
        return [self._fill(c, ctx) for c in out]

    def _label_lines(self, cat: str, prod: dict[str, Any], ctx: dict[str, str], k: int) -> list[str]:
        info = self.d["categories"][cat]
        pool = info["fert_lines"] if prod.get("kind") == "肥料" else info["label_lines"]
        return [self._fill(t, ctx) for t in self.rng.sample(pool, k=min(k, len(pool)))]

    def example(self) -> Example:
        rng, d = self.rng, self.d
        cat = rng.choices(self.cats, weights=self.weights)[0]
        info = d["categories"][cat]
        prod = rng.choice(self.products[cat] or info["products"])
        ctx = self._context(cat, prod)
        label = int(rng.random() < 0.5)
        claims = self._claims(cat, prod, ctx)
        lines = self._label_lines(cat, prod, ctx, 4)
        lawful = claims + lines
        rng.shuffle(lawful)
        if label:
            core = self._fill(rng.choice(info["unlawful"]), ctx)
        else:
            core = rng.choice(claims) if claims and rng.random() < 0.65 else rng.choice(lines)
        others = [t for t in lawful if t != core]
        shape = rng.choices(list(d["shapes"]), weights=list(d["shapes"].values()))[0]
        brand, name = rng.choice(d["brands"]), prod["name"]
        sep = rng.choice(["，", " ", "；", "。"])
        if shape == "short":
            r = rng.random()
            if r < 0.45:
                text = core
            elif r < 0.75:
                text = f"{name}{rng.choice(['', ' ', '，'])}{core}"
            else:
                # A mandatory line next to the claim, on either side, for both labels.
                text = sep.join(rng.sample([core, others[0] if others else name], 2))
        elif shape == "title":
            parts = [f"{brand}{name}", core, *others[: rng.randint(0, 2)], rng.choice(d["filler"])]
            head = parts[:1]
            rest = parts[1:]
            rng.shuffle(rest)
            text = " ".join(head + rest)
        else:
            body = [core, *others[: rng.randint(2, 5)]]
            rng.shuffle(body)
            extra = rng.sample(d["filler"], 2)
            text = "\n".join([f"{brand} {name} {extra[0]}", *body, extra[1]])
        if rng.random() < 0.9:
            text = f"【{info['tag']}】{text}"
        return Example(
            text=text,
            label=label,
            family="medical_claims" if label else "lawful",
            group=f"regulated:{cat}:{'unlawful' if label else 'lawful'}",
            source=f"regulated:{shape}",
            split="train",
        )


def regulated_examples(
    path: Path,
    n: int,
    seed: int = 20240601,
    part: str = "train",
    exclude: Callable[[str], bool] | None = None,
) -> tuple[list[Example], int]:
    """``n`` listings (about half lawful) from the products of ``part`` (``train`` or ``check``), and
    how many drafts were dropped because ``exclude`` matched them (near duplicates of real test items:
    no test text may reach training, even when the wording is the regulation's own)."""
    w = _Writer(load_regulated(path), random.Random(f"{seed}:regulated:{part}"), part)
    out: list[Example] = []
    seen: set[str] = set()
    dropped = 0
    tries = 0
    while len(out) < n and tries < n * 20:
        tries += 1
        ex = w.example()
        if ex.text in seen:
            continue
        raw = ex.text.split("】", 1)[-1] if ex.text.startswith("【") else ex.text
        if exclude is not None and (exclude(ex.text) or exclude(raw)):
            dropped += 1
            continue
        seen.add(ex.text)
        ex.split = part
        out.append(ex)
    return out, dropped
