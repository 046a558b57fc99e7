"""`moderation check` as the contract describes it: TEXT in human form, JSON Lines streamed in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from moderation.cli import main


def _run(args: list[str], stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, args, input=stdin)
    return result.exit_code, result.output


@pytest.mark.slow
def test_check_text_highlights_findings() -> None:
    code, out = _run(["check", "--no-classifier", "全网最好的保温杯"])
    assert code == 0
    assert "absolute." in out
    assert "广告法第九条第三项" in out
    assert "block" in out


@pytest.mark.slow
def test_check_text_lawful() -> None:
    code, out = _run(["check", "--no-classifier", "第一次购买有优惠，最近上新"])
    assert code == 0
    assert "pass" in out


@pytest.mark.slow
def test_check_input_streams_one_result_per_line_in_order(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "title": "销量第一 國家級工艺"}, ensure_ascii=False),
        "{not json",
        "",
        json.dumps({"id": "b", "title": "保温杯", "category": "pets"}),
        json.dumps({"id": "c", "title": ""}),
        json.dumps({"title": "没有编号"}, ensure_ascii=False),
        json.dumps(
            {"id": "d", "title": "第一次用，很满意", "description": "优质面料。" * 200_000},
            ensure_ascii=False,
        ),
        json.dumps({"id": "e", "title": "ＮＯ．１ 人气面膜 🔥", "category": "cosmetics"}, ensure_ascii=False),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out = _run(["check", "--no-classifier", "--input", str(path)])
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r.get("id") for r in results] == ["a", None, "b", "c", None, "d", "e"]
    assert results[0]["verdict"] == "block"
    assert {f["text"] for f in results[0]["findings"]} == {"销量第一", "國家級"}
    assert results[1]["error"]["code"] == "malformed_json" and results[1]["line"] == 2
    assert results[2]["error"]["code"] == "unknown_category"
    assert results[3]["error"]["code"] == "empty_text"
    assert results[4]["error"]["code"] == "missing_id"
    assert results[5]["verdict"] == "pass"  # 1 MB description is checked, not refused
    assert results[6]["findings"][0]["text"] == "ＮＯ．１"


@pytest.mark.slow
def test_check_input_from_stdin() -> None:
    code, out = _run(
        ["check", "--no-classifier", "--input", "-"], stdin='{"id": "x", "title": "顶级牛皮钱包"}\n'
    )
    assert code == 0
    assert json.loads(out)["findings"][0]["rule"] == "absolute.national_level"


def test_usage_error_without_text_or_input() -> None:
    code, _ = _run(["check"])
    assert code == 2


@pytest.mark.slow
def test_rules_check_passes_on_the_shipped_packs() -> None:
    code, out = _run(["rules", "check"])
    assert code == 0, out
    assert "0 failing" in out


def test_rules_check_names_file_and_line_of_a_bad_pack(tmp_path: Path) -> None:
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "broken.yaml").write_text(
        "family: broken\nrules:\n  - id: broken.one\n    severity: high\n    terms: [x]\n"
        "    message: m\n    examples: {fire: [x], pass: [y]}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["rules", "check", "--dir", str(tmp_path)])
    assert result.exit_code == 2  # one line, no traceback (issue 17)
    assert "broken.yaml:3" in result.stderr and "Traceback" not in result.output
    assert "law" in result.stderr
