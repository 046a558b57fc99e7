"""Where the data that stays out of code lives: rule packs, lexicons, the shipped model.

The package is installed editable from the repository, so data is found next to the package; the
environment variables let a deployment point at its own copies without code changes.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def rules_dir() -> Path:
    """The folder holding ``packs/``, ``lexicons/`` and ``policy.yaml``."""
    return Path(os.environ.get("MODERATION_RULES_DIR", REPO_ROOT / "rules"))


def lexicon_path(name: str) -> Path:
    return rules_dir() / "lexicons" / name


def models_dir() -> Path:
    return Path(os.environ.get("MODERATION_MODELS_DIR", REPO_ROOT / "models"))
