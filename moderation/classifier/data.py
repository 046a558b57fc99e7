"""Labelled examples: the JSONL format shared by the dataset builder, training, evaluation and the CLI.

One line per example: ``{"text", "label", "family", "group", "source", "split", "paraphrase"}``. Only
``text`` and ``label`` are required (that is also the shape of review-queue decisions), the rest are
used to report per-family metrics and to prove the split is by paraphrase family.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Example:
    """One labelled text. ``label`` is 1 for a violation, 0 for a lawful listing."""

    text: str
    label: int
    family: str = ""
    group: str = ""
    source: str = ""
    split: str = ""
    paraphrase: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Example:
        if "text" not in d or "label" not in d:
            raise ValueError("an example needs 'text' and 'label'")
        label = d["label"]
        if isinstance(label, str):
            label = {"violation": 1, "risky": 1, "block": 1, "lawful": 0, "pass": 0}.get(label, label)
        label_int = int(label)  # type: ignore[call-overload]
        if label_int not in (0, 1):
            raise ValueError(f"label must be 0 or 1, got {d['label']!r}")
        return cls(
            text=str(d["text"]),
            label=label_int,
            family=str(d.get("family") or ""),
            group=str(d.get("group") or ""),
            source=str(d.get("source") or ""),
            split=str(d.get("split") or ""),
            paraphrase=bool(d.get("paraphrase", False)),
        )


def read_jsonl(path: str | Path) -> list[Example]:
    """Read examples; a malformed line fails loudly with its line number (training data must be clean)."""
    out: list[Example] = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(Example.from_dict(json.loads(line)))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
    return out


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> int:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(asdict(ex), ensure_ascii=False) + "\n")
            n += 1
    return n


def length_bucketed_batches(
    lengths: list[int], batch_size: int, rng: random.Random | None = None, bucket_factor: int = 50
) -> Iterator[list[int]]:
    """Index batches of similar length, so padding per batch stays small.

    With ``rng`` (training) the data is shuffled, cut into chunks of ``bucket_factor`` batches, each
    chunk sorted by length, and the batches shuffled; without it (prediction) indices are simply sorted
    by length, which makes the batching, and so the scores, deterministic.
    """
    idx = list(range(len(lengths)))
    if rng is None:
        idx.sort(key=lambda i: lengths[i])
        for s in range(0, len(idx), batch_size):
            yield idx[s : s + batch_size]
        return
    rng.shuffle(idx)
    chunk = batch_size * bucket_factor
    batches: list[list[int]] = []
    for s in range(0, len(idx), chunk):
        part = sorted(idx[s : s + chunk], key=lambda i: lengths[i])
        batches.extend(part[b : b + batch_size] for b in range(0, len(part), batch_size))
    rng.shuffle(batches)
    yield from batches
