"""Resumability: a real audit process killed with SIGKILL mid-run, rerun with the same command, gives
exactly the output of an uninterrupted run: no listing missing, none duplicated."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest
from _audit_data import BAD_JSONL_LINES, GOOD, freeze_rules

from moderation.audit import AuditError, AuditOptions, run_audit
from moderation.audit.checkpoint import Manifest
from moderation.audit.runner import OUTPUT_VERSION
from moderation.audit.writers import read_table

pytestmark = pytest.mark.slow  # an audit killed and resumed in subprocesses

N = 4_000
BATCH = 50


def _catalogue(path: Path) -> Path:
    lines = []
    for i in range(N):
        if i % 1000 == 999:
            lines.append(BAD_JSONL_LINES[(i // 1000) % len(BAD_JSONL_LINES)])
            continue
        base = GOOD[i % len(GOOD)]
        row = {
            **base,
            "id": f"sku-{i:06d}",
            "title": f"{base['title']} {i % 97}号款",
            "seller_id": f"s-{i % 113:03d}",
        }
        lines.append(json.dumps(row, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cmd(inp: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "moderation.audit.cli",
        str(inp),
        "--out",
        str(out),
        "--no-classifier",
        "--workers",
        "2",
        "--batch-size",
        str(BATCH),
        "--quiet",
        "--jsonl",
        *extra,
    ]


def _done(out: Path) -> int:
    try:
        with sqlite3.connect(out / "manifest.sqlite", timeout=1) as db:
            return int(db.execute("SELECT COUNT(*) FROM batches").fetchone()[0])
    except sqlite3.Error:
        return 0


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by(
        [
            ("source", "ascending"),
            ("line", "ascending"),
            *(
                [("field", "ascending"), ("start", "ascending"), ("rule", "ascending")]
                if "rule" in t.column_names
                else []
            ),
        ]
    )


def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODERATION_RULES_DIR", str(freeze_rules(tmp_path)))  # inherited by the subprocesses
    inp = _catalogue(tmp_path / "catalogue.jsonl")
    out = tmp_path / "killed"
    n_batches = -(-N // BATCH)
    proc = subprocess.Popen(
        _cmd(inp, out), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while _done(out) < 6:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the audit made no progress"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its workers, mid-run
    proc.wait(timeout=30)
    killed_at = _done(out)
    assert 0 < killed_at < n_batches, "the kill must land mid-run"
    assert not (out / "report.html").exists()

    rerun = subprocess.run(_cmd(inp, out), capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed" in rerun.stderr
    assert _done(out) == n_batches

    clean = tmp_path / "clean"
    run_audit(
        AuditOptions(
            input=inp, out=clean, workers=1, classifier=False, batch_size=BATCH, jsonl=True, progress=False
        )
    )
    for name in ("listings", "findings"):
        a, b = _sorted(read_table(out, name)), _sorted(read_table(clean, name))
        assert a.num_rows == b.num_rows
        assert a.equals(b), name
    listings = read_table(out, "listings")
    assert listings.num_rows == N
    keys = set(zip(listings.column("source").to_pylist(), listings.column("line").to_pylist(), strict=True))
    assert len(keys) == N  # none duplicated
    assert (out / "results.jsonl").read_bytes() == (clean / "results.jsonl").read_bytes()
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    bad_kinds = [(i // 1000) % len(BAD_JSONL_LINES) for i in range(999, N, 1000)]
    n_errors = sum(
        1 for k in bad_kinds if k != len(BAD_JSONL_LINES) - 1
    )  # the last kind is a bad image, checked
    assert summary["totals"]["listings"] == N and summary["totals"]["errors"] == n_errors


def test_resume_refuses_other_settings_and_restart_starts_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_RULES_DIR", str(freeze_rules(tmp_path)))
    inp = tmp_path / "cat.jsonl"
    inp.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in GOOD) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    base = {"input": inp, "out": out, "workers": 1, "classifier": False, "progress": False}
    first = run_audit(AuditOptions(batch_size=5, **base))  # type: ignore[arg-type]
    assert first.batches_run == first.batches
    again = run_audit(AuditOptions(batch_size=5, **base))  # type: ignore[arg-type]
    assert again.batches_run == 0 and again.listings == len(GOOD)
    with pytest.raises(AuditError, match="batch_size"):
        run_audit(AuditOptions(batch_size=7, **base))  # type: ignore[arg-type]
    manifest = Manifest(out)  # a checkpoint written in an older output format is refused, saying so
    manifest.set("fingerprint", {**manifest.get("fingerprint"), "version": OUTPUT_VERSION - 1})
    manifest.close()
    with pytest.raises(AuditError, match=f"output format {OUTPUT_VERSION - 1}"):
        run_audit(AuditOptions(batch_size=5, **base))  # type: ignore[arg-type]
    restarted = run_audit(AuditOptions(batch_size=7, resume=False, **base))  # type: ignore[arg-type]
    assert restarted.batches_run == restarted.batches == 3
    assert read_table(out, "listings").num_rows == len(GOOD)
