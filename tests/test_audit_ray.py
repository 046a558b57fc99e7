"""``--engine ray``: the same per-batch function as Ray Data ``map_batches`` on actors, on a local Ray
instance, gives exactly the rows of the local engine (bad rows included)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
from _audit_data import freeze_rules, write_jsonl

from moderation.audit import AuditOptions, run_audit
from moderation.audit.writers import read_table

ray = pytest.importorskip("ray")
# Ray Data reads its own deprecated settings when it copies the context to workers; not ours to fix.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _sorted(t: pa.Table) -> pa.Table:
    keys = [("source", "ascending"), ("line", "ascending")]
    if "rule" in t.column_names:
        keys += [("field", "ascending"), ("start", "ascending"), ("rule", "ascending")]
    return t.sort_by(keys)


def test_ray_engine_matches_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODERATION_RULES_DIR", str(freeze_rules(tmp_path)))
    inp = write_jsonl(tmp_path / "cat.jsonl")
    common = {
        "input": inp,
        "classifier": False,
        "progress": False,
        "batch_size": 4,
        "jsonl": True,
        "image_db": str(tmp_path / "no-images"),
    }
    local = tmp_path / "local"
    run_audit(AuditOptions(out=local, workers=1, **common))  # type: ignore[arg-type]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"MODERATION_RULES_DIR": os.environ["MODERATION_RULES_DIR"]}},
    )
    try:
        remote = tmp_path / "ray"
        result = run_audit(AuditOptions(out=remote, workers=2, engine="ray", **common))  # type: ignore[arg-type]
    finally:
        ray.shutdown()
    assert result.batches_run == result.batches == 6
    for name in ("listings", "findings", "images"):
        a, b = _sorted(read_table(local, name)), _sorted(read_table(remote, name))
        assert a.num_rows == b.num_rows > 0, name
        assert a.equals(b), name
    assert (local / "results.jsonl").read_bytes() == (remote / "results.jsonl").read_bytes()
    assert (remote / "report.html").exists()
