"""Why a listing scored high: the words that drove the classifier, as spans of the submitted fields.

Method (cheap enough for the serving path, and run only when a score is to be explained):

1. The text the model read is cut into **words** (jieba; the category tag and the separators between
   fields are never reported).
2. **Occlusion**: each word is deleted and the text rescored, all in one batch (the ONNX graph when it
   is in use); a word's weight is how much its deletion lowers the logit margin the calibration maps to
   the score, as a share of the total drop. Long texts (more than 24 words) first pick their 24
   candidate words by occluding **runs** of neighbouring words (at most 24 runs, one batch) and keeping
   the words of the runs whose deletion lowers the margin most. No gradients: the explanation runs on
   whichever backend scores (the ONNX graph never loads PyTorch for it).

The spans' weights add up to at most 1; ``score_without`` is the calibrated score without the span.
Offsets point into the fields as submitted (title, description, attribute values), in the order
``listing_text`` joins them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import CATEGORY_ZH


@dataclass
class Span:
    field: str
    start: int
    end: int
    text: str
    weight: float
    score_without: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = {
            "field": self.field,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "weight": round(self.weight, 4),
        }
        if self.score_without is not None:
            d["score_without"] = round(self.score_without, 4)
        return d


def _layout(
    fields: Sequence[tuple[str, str]], category: str | None
) -> tuple[str, list[tuple[str, int, int]]]:
    """The model's text for these fields and, per field, (name, start, end) of its text within it;
    the same joining as ``config.listing_text``."""
    prefix = f"【{CATEGORY_ZH[category]}】" if category and category in CATEGORY_ZH else ""
    parts: list[tuple[str, int, int]] = []
    pos = len(prefix)
    texts: list[str] = []
    for name, value in fields:
        if not value:
            continue
        if texts:
            pos += 1  # the "\n" between fields
        parts.append((name, pos, pos + len(value)))
        texts.append(value)
        pos += len(value)
    return prefix + "\n".join(texts), parts


def _words(text: str) -> list[tuple[int, int]]:
    """Word boundaries (start, end) over ``text`` from jieba; whitespace is skipped."""
    import jieba

    out, pos = [], 0
    for w in jieba.lcut(text, HMM=False):
        if w.strip():
            out.append((pos, pos + len(w)))
        pos += len(w)
    return out


def _candidates_by_runs(
    model: Any, text: str, words: list[tuple[str, int, int, int]], max_occluded: int
) -> tuple[list[tuple[str, int, int, int]], float]:
    """``max_occluded`` candidate words of a long text, and the text's own margin (scored in the same
    batch, so the caller need not score it again): its words cut into at most ``max_occluded`` runs of
    neighbours, each run deleted and the text rescored in one batch; the words of the runs whose
    deletion lowers the margin most are kept. Cheaper than occluding every word and needs no gradients,
    so a model scoring with its ONNX graph never loads PyTorch to explain."""
    size = -(-len(words) // max_occluded)
    runs = [words[i : i + size] for i in range(0, len(words), size)]
    texts = [text] + [text[: run[0][2]] + text[run[-1][3] :] for run in runs]
    margins = model.margins(texts, batch_size=len(texts))
    drops = float(margins[0]) - margins[1:]
    picked: list[tuple[str, int, int, int]] = []
    for i in np.argsort(-drops, kind="stable"):
        if picked and drops[i] <= 0:
            break
        picked.extend(runs[int(i)])
        if len(picked) >= max_occluded:
            break
    return sorted(picked[:max_occluded], key=lambda w: w[2]), float(margins[0])


def explain_fields(
    model: Any,
    fields: Sequence[tuple[str, str]],
    category: str | None = None,
    top_k: int = 5,
    max_occluded: int = 24,
) -> list[Span]:
    """The words of ``fields`` ((name, text) pairs, as ``Listing.text_fields()``) that drove the score.

    Candidates are every word when the text has at most ``max_occluded`` words, else the words of the
    runs whose deletion lowers the score most (``_candidates_by_runs``). Each candidate is deleted and the text
    rescored in one batch; a candidate's ``weight`` is its share of the total logit-margin drop over the
    candidates whose deletion lowers the score, and ``score_without`` the calibrated score without it.
    Adjacent chosen words of one field are merged into one span (三天 + 见效 → 三天见效).
    """
    full, parts = _layout(fields, category)
    text = full[: model.max_chars]
    words: list[tuple[str, int, int, int]] = []  # (field, field offset of the word, start, end in text)
    for name, fs, fe in parts:
        if fs >= len(text):
            break
        seg = text[fs : min(fe, len(text))]
        words.extend((name, fs, fs + ws, fs + we) for ws, we in _words(seg))
    if not words:
        return []
    base_from_runs: float | None = None
    if len(words) > max_occluded:
        words, base_from_runs = _candidates_by_runs(model, text, words, max_occluded)
    occluded = [text[:ts] + text[te:] for _, _, ts, te in words]
    if base_from_runs is None:
        margins = model.margins([text, *occluded], batch_size=len(occluded) + 1)
        base, without = float(margins[0]), margins[1:]
    else:
        base, without = base_from_runs, model.margins(occluded, batch_size=len(occluded))
    drops = base - without
    total = float(np.clip(drops, 0, None).sum())
    if total <= 0:
        return []
    probs = model.calibration.apply(without)
    chosen = sorted((i for i in range(len(words)) if drops[i] > 0), key=lambda i: -drops[i])[:top_k]
    chosen.sort(key=lambda i: words[i][2])
    spans: list[Span] = []
    for i in chosen:
        name, fs, ts, te = words[i]
        last = spans[-1] if spans else None
        if last is not None and last.field == name and last.end == ts - fs:
            last.end, last.text = te - fs, last.text + text[ts:te]
            last.weight += float(drops[i]) / total
            # The merged span's own deletion was not measured; keep its strongest part's score.
            last.score_without = min(last.score_without or 1.0, float(probs[i]))
            continue
        spans.append(
            Span(
                field=name,
                start=ts - fs,
                end=te - fs,
                text=text[ts:te],
                weight=float(drops[i]) / total,
                score_without=float(probs[i]),
            )
        )
    spans.sort(key=lambda sp: -sp.weight)
    return spans


def explain_listing(model: Any, listing: Any, top_k: int = 5) -> list[Span]:
    """``explain_fields`` for a Listing (or its dict), with the category tag the model was trained on."""
    if isinstance(listing, dict):
        fields = [("title", listing.get("title") or ""), ("description", listing.get("description") or "")]
        fields += [(f"attributes.{k}", str(v)) for k, v in (listing.get("attributes") or {}).items() if v]
        category = listing.get("category")
    else:
        fields, category = listing.text_fields(), listing.category
    return explain_fields(model, fields, category, top_k=top_k)
