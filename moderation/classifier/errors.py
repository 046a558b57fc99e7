"""Errors raised by the classifier package."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """The model directory is missing, incomplete or unreadable.

    Raised instead of the many exception types transformers and safetensors use, so that the checker
    and the CLI can report one clear message (which directory, what is wrong) and keep running the rules.
    """
