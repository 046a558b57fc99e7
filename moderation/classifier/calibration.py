"""Turning the model's logit margin into a probability, and measuring how well that worked.

Two methods are stored in calibration.json: ``platt`` (two parameters) and ``isotonic`` (a monotone
piecewise-linear map from margin to probability, fitted by pool-adjacent-violators and interpolated
between block centres). Training fits both on the calibration split and keeps the one with the lower
2-fold cross-validated ECE there (`choose_calibration`).

Platt scaling (p = sigmoid(a * margin + b)) is fitted on a held-out calibration split whose paraphrase
families were never trained on, so the probabilities reflect how the model does on new wording, not on
memorised phrases. Two parameters cannot overfit a few thousand examples, and they keep the ranking
unchanged (a > 0), so thresholds chosen on scores stay meaningful.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .config import CALIBRATION_FILE


@dataclass
class Calibration:
    """Parameters stored as calibration.json next to the model weights."""

    method: str = "platt"
    a: float = 1.0
    b: float = 0.0
    model: str = ""
    positive_index: int = 1
    max_chars: int = 256
    info: dict[str, object] = field(default_factory=dict)
    #: isotonic only: knots (margin, probability), increasing in both.
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    #: Character folding the model was trained with ("t2s": see textfold.py; "" none).
    fold: str = ""
    #: The entity list the model was trained with, a file in its directory ("" none: see entities.py).
    entities: str = ""

    def apply(self, margins: np.ndarray) -> np.ndarray:
        """Probabilities from logit margins (logit[positive] - logit[other])."""
        m = np.asarray(margins, dtype=np.float64)
        if self.method == "isotonic":
            # A 1e-6 * sigmoid(margin) tie-breaker keeps the ranking of the margins beyond the end knots.
            p = np.interp(m, np.asarray(self.xs), np.asarray(self.ys))
            clipped: np.ndarray = np.clip(p + 1e-6 * (1.0 / (1.0 + np.exp(-m)) - 0.5), 0.0, 1.0)
            return clipped
        z = self.a * m + self.b
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / CALIBRATION_FILE
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> Calibration | None:
        """The stored calibration, or None when the directory has none (an uncalibrated checkpoint)."""
        path = Path(model_dir) / CALIBRATION_FILE
        if not path.exists():
            return None
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("method") not in ("platt", "isotonic"):
            raise ValueError(f"{path}: unsupported calibration method {d.get('method')!r}")
        if d["method"] == "isotonic" and (len(d.get("xs", [])) < 2 or len(d["xs"]) != len(d.get("ys", []))):
            raise ValueError(f"{path}: isotonic calibration needs matching xs/ys knots")
        keys = (
            "method",
            "a",
            "b",
            "model",
            "positive_index",
            "max_chars",
            "info",
            "xs",
            "ys",
            "fold",
            "entities",
        )
        return cls(**{k: d[k] for k in keys if k in d})


def fit_platt(margins: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> tuple[float, float]:
    """Fit (a, b) by minimising log loss with L-BFGS; labels use Platt's smoothed targets.

    Imports torch here (training only): applying a calibration needs numpy alone."""
    import torch

    y = labels.astype(np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    # Platt's target smoothing keeps the fit finite when the classes are perfectly separated.
    t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = torch.tensor(margins, dtype=torch.float64)
    tt = torch.tensor(t, dtype=torch.float64)
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([params], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = params[0] * x + params[1]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, tt)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = (float(v) for v in params.detach())
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0:
        raise ValueError(f"Platt fit failed (a={a}, b={b}); is the calibration split degenerate?")
    return a, b


def fit_isotonic(
    margins: np.ndarray, labels: np.ndarray, min_block: int = 20
) -> tuple[list[float], list[float]]:
    """Pool-adjacent-violators on (margin, label); returns knots (mean margin, rate) per block.

    Blocks are first made of ``min_block`` consecutive sorted examples, so a knot never rests on a
    handful of points; interpolating between knots gives a continuous, increasing map.
    """
    order = np.argsort(margins, kind="stable")
    x = np.asarray(margins, dtype=np.float64)[order]
    y = np.asarray(labels, dtype=np.float64)[order]
    blocks: list[list[float]] = []  # [sum_x, sum_y, n]
    for s in range(0, len(x), min_block):
        blocks.append(
            [
                float(x[s : s + min_block].sum()),
                float(y[s : s + min_block].sum()),
                float(len(x[s : s + min_block])),
            ]
        )
    merged: list[list[float]] = []
    for b in blocks:
        merged.append(b)
        while len(merged) > 1 and merged[-2][1] / merged[-2][2] >= merged[-1][1] / merged[-1][2]:
            last = merged.pop()
            for i in range(3):
                merged[-1][i] += last[i]
    xs = [b[0] / b[2] for b in merged]
    ys = [min(1 - 1e-4, max(1e-4, b[1] / b[2])) for b in merged]
    if len(xs) == 1:
        xs, ys = [xs[0] - 1.0, xs[0] + 1.0], [ys[0], ys[0]]
    return xs, ys


def choose_calibration(
    margins: np.ndarray, labels: np.ndarray, seed: int = 0
) -> tuple[Calibration, dict[str, float]]:
    """Platt or isotonic, whichever has the lower 2-fold cross-validated ECE on this (calibration) data.

    Returns the winner refitted on all of it, and the cross-validated ECE of both.
    """
    margins = np.asarray(margins, dtype=np.float64)
    labels = np.asarray(labels)
    idx = np.random.default_rng(seed).permutation(len(margins))
    folds = [idx[: len(idx) // 2], idx[len(idx) // 2 :]]
    cv: dict[str, list[float]] = {"platt": [], "isotonic": []}
    for k in range(2):
        fit, ev = folds[k], folds[1 - k]
        a, b = fit_platt(margins[fit], labels[fit])
        cv["platt"].append(expected_calibration_error(Calibration(a=a, b=b).apply(margins[ev]), labels[ev]))
        xs, ys = fit_isotonic(margins[fit], labels[fit])
        iso = Calibration(method="isotonic", xs=xs, ys=ys)
        cv["isotonic"].append(expected_calibration_error(iso.apply(margins[ev]), labels[ev]))
    scores = {f"cv_ece_{k}": float(np.mean(v)) for k, v in cv.items()}
    a, b = fit_platt(margins, labels)
    if scores["cv_ece_isotonic"] < scores["cv_ece_platt"]:
        xs, ys = fit_isotonic(margins, labels)
        return Calibration(method="isotonic", a=a, b=b, xs=xs, ys=ys), scores
    return Calibration(method="platt", a=a, b=b), scores


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE with equal-width bins: the weighted mean gap between confidence and accuracy of P(risky)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if len(probs) == 0:
        return float("nan")
    bins = np.minimum((probs * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for k in range(n_bins):
        m = bins == k
        if m.any():
            ece += m.mean() * abs(probs[m].mean() - labels[m].mean())
    return float(ece)


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per non-empty bin, for the reliability plot."""
    bins = np.minimum((np.asarray(probs) * n_bins).astype(int), n_bins - 1)
    out = []
    for k in range(n_bins):
        m = bins == k
        if m.any():
            out.append((float(np.mean(probs[m])), float(np.mean(labels[m])), int(m.sum())))
    return out
