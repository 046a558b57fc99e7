"""HTTP API and reviewer console: ``create_app(database_url=None, checker=None)``.

``create_app`` is imported on first use, so ``moderation serve --help`` and ``moderation users …`` do
not pay for FastAPI and SQLAlchemy before they need them."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from moderation.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
