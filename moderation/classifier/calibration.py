"""Turning the model's logit margin into a probability, and measuring how well that worked.

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
import torch

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

    def apply(self, margins: np.ndarray) -> np.ndarray:
        """Probabilities from logit margins (logit[positive] - logit[other])."""
        z = self.a * margins.astype(np.float64) + self.b
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
        if d.get("method") != "platt":
            raise ValueError(f"{path}: unsupported calibration method {d.get('method')!r}")
        known = {k: d[k] for k in ("method", "a", "b", "model", "positive_index", "max_chars", "info") if k in d}
        return cls(**known)


def fit_platt(margins: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> tuple[float, float]:
    """Fit (a, b) by minimising log loss with L-BFGS; labels use Platt's smoothed targets."""
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


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per non-empty bin, for the reliability plot."""
    bins = np.minimum((np.asarray(probs) * n_bins).astype(int), n_bins - 1)
    out = []
    for k in range(n_bins):
        m = bins == k
        if m.any():
            out.append((float(np.mean(probs[m])), float(np.mean(labels[m])), int(m.sum())))
    return out
