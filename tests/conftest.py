"""Shared fixtures: one rules engine per test session (loading jieba is the slow part)."""

from __future__ import annotations

import os

import pytest

# Password hashes in tests: the cheapest argon2id parameters (the server's default stays strong);
# CLI commands run as subprocesses inherit it.
os.environ.setdefault("MODERATION_PASSWORD_HASHING", "cheap")

from moderation.checker import Checker
from moderation.rules.engine import RulesEngine


@pytest.fixture(scope="session")
def engine() -> RulesEngine:
    return RulesEngine.load()


@pytest.fixture(scope="session")
def rules_checker(engine: RulesEngine) -> Checker:
    """A checker without the classifier, so rule tests do not depend on the model."""
    return Checker(engine, classifier=False)
