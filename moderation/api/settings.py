"""The server's settings are the package's one ``Settings`` (moderation/settings.py)."""

from moderation.settings import Settings

__all__ = ["Settings"]
