"""Bulk audit of a catalogue: streaming readers, one per-batch function, a local process pool or Ray
Data actors, a checkpoint manifest for resuming, Parquet/JSONL part files, an HTML report and a diff.

See docs/audit.md. ``run_audit(AuditOptions(input=..., out=...))`` is the Python entry point.
"""

from moderation.audit.runner import AuditError, AuditOptions, AuditResult, run_audit

__all__ = ["AuditError", "AuditOptions", "AuditResult", "run_audit"]
