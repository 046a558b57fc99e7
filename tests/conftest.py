"""Shared fixtures: one rules engine per test session (loading jieba is the slow part)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Password hashes in tests: the cheapest argon2id parameters (the server's default stays strong);
# CLI commands run as subprocesses inherit it.
os.environ.setdefault("MODERATION_PASSWORD_HASHING", "cheap")

from moderation.checker import Checker
from moderation.rules.engine import RulesEngine

#: argon2 memory (KiB) above which a hash in a test counts as production cost ("cheap" uses 8 KiB).
_TEST_HASH_MAX_KIB = 1024


@pytest.fixture(scope="session", autouse=True)
def _no_production_cost_password_hashes() -> Iterator[None]:
    """Fail a test that hashes a password at production cost (64 MiB and three passes per hash, paid
    for every user a fixture creates). Build apps and ``Accounts`` with
    ``Settings(password_hashing="cheap")`` or ``Settings.from_env()``, which is cheap under pytest."""
    from argon2 import PasswordHasher

    real_hash = PasswordHasher.hash

    def guarded(self: PasswordHasher, password: str | bytes, *, salt: bytes | None = None) -> str:
        if self.memory_cost > _TEST_HASH_MAX_KIB:
            raise AssertionError(
                f"a password hashed at production cost ({self.memory_cost} KiB) in a test; "
                "use Settings(password_hashing='cheap')"
            )
        return real_hash(self, password, salt=salt)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PasswordHasher, "hash", guarded)
        yield


@pytest.fixture(scope="session")
def engine() -> RulesEngine:
    return RulesEngine.load()


@pytest.fixture(scope="session")
def rules_checker(engine: RulesEngine) -> Checker:
    """A checker without the classifier, so rule tests do not depend on the model."""
    return Checker(engine, classifier=False)
