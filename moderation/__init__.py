"""Listing-compliance moderation for Chinese e-commerce.

``moderation.check(listing)`` and ``moderation.check_many(listings)`` are the Python API; see README.md.
"""

from __future__ import annotations

from typing import Any

from moderation import native

# Before any compiled module is imported: a build older than its source is removed, never run.
native.guard()

__version__ = "0.1.0"
__all__ = ["__version__", "check", "check_many"]


def check(listing: Any) -> Any:
    """Check one listing (dict or ``moderation.schema.Listing``) → ``CheckResult``."""
    from moderation.checker import check as _check

    return _check(listing)


def check_many(listings: Any) -> Any:
    """Check listings in order → list of ``CheckResult``."""
    from moderation.checker import check_many as _check_many

    return _check_many(listings)
