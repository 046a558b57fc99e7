"""Audit input formats (JSON Lines, CSV, Parquet, a folder), batch planning, and bad rows.

Every bad row must come out as a row with its error code and line number, and never stop the run.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pyarrow.parquet as pq
import pytest
from _audit_data import BAD_EXPECTED, GOOD, N_ROWS, write_csv, write_jsonl, write_parquet
from click.testing import CliRunner

from moderation.audit import AuditOptions, run_audit
from moderation.audit.cli import audit
from moderation.audit.readers import discover, iter_all, plan_batches, read_batch
from moderation.audit.writers import read_table


def _opts(inp: Path, out: Path, **kw: object) -> AuditOptions:
    base: dict[str, object] = {"workers": 1, "classifier": False, "progress": False, "batch_size": 5}
    base.update(kw)
    return AuditOptions(input=inp, out=out, **base)  # type: ignore[arg-type]


def _finding_keys(out: Path) -> set[tuple[str, str, str, int, int]]:
    t = read_table(out, "findings", columns=["id", "rule", "field", "start", "end"]).to_pylist()
    return {(r["id"], r["rule"], r["field"], r["start"], r["end"]) for r in t}


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_planned_batches_read_back_the_whole_file(tmp_path: Path, fmt: str) -> None:
    # Reading batch by batch from planned offsets gives exactly the records of a sequential read.
    writer = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}[fmt]
    path = writer(tmp_path / f"cat.{fmt}")
    files = discover(path)
    whole = list(iter_all(files, path))
    for size in (1, 4, 7, 100):
        specs = list(plan_batches(files, path, size))
        got = [(r.line, r.payload, r.error) for spec in specs for r in read_batch(spec).records]
        assert got == [(r.line, r.payload, r.error) for r in whole]
        assert [s.batch_id for s in specs] == list(range(len(specs)))


def test_csv_record_spanning_lines_keeps_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text(
        'id,title,description\na,保温杯,"第一行\n第二行"\nb,国家级保温杯,正常\nc,多余字段,x,y,z\n',
        encoding="utf-8",
    )
    recs = list(iter_all([path], path))
    assert [(r.line, r.error) for r in recs] == [(2, None), (4, None), (5, "malformed_csv")]
    specs = list(plan_batches([path], path, 1))
    assert [s.first_line for s in specs] == [2, 4, 5]
    assert "国家级" in str(read_batch(specs[1]).records[0].payload)


@pytest.mark.slow
def test_jsonl_bad_rows_reported_with_line_numbers(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "cat.jsonl")
    out = tmp_path / "out"
    result = run_audit(_opts(inp, out, image_db=str(tmp_path / "empty-image-db")))
    assert result.listings == N_ROWS
    rows = read_table(out, "listings").to_pylist()
    assert len(rows) == N_ROWS
    errors = {r["line"]: r["error_code"] for r in rows if r["error_code"]}
    assert errors == BAD_EXPECTED
    for r in rows:
        if r["error_code"]:
            assert r["error_message"].startswith(f"line {r['line']}:"), r
            assert r["verdict"] is None
    by_id = {r["id"]: r for r in rows if r["id"]}
    # the broken image path is reported on the listing and in images/, and the text is still checked
    img = by_id["sku-img"]
    assert img["error_code"] is None and img["verdict"] == "pass"
    assert img["n_images"] == 1 and img["image_errors"] == 1
    images = read_table(out, "images").to_pylist()
    assert [(i["id"], i["image"]) for i in images] == [("sku-img", "/nonexistent/photos/cup.jpg")]
    assert images[0]["error_code"]
    # an integer id is read as text; the pets row keeps its id next to its error
    assert by_id["17"]["verdict"] == "pass"
    assert by_id["sku-pets"]["error_code"] == "unknown_category"
    # violations found with the law and span of what the seller typed
    f = [r for r in read_table(out, "findings").to_pylist() if r["id"] == "sku-001"]
    rules = {r["rule"] for r in f}
    assert {"absolute.sales_ranking", "absolute.national_level"} <= rules
    for r in f:
        title = GOOD[0]["title"]
        assert title[r["start"] : r["end"]] == r["text"]
    assert by_id["sku-001"]["verdict"] == "block"
    assert by_id["sku-005"]["verdict"] == "pass"  # 最高承重150kg is not a superlative claim
    assert by_id["sku-003"]["listing"] is not None and by_id["sku-005"]["listing"] is None


@pytest.mark.slow
def test_csv_and_parquet_give_the_same_findings_as_jsonl(tmp_path: Path) -> None:
    outs = {}
    for fmt, writer in (("jsonl", write_jsonl), ("csv", write_csv), ("parquet", write_parquet)):
        inp = (
            writer(tmp_path / f"cat.{fmt}", GOOD)
            if fmt != "jsonl"
            else write_jsonl(tmp_path / "cat.jsonl", bad=False)
        )
        outs[fmt] = tmp_path / f"out-{fmt}"
        run_audit(_opts(inp, outs[fmt]))
    keys = _finding_keys(outs["jsonl"])
    assert len(keys) > 20
    assert _finding_keys(outs["csv"]) == keys
    assert _finding_keys(outs["parquet"]) == keys
    attrs = [r for r in read_table(outs["parquet"], "listings").to_pylist() if r["id"] == "sku-013"]
    assert attrs[0]["error_code"] is None


@pytest.mark.slow
def test_folder_of_mixed_files(tmp_path: Path) -> None:
    folder = tmp_path / "catalogue"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "a.jsonl")
    write_csv(folder / "b.csv", GOOD[:6])
    write_parquet(folder / "sub" / "c.parquet", GOOD[6:])
    (folder / "notes.txt").write_text("不是商品文件", encoding="utf-8")
    out = tmp_path / "out"
    result = run_audit(_opts(folder, out, batch_size=4))
    assert result.listings == N_ROWS + len(GOOD)
    rows = read_table(out, "listings").to_pylist()
    sources = {r["source"] for r in rows}
    assert sources == {"a.jsonl", "b.csv", "sub/c.parquet"}
    assert len({(r["source"], r["line"]) for r in rows}) == len(rows)
    # a batch never spans files
    for part in sorted((out / "listings").glob("part-*.parquet")):
        assert len(set(pq.read_table(part, columns=["source"]).column("source").to_pylist())) == 1


@pytest.mark.slow
def test_cli_short_form_with_jsonl_output(tmp_path: Path) -> None:
    inp = write_jsonl(tmp_path / "cat.jsonl")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        audit,
        [
            str(inp),
            "--out",
            str(out),
            "--no-classifier",
            "--workers",
            "1",
            "--quiet",
            "--jsonl",
            "--batch-size",
            "6",
        ],
    )
    assert res.exit_code == 0, res.output
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == N_ROWS
    results = [json.loads(x) for x in lines]
    assert [r["line"] for r in results] == list(range(1, N_ROWS + 1))
    assert results[18]["error"]["code"] == "malformed_json"
    assert results[0]["verdict"] == "block" and any(
        f["law"].startswith("广告法") for f in results[0]["findings"]
    )
    assert not (out / "results-parts").exists()
    assert (out / "report.html").exists() and (out / "summary.json").exists()


@pytest.mark.slow
def test_registered_under_the_main_group_and_output_inside_input_folder(tmp_path: Path) -> None:
    # The lead registers `audit` in moderation.cli's lazy table; the same group object is what runs.
    group = click.Group(commands={"audit": audit})
    folder = tmp_path / "catalogue"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", GOOD[:5], bad=False)
    out = folder / "audit-out"  # inside the input folder: its parts must not be read as input
    for _ in range(2):
        res = CliRunner().invoke(
            group, ["audit", str(folder), "--out", str(out), "--no-classifier", "--workers", "1", "--quiet"]
        )
        assert res.exit_code == 0, res.output
    assert read_table(out, "listings").num_rows == 5
    res = CliRunner().invoke(group, ["audit", "--help"])
    assert res.exit_code == 0 and "diff" in res.output and "report" in res.output


@pytest.mark.slow
def test_classifier_scores_are_batched_into_the_rows(tmp_path: Path) -> None:
    from moderation.paths import models_dir

    if not (models_dir() / "risk-classifier" / "config.json").exists():
        pytest.skip("no shipped classifier in models/risk-classifier")
    inp = write_jsonl(tmp_path / "cat.jsonl")
    out = tmp_path / "out"
    run_audit(_opts(inp, out, classifier=True, classifier_batch=4))
    rows = read_table(out, "listings").to_pylist()
    checked = [r for r in rows if r["error_code"] is None]
    assert checked and all(r["classifier_model"] and 0.0 <= r["classifier_score"] <= 1.0 for r in checked)
    assert all(r["classifier_score"] is None for r in rows if r["error_code"] is not None)
