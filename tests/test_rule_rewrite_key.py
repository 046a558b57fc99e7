"""The optional ``rewrite`` key of a rule pack: loaded as data, refused when malformed (issue 17)."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation.rules.pack import RulePackError, load_pack

PACK = """family: demo
name: 演示
law: 广告法第九条第三项
severity: high
rules:
  - id: demo.rule
    terms: [顶级]
    message: "“{{text}}”是绝对化用语。"
{rewrite}
    examples:
      fire: [顶级红茶]
      pass: [红茶]
"""


def _load(tmp_path: Path, rewrite: str) -> object:
    path = tmp_path / "demo.yaml"
    path.write_text(PACK.format(rewrite=rewrite), encoding="utf-8")
    return load_pack(path).rules[0].rewrite


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("    rewrite: drop", ("drop", "")),
        ("    rewrite: keep_modified", ("keep_modified", "")),
        ("    rewrite: {replace: 优质}", ("replace", "优质")),
    ],
)
def test_rewrite_values(tmp_path: Path, text: str, expected: object) -> None:
    assert _load(tmp_path, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "    rewrite: delete",
        "    rewrite: {replace: ''}",
        "    rewrite: {replace: 优质, also: 1}",
        "    rewrite: [drop]",
    ],
)
def test_bad_rewrite_is_refused_with_file_and_rule(tmp_path: Path, text: str) -> None:
    with pytest.raises(RulePackError, match=r"demo\.yaml:\d+: rule demo\.rule: rewrite"):
        _load(tmp_path, text)
