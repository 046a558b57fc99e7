"""Bulk audit of a catalogue: streaming readers, one per-batch function, a local process pool or Ray
Data actors, a checkpoint manifest for resuming, Parquet/JSONL part files, an HTML report and a diff.

See docs/audit.md. ``run_audit(AuditOptions(input=..., out=...))`` is the Python entry point (imported
on first use: ``moderation audit --help`` does not load pyarrow).
"""

from __future__ import annotations

from typing import Any

__all__ = ["AuditError", "AuditOptions", "AuditResult", "run_audit"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from moderation.audit import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
