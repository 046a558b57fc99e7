"""Compare two audits: which findings a rule change added or removed, which verdicts changed.

Findings are matched on (listing id, rule, field, start, end), listings on id, with Arrow joins over
the two output folders, so two million-row audits compare in seconds without Python sets of tuples.
Written as ``diff.json`` and ``diff.html`` (self-contained, Chinese labels) next to the new audit.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from moderation.audit.report import _CSS, _bars, _counts, _e, family_names
from moderation.audit.writers import read_table
from moderation.schema import VERDICT_LABELS

FINDING_KEY = ["id", "rule", "field", "start", "end"]
#: The verdict of a listing absent from one of the audits.
NONE = "none"
_VERDICT_LABEL = {**VERDICT_LABELS, "error": "无法检查", NONE: "(无)"}
SAMPLES = 200


def _findings(out_dir: Path) -> pa.Table:
    t = read_table(
        out_dir, "findings", columns=[*FINDING_KEY, "family", "law", "severity", "text", "seller_id"]
    )
    return t.filter(pc.is_valid(t.column("id")))


def _listings(out_dir: Path) -> pa.Table:
    """id, verdict (``error`` for a row that could not be checked), risk, title."""
    t = read_table(out_dir, "listings", columns=["id", "verdict", "risk", "title", "error_code"])
    t = t.filter(pc.is_valid(t.column("id")))
    verdict = pc.if_else(pc.is_valid(t.column("error_code")), pa.scalar("error"), t.column("verdict"))
    return pa.table(
        {
            "id": t.column("id"),
            "verdict": verdict,
            "risk": t.column("risk"),
            "title": t.column("title"),
            "present": pa.array([True] * t.num_rows),
        }
    )


def diff_audits(old_dir: Path, new_dir: Path) -> dict[str, Any]:
    """The differences between two finished audits (of the same or an updated catalogue)."""
    for d in (old_dir, new_dir):
        if not (d / "listings").is_dir():
            raise FileNotFoundError(f"{d}: not an audit output folder (no listings/)")
    old_f, new_f = _findings(old_dir), _findings(new_dir)
    added = new_f.join(old_f.select(FINDING_KEY), keys=FINDING_KEY, join_type="left anti")
    removed = old_f.join(new_f.select(FINDING_KEY), keys=FINDING_KEY, join_type="left anti")

    add_rules, rem_rules = Counter(_counts(added.column("rule"))), Counter(_counts(removed.column("rule")))
    rules = sorted(set(add_rules) | set(rem_rules), key=lambda r: (-(add_rules[r] + rem_rules[r]), r))
    family_of = {
        r: f
        for t in (added, removed)
        for r, f in zip(t.column("rule").to_pylist(), t.column("family").to_pylist(), strict=True)
    }

    old_l = _listings(old_dir).rename_columns(["id", "old_verdict", "old_risk", "old_title", "in_old"])
    new_l = _listings(new_dir).rename_columns(["id", "new_verdict", "new_risk", "title", "in_new"])
    both = new_l.join(old_l, keys="id", join_type="full outer", coalesce_keys=True)
    old_v = pc.fill_null(both.column("old_verdict"), NONE)
    new_v = pc.fill_null(both.column("new_verdict"), NONE)
    changed = both.filter(pc.not_equal(old_v, new_v))
    transitions = Counter(
        f"{o}→{n}"
        for o, n in zip(
            pc.fill_null(changed.column("old_verdict"), NONE).to_pylist(),
            pc.fill_null(changed.column("new_verdict"), NONE).to_pylist(),
            strict=True,
        )
    )
    only_old = pc.sum(pc.is_null(both.column("in_new"))).as_py() or 0
    only_new = pc.sum(pc.is_null(both.column("in_old"))).as_py() or 0
    names = family_names()
    for d in (new_dir, old_dir):  # the names each audit's own rules gave (a removed pack is still named)
        with contextlib.suppress(OSError, ValueError):
            names.update(json.loads((d / "summary.json").read_text(encoding="utf-8")).get("family_names", {}))
    sample_cols = ["id", "rule", "family", "law", "severity", "field", "start", "end", "text"]
    return {
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "old": str(old_dir),
        "new": str(new_dir),
        "findings": {
            "old": old_f.num_rows,
            "new": new_f.num_rows,
            "added": added.num_rows,
            "removed": removed.num_rows,
        },
        "listings": {
            "old": old_l.num_rows,
            "new": new_l.num_rows,
            "verdict_changed": changed.num_rows,
            "only_in_old": only_old,
            "only_in_new": only_new,
        },
        "by_rule": [
            {
                "rule": r,
                "family": family_of[r],
                "name": names.get(family_of[r], family_of[r]),
                "added": add_rules[r],
                "removed": rem_rules[r],
            }
            for r in rules
        ],
        "verdict_transitions": dict(transitions.most_common()),
        **{
            f"{name}_samples": t.sort_by([("id", "ascending"), ("start", "ascending")])
            .select(sample_cols)
            .slice(0, SAMPLES)
            .to_pylist()
            for name, t in (("added", added), ("removed", removed))
        },
        "verdict_changes": changed.sort_by([("id", "ascending")])
        .select(["id", "title", "old_verdict", "new_verdict", "old_risk", "new_risk"])
        .slice(0, SAMPLES)
        .to_pylist(),
    }


def render_diff_html(d: dict[str, Any]) -> str:
    f, li = d["findings"], d["listings"]
    out = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>审计对比</title>",
        f"<style>{_CSS}</style></head><body><h1>两次审计对比</h1>",
        f"<div class='muted'>旧：{_e(d['old'])} · 新：{_e(d['new'])} · 生成时间 {_e(d['generated_at'])}</div>",
        "<div class='cards'>",
        *(
            f"<div class='card'><b>{b}</b><span>{a}</span></div>"
            for a, b in [
                ("新增违规发现", f"+{f['added']:,}"),
                ("消失的违规发现", f"−{f['removed']:,}"),
                ("结论变化的商品", f"{li['verdict_changed']:,}"),
                ("旧审计发现", f"{f['old']:,}"),
                ("新审计发现", f"{f['new']:,}"),
                ("仅在新审计中的商品", f"{li['only_in_new']:,}"),
                ("仅在旧审计中的商品", f"{li['only_in_old']:,}"),
            ]
        ),
        "</div><h2>结论变化</h2>",
        _bars(
            [
                ("→".join(_VERDICT_LABEL.get(x, x) for x in k.split("→")), v)
                for k, v in d["verdict_transitions"].items()
            ],
            "#e67e22",
        ),
        "<h2>按规则：新增 / 消失</h2><table><tr><th>规则</th><th>类型</th><th>新增</th><th>消失</th></tr>",
    ]
    for r in d["by_rule"]:
        out.append(
            f"<tr><td><code>{_e(r['rule'])}</code></td><td>{_e(r['name'])}</td>"
            f"<td class='n'>+{r['added']:,}</td><td class='n'>−{r['removed']:,}</td></tr>"
        )
    out.append("</table>")
    for key, title in (
        ("added_samples", "新增的违规发现（示例）"),
        ("removed_samples", "消失的违规发现（示例）"),
    ):
        out.append(
            f"<h2>{title}</h2><table><tr><th>商品</th><th>规则</th><th>字段</th><th>位置</th><th>原文</th></tr>"
        )
        for r in d[key][:100]:
            out.append(
                f"<tr><td>{_e(r['id'])}</td><td><code>{_e(r['rule'])}</code></td><td>{_e(r['field'])}</td>"
                f"<td class='n'>{r['start']}–{r['end']}</td><td><mark>{_e(r['text'])}</mark></td></tr>"
            )
        out.append("</table>")
    out.append(
        "<h2>结论变化的商品（示例）</h2><table><tr><th>商品</th><th>标题</th><th>旧结论</th><th>新结论</th>"
        "<th>旧风险</th><th>新风险</th></tr>"
    )
    for r in d["verdict_changes"][:100]:

        def risk(x: Any) -> str:
            return "–" if x is None else f"{x:.2f}"

        out.append(
            f"<tr><td>{_e(r['id'])}</td><td>{_e((r['title'] or '')[:50])}</td>"
            f"<td>{_e(_VERDICT_LABEL.get(r['old_verdict'] or NONE, r['old_verdict']))}</td>"
            f"<td>{_e(_VERDICT_LABEL.get(r['new_verdict'] or NONE, r['new_verdict']))}</td>"
            f"<td class='n'>{risk(r['old_risk'])}</td><td class='n'>{risk(r['new_risk'])}</td></tr>"
        )
    out.append("</table></body></html>")
    return "\n".join(out)


def write_diff(old_dir: Path, new_dir: Path, out_dir: Path | None = None) -> dict[str, Any]:
    """Compute the diff and write ``diff.json`` and ``diff.html`` into ``out_dir`` (default: the new audit)."""
    d = diff_audits(old_dir, new_dir)
    target = out_dir or new_dir
    target.mkdir(parents=True, exist_ok=True)
    (target / "diff.json").write_text(
        json.dumps(d, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
    )
    (target / "diff.html").write_text(render_diff_html(d), encoding="utf-8")
    return d
