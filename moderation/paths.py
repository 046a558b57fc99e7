"""Where the data that stays out of code lives: rule packs, lexicons, the shipped models.

The package is installed editable from the repository, so data is found next to the package; the
environment (``MODERATION_RULES_DIR``, ``MODERATION_MODELS_DIR``, ``MODERATION_MODEL_DIR``, read by
``moderation.settings``) lets a deployment point at its own copies without code changes.
"""

from __future__ import annotations

from pathlib import Path

from moderation.settings import settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def rules_dir() -> Path:
    """The folder holding ``packs/``, ``lexicons/`` and ``policy.yaml``."""
    return Path(settings().rules_dir or REPO_ROOT / "rules")


def lexicon_path(name: str) -> Path:
    return rules_dir() / "lexicons" / name


def models_dir() -> Path:
    return Path(settings().models_dir or REPO_ROOT / "models")


def model_dir() -> Path:
    """The risk classifier a ``Checker`` loads by default, and the one the audit fingerprints:
    ``MODERATION_MODEL_DIR``, else ``risk-classifier`` in ``models_dir()``."""
    return Path(settings().model_dir or models_dir() / "risk-classifier")
