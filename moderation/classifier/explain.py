"""Why a listing scored high: the words that drove the classifier, as spans of the submitted fields.

Method (cheap enough for the serving path, and run only when a score is to be explained):

1. The text the model read is cut into **words** (jieba; the category tag and the separators between
   fields are never reported).
2. **Occlusion**: each word is deleted and the text rescored, all in one batch (the ONNX graph when it
   is in use); a word's weight is how much its deletion lowers the logit margin the calibration maps to
   the score, as a share of the total drop. Long texts (more than 24 words) first pick their 24
   candidate words by **gradient × input** on the token embeddings (one PyTorch forward and backward
   pass, ``(∂margin/∂e) · e`` summed over each word's characters).

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


def char_attributions(model: Any, text: str) -> tuple[np.ndarray, float]:
    """Gradient × input per character of ``text`` (already cut to what the model reads), and the margin.

    Needs gradients, so PyTorch: imported here, and ``model.model`` loads the weights if the model
    scores with its ONNX graph (only texts of more than ``max_occluded`` words get here)."""
    import torch

    tok = model.tokenizer
    if model.calibration.fold:
        from .textfold import fold

        text = fold(text)  # one character to one: offsets stay those of the original
    enc = tok(
        [text],
        truncation=True,
        max_length=model.max_chars + 2,
        return_offsets_mapping=True,
        return_tensors="pt",
    )
    net = model.model
    emb_layer = net.get_input_embeddings()
    pos_idx = model.calibration.positive_index
    with torch.enable_grad():
        emb = emb_layer(enc["input_ids"]).detach().requires_grad_(True)
        logits = net(inputs_embeds=emb, attention_mask=enc["attention_mask"]).logits.float()
        if logits.shape[-1] == 1:
            margin = logits[0, 0]
        else:
            others = torch.cat([logits[0, :pos_idx], logits[0, pos_idx + 1 :]])
            margin = logits[0, pos_idx] - torch.logsumexp(others, dim=0)
        (grad,) = torch.autograd.grad(margin, emb)
    tok_attr = (grad * emb).sum(-1)[0].detach().numpy()
    chars = np.zeros(len(text), dtype=np.float64)
    for (s, e), a in zip(enc["offset_mapping"][0].tolist(), tok_attr, strict=True):
        if e > s:  # special tokens have (0, 0)
            chars[s:e] += a / (e - s)
    return chars, float(margin.detach())


def explain_fields(
    model: Any,
    fields: Sequence[tuple[str, str]],
    category: str | None = None,
    top_k: int = 5,
    max_occluded: int = 24,
) -> list[Span]:
    """The words of ``fields`` ((name, text) pairs, as ``Listing.text_fields()``) that drove the score.

    Candidates are every word when the text has at most ``max_occluded`` words, else the
    ``max_occluded`` words with the largest gradient × input. Each candidate is deleted and the text
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
    if len(words) > max_occluded:
        chars, _ = char_attributions(model, text)
        ranked = sorted(words, key=lambda w: -float(chars[w[2] : w[3]].sum()))
        words = sorted(ranked[:max_occluded], key=lambda w: w[2])
    margins = model.margins(
        [text] + [text[:ts] + text[te:] for _, _, ts, te in words], batch_size=len(words) + 1
    )
    base, without = float(margins[0]), margins[1:]
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
