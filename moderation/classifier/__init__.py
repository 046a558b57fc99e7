"""Char-level Chinese risk classifier: scores listings so the review queue can sort by risk and so that
paraphrased violations no rule names ("三天见效", "躺赚") still surface.

The checker uses only :func:`load_model` and :meth:`RiskModel.score_texts`; training, calibration and
evaluation live in the submodules and are driven by scripts/ and the ``train`` / ``eval`` commands.
"""

from __future__ import annotations

from .config import CATEGORY_ZH, ENV_MODEL_DIR, MAX_CHARS, default_model_dir, listing_text
from .errors import ModelLoadError
from .predict import RiskModel, load_model

__all__ = [
    "CATEGORY_ZH",
    "ENV_MODEL_DIR",
    "MAX_CHARS",
    "ModelLoadError",
    "RiskModel",
    "default_model_dir",
    "listing_text",
    "load_model",
]
