"""HTTP API and reviewer console: ``create_app(database_url=None, checker=None)``."""

from __future__ import annotations

from moderation.api.app import create_app

__all__ = ["create_app"]
