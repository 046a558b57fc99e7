"""Shared fixtures: one rules engine per test session (loading jieba is the slow part)."""

from __future__ import annotations

import pytest

from moderation.checker import Checker
from moderation.rules.engine import RulesEngine


@pytest.fixture(scope="session")
def engine() -> RulesEngine:
    return RulesEngine.load()


@pytest.fixture(scope="session")
def rules_checker(engine: RulesEngine) -> Checker:
    """A checker without the classifier, so rule tests do not depend on the model."""
    return Checker(engine, classifier=False)
