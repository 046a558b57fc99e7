"""``summary.json`` and ``report.html`` of a finished audit, aggregated part by part.

The aggregation streams over the part files with Arrow (only the columns it needs), so a report on a
million listings costs a few hundred megabytes at most. The HTML is one self-contained file for a
compliance manager: Chinese labels, bars drawn as HTML and inline SVG with text (the browser's own
fonts render the Chinese, no CJK font is needed on the server), no script, no CDN.
"""

from __future__ import annotations

import heapq
import html
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from moderation.audit.writers import part_files
from moderation.rules.masking import mask_contacts
from moderation.schema import CATEGORY_LABELS, SEVERITIES, SEVERITY_LABELS, VERDICT_LABELS

# -- labels a manager reads ------------------------------------------------------------------------

ERROR_ZH = {
    "malformed_json": "JSON 格式错误",
    "missing_id": "缺少商品编号",
    "unknown_category": "未知类目",
    "empty_text": "标题和描述均为空",
    "text_too_long": "文本过长",
    "invalid_listing": "字段不合法",
    "malformed_csv": "CSV 行格式错误",
    "unreadable_file": "文件无法读取",
    "internal_error": "内部错误",
    "unreadable": "无法读取",
}
_COLOURS = {
    "critical": "#c0392b",
    "high": "#e67e22",
    "medium": "#f1c40f",
    "low": "#3498db",
    "block": "#c0392b",
    "review": "#e67e22",
    "pass": "#27ae60",
}

TOP = 20
RISK_BINS = 20
#: Sellers are ranked by the share of their listings to act on, among sellers with at least this many.
MIN_SELLER_LISTINGS = 5
#: The report's table of flagged listings holds the riskiest this many; flagged.csv holds them all.
FLAGGED_EMBED = 20_000
FLAGGED_CSV = "flagged.csv"
FLAGGED_COLUMNS = [
    "id",
    "seller_id",
    "category",
    "title",
    "verdict",
    "risk",
    "classifier_score",
    "max_severity",
    "rules",
    "families",
    "reason",
    "source",
    "line",
]


def family_names() -> dict[str, str]:
    """Chinese family names from the rule packs' ``name`` (plus the image family, which has no pack)."""
    import yaml

    from moderation.paths import rules_dir

    names = {"copied_image": "盗用他人商品图片"}
    for path in sorted((rules_dir() / "packs").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except Exception:  # a broken pack is the rules loader's to report; keep the report going
            continue
        if isinstance(data, dict) and data.get("family"):
            names[str(data["family"])] = str(data.get("name") or data["family"])
    return names


# -- aggregation -----------------------------------------------------------------------------------


def _counts(column: pa.ChunkedArray | pa.Array) -> dict[Any, int]:
    vc = pc.value_counts(column)
    return {v["values"].as_py(): v["counts"].as_py() for v in vc}


def _add(counter: Counter[Any], column: pa.ChunkedArray | pa.Array) -> None:
    for k, v in _counts(column).items():
        counter[k] += v


#: The ``listings/`` columns the report reads: flagged.csv's (not ``reason``: made here) and counts.
_LISTING_COLUMNS = [
    *(c for c in FLAGGED_COLUMNS if c != "reason"),
    *("batch", "n_findings", "error_code", "error_message", "copied_images", "image_errors"),
]
#: What the report shows of a rule: the first finding it made (``top_rules``).
_RULE_EXAMPLE = ("family", "law", "severity", "text", "message", "suggestion", "id", "field")
_FINDING_COLUMNS = ["line", "rule", *_RULE_EXAMPLE]


def aggregate(out_dir: Path) -> dict[str, Any]:
    """Every figure of the report, computed by streaming over the part files."""
    verdicts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    error_examples: list[dict[str, Any]] = []
    categories: dict[str, Counter[str]] = defaultdict(Counter)
    sellers: dict[str, Counter[str]] = defaultdict(Counter)
    risk_hist = np.zeros(RISK_BINS, dtype=np.int64)
    score_hist = np.zeros(RISK_BINS, dtype=np.int64)
    top_listings: list[tuple[float, int, int, dict[str, Any]]] = []
    ids: list[pa.Array] = []
    n_listings = n_checked = n_flagged = n_with_findings = n_image_errors = n_copies = 0
    bins = np.linspace(0.0, 1.0, RISK_BINS + 1)
    for part in part_files(out_dir, "listings"):
        t = pq.read_table(part, columns=_LISTING_COLUMNS)
        n_listings += t.num_rows
        ids.append(t.column("id").combine_chunks())
        _add(verdicts, t.column("verdict").drop_null())
        err = t.column("error_code")
        _add(errors, err.drop_null())
        if len(error_examples) < 200 and err.null_count < t.num_rows:
            bad = t.filter(pc.is_valid(err)).select(["source", "line", "id", "error_code", "error_message"])
            error_examples.extend(bad.slice(0, 200 - len(error_examples)).to_pylist())
        ok = t.filter(pc.is_null(err))
        n_checked += ok.num_rows
        flagged_mask = pc.is_in(ok.column("verdict"), pa.array(["review", "block"]))
        n_flagged += pc.sum(flagged_mask).as_py() or 0
        n_with_findings += pc.sum(pc.greater(ok.column("n_findings"), 0)).as_py() or 0
        n_copies += pc.sum(t.column("copied_images")).as_py() or 0
        n_image_errors += pc.sum(t.column("image_errors")).as_py() or 0
        risk = ok.column("risk").to_numpy(zero_copy_only=False)
        risk_hist += np.histogram(np.clip(risk[~np.isnan(risk)], 0, 1), bins=bins)[0]
        score = ok.column("classifier_score").drop_null().to_numpy(zero_copy_only=False)
        if score.size:
            score_hist += np.histogram(np.clip(score, 0, 1), bins=bins)[0]
        rows = ok.select(["category", "seller_id", "verdict", "n_findings"]).to_pydict()
        for cat, seller, verdict, nf in zip(
            rows["category"], rows["seller_id"], rows["verdict"], rows["n_findings"], strict=True
        ):
            for c in (categories[cat or "general"], sellers[seller or "(无卖家编号)"]):
                c["listings"] += 1
                c["findings"] += nf
                c[verdict] += 1
        # the riskiest listings to act on (non-pass only): a bounded heap across parts
        flagged = ok.filter(flagged_mask)
        if flagged.num_rows:
            idx = pc.select_k_unstable(
                flagged, k=min(TOP, flagged.num_rows), sort_keys=[("risk", "descending")]
            )
            for r in (
                flagged.take(idx)
                .select(["batch", "line", "id", "seller_id", "category", "title", "verdict", "risk", "rules"])
                .to_pylist()
            ):
                if r["risk"] is None:
                    continue
                r["title"] = mask_contacts(r["title"]) if r["title"] else r["title"]
                _keep(top_listings, (r["risk"], -r["batch"], -r["line"], r), TOP)

    families: Counter[str] = Counter()
    family_listings: Counter[str] = Counter()
    laws: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    rule_info: dict[str, dict[str, Any]] = {}
    for part in part_files(out_dir, "findings"):
        f = pq.read_table(part, columns=_FINDING_COLUMNS)
        if not f.num_rows:
            continue
        _add(families, f.column("family"))
        _add(laws, f.column("law"))
        _add(severities, f.column("severity"))
        _add(rules, f.column("rule"))
        per_family = f.group_by("family").aggregate([("line", "count_distinct")])
        for fam, n in zip(
            per_family.column("family").to_pylist(),
            per_family.column("line_count_distinct").to_pylist(),
            strict=True,
        ):
            family_listings[fam] += n
        new_rules = set(rules) - set(rule_info)
        if new_rules:
            for r in f.filter(pc.is_in(f.column("rule"), pa.array(sorted(new_rules)))).to_pylist():
                rule_info.setdefault(r["rule"], {k: r[k] for k in _RULE_EXAMPLE})

    clusters = _image_clusters(out_dir)
    dup_ids = 0
    if ids:
        all_ids = pa.chunked_array(ids).drop_null()
        if len(all_ids):
            vc = pc.value_counts(all_ids)
            dup_ids = int(pc.sum(pc.greater(vc.field("counts"), 1)).as_py() or 0)

    fam_names = family_names()
    top_sellers = sorted(
        sellers.items(), key=lambda kv: (-(kv[1]["block"] + kv[1]["review"]), -kv[1]["findings"], kv[0])
    )[:TOP]
    by_rate = sorted(
        ((k, c) for k, c in sellers.items() if c["listings"] >= MIN_SELLER_LISTINGS and k != "(无卖家编号)"),
        key=lambda kv: (-(kv[1]["block"] + kv[1]["review"]) / kv[1]["listings"], -kv[1]["listings"], kv[0]),
    )[:TOP]
    return {
        "generated_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "totals": {
            "listings": n_listings,
            "checked": n_checked,
            "errors": sum(errors.values()),
            "flagged": n_flagged,
            "with_findings": n_with_findings,
            "findings": sum(rules.values()),
            "copied_images": n_copies,
            "image_errors": n_image_errors,
            "duplicate_ids": dup_ids,
            "sellers": len(sellers),
        },
        "verdicts": {v: verdicts.get(v, 0) for v in ("pass", "review", "block")},
        "errors": dict(errors.most_common()),
        "error_examples": error_examples,
        "by_family": [
            {"family": k, "name": fam_names.get(k, k), "findings": v, "listings": family_listings[k]}
            for k, v in families.most_common()
        ],
        "by_law": [{"law": k, "findings": v} for k, v in laws.most_common()],
        "by_severity": [{"severity": s, "findings": severities.get(s, 0)} for s in reversed(SEVERITIES)],
        "by_category": [
            {"category": k, "name": CATEGORY_LABELS.get(k, k), **_tally(c)}
            for k, c in sorted(categories.items(), key=lambda kv: -(kv[1]["review"] + kv[1]["block"]))
        ],
        "top_sellers": [{"seller_id": k, **_tally(c)} for k, c in top_sellers],
        "seller_min_listings": MIN_SELLER_LISTINGS,
        "sellers_by_rate": [
            {"seller_id": k, **_tally(c), "rate": round((c["review"] + c["block"]) / c["listings"], 4)}
            for k, c in by_rate
        ],
        "top_rules": [{"rule": k, "findings": v, **rule_info.get(k, {})} for k, v in rules.most_common(TOP)],
        "top_listings": [r for *_, r in sorted(top_listings, reverse=True)],
        "risk_histogram": {"bins": [round(float(b), 3) for b in bins], "counts": risk_hist.tolist()},
        "classifier_histogram": (
            {"bins": [round(float(b), 3) for b in bins], "counts": score_hist.tolist()}
            if score_hist.any()
            else None
        ),
        "image_clusters": clusters,
        # the names as the rules of this audit had them (a later diff may run with a pack removed)
        "family_names": {k: fam_names[k] for k in sorted(families) if k in fam_names},
    }


def _keep(heap: list[Any], item: tuple[Any, ...], n: int) -> None:
    """Push ``item`` onto a heap that keeps the ``n`` largest."""
    if len(heap) < n:
        heapq.heappush(heap, item)
    else:
        heapq.heappushpop(heap, item)


def _tally(c: Counter[str]) -> dict[str, int]:
    """A category's or seller's listings, flagged (review or block), blocked and findings."""
    return {
        "listings": c["listings"],
        "flagged": c["review"] + c["block"],
        "block": c["block"],
        "findings": c["findings"],
    }


def _image_clusters(out_dir: Path) -> list[dict[str, Any]]:
    """Listings whose images copy the same indexed image, biggest groups first."""
    groups: dict[str, dict[str, Any]] = {}
    for part in part_files(out_dir, "images"):
        t = pq.read_table(part)
        t = t.filter(pc.is_valid(t.column("match_id")))
        for r in t.to_pylist():
            g = groups.setdefault(
                r["match_id"],
                {
                    "image": r["match_id"],
                    "original_image": r["match_image"],
                    "original_listing": r["match_listing_id"],
                    "original_seller": r["match_seller_id"],
                    "listings": [],
                    "sellers": set(),
                    "min_distance": 64,
                },
            )
            g["listings"].append(r["id"])
            if r["seller_id"]:
                g["sellers"].add(r["seller_id"])
            g["min_distance"] = min(g["min_distance"], r["distance"] if r["distance"] is not None else 64)
    out = []
    for g in sorted(groups.values(), key=lambda g: (-len(g["listings"]), g["image"])):
        g["copies"] = len(g["listings"])
        g["sellers"] = sorted(g["sellers"])
        g["listings"] = sorted(set(g["listings"]))[:50]
        out.append(g)
    return out[:50]


# -- rendering -------------------------------------------------------------------------------------

_CSS = """
body{font-family:"PingFang SC","Hiragino Sans GB","Microsoft YaHei","Noto Sans CJK SC","Source Han Sans SC",
"WenQuanYi Micro Hei",sans-serif;margin:24px auto;max-width:1180px;color:#222;line-height:1.5;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;border-bottom:2px solid #eee;padding-bottom:4px}
.muted{color:#777;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.card{border:1px solid #e3e3e3;border-radius:8px;padding:10px 16px;min-width:130px;background:#fafafa}
.card b{display:block;font-size:22px}.card span{font-size:13px;color:#555}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:24px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f5f5f5;font-weight:600;white-space:nowrap}td.nw{white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bar{display:flex;align-items:center;gap:8px;margin:3px 0;font-size:13px}
.bar .label{width:210px;flex:none;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar .track{flex:1;background:#f0f0f0;border-radius:3px;height:16px}
.bar .fill{height:16px;border-radius:3px;background:#4a78c2}
.bar .val{width:70px;text-align:right;font-variant-numeric:tabular-nums}
.tag{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
code{font-size:12px;color:#555}
mark{background:#ffe08a}
.controls{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0;font-size:13px}
.controls[hidden]{display:none}.controls input[type=search]{min-width:220px}
.controls input,.controls select,.controls button{font:inherit;padding:3px 6px}
.controls input[type=number]{width:64px}
@media (max-width:700px){.grid{grid-template-columns:1fr}.bar .label{width:120px!important}}
"""


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _bars(
    rows: list[tuple[str, int]], colour: str | dict[str, str] = "#4a78c2", label_width: int = 210
) -> str:
    if not rows:
        return '<p class="muted">无</p>'
    top = max(v for _, v in rows) or 1
    out = []
    for label, value in rows:
        c = colour.get(label, "#4a78c2") if isinstance(colour, dict) else colour
        width = 100.0 * value / top
        out.append(
            f'<div class="bar"><div class="label" style="width:{label_width}px" title="{_e(label)}">{_e(label)}</div>'
            f'<div class="track"><div class="fill" style="width:{width:.1f}%;background:{c}"></div></div>'
            f'<div class="val">{value:,}</div></div>'
        )
    return "\n".join(out)


def _histogram_svg(hist: dict[str, Any], title: str) -> str:
    counts: list[int] = hist["counts"]
    bins: list[float] = hist["bins"]
    w, h, pad_l, pad_b, pad_t = 560, 220, 48, 36, 14
    top = max(counts) or 1
    bw = (w - pad_l - 8) / len(counts)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{_e(title)}">'
    ]
    for i, c in enumerate(counts):
        bh = (h - pad_b - pad_t) * c / top
        x = pad_l + i * bw
        y = h - pad_b - bh
        colour = "#27ae60" if bins[i] < 0.5 else ("#e67e22" if bins[i] < 0.85 else "#c0392b")
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{y:.1f}" width="{bw - 2:.1f}" height="{bh:.1f}" fill="{colour}">'
            f"<title>{bins[i]:.2f}–{bins[i + 1]:.2f}: {c:,}</title></rect>"
        )
        if c:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{y - 3:.1f}" font-size="9" text-anchor="middle" '
                f'fill="#555">{c:,}</text>'
            )
    for i in range(0, len(bins), 4):
        x = pad_l + i * bw
        parts.append(
            f'<text x="{x:.1f}" y="{h - pad_b + 14}" font-size="11" text-anchor="middle">{bins[i]:.1f}</text>'
        )
    parts.append(f'<line x1="{pad_l}" y1="{h - pad_b}" x2="{w - 8}" y2="{h - pad_b}" stroke="#999"/>')
    parts.append(
        f'<text x="{pad_l + (w - pad_l) / 2:.0f}" y="{h - 4}" font-size="12" text-anchor="middle">'
        f"{_e(title)}</text>"
    )
    parts.append(f'<text x="4" y="{pad_t + 4}" font-size="11">{top:,}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f}%" if b else "–"


#: The columns of a listing's row in the report's tables (``_listing_cells``), before the rules column.
_LISTING_HEAD = ["商品", "卖家", "类目", "标题", "结论", "风险"]


def _table(head: list[str], rows: Iterable[str]) -> list[str]:
    """A table as lines of HTML: a header row of ``head`` and one ``<tr>`` per row of ready cells."""
    return [
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>",
        *(f"<tr>{r}</tr>" for r in rows),
        "</table>",
    ]


def _counts_cells(label: str, r: dict[str, Any], share: str) -> str:
    """A category's or a seller's row: listings, flagged, their share, blocked, findings."""
    return (
        f"<td>{label}</td><td class='n'>{r['listings']:,}</td><td class='n'>{r['flagged']:,}</td>"
        f"<td class='n'>{share}</td><td class='n'>{r['block']:,}</td><td class='n'>{r['findings']:,}</td>"
    )


def _listing_cells(r: dict[str, Any], title: str, risk: str, rules: str) -> str:
    """A flagged listing's row: id, seller, category, title, verdict, risk, rules (ready HTML)."""
    return (
        f"<td class='nw'>{_e(r['id'])}</td><td class='nw'>{_e(r['seller_id'])}</td>"
        f"<td class='nw'>{_e(CATEGORY_LABELS.get(r['category'], r['category']))}</td><td>{_e(title)}</td>"
        f"<td class='nw'>{_e(VERDICT_LABELS.get(r['verdict'], r['verdict']))}</td><td class='n'>{risk}</td>"
        f"<td>{rules}</td>"
    )


def render_html(
    s: dict[str, Any],
    title: str = "商品广告合规审计报告",
    flagged: tuple[list[dict[str, Any]], int] | None = None,
) -> str:
    """The report page; every chart is HTML or inline SVG, so it reads offline and prints. ``flagged``
    (rows, total) adds the paged, filterable table of the listings to act on (one inline script, no
    fetch; its first page is plain HTML)."""
    t = s["totals"]
    v = s["verdicts"]
    cards = [
        ("商品总数", f"{t['listings']:,}"),
        ("已检查", f"{t['checked']:,}"),
        ("拦截", f"{v['block']:,} ({_pct(v['block'], t['checked'])})"),
        ("待人工审核", f"{v['review']:,} ({_pct(v['review'], t['checked'])})"),
        ("通过", f"{v['pass']:,}"),
        ("违规发现", f"{t['findings']:,}"),
        ("无法检查的行", f"{t['errors']:,}"),
        ("疑似盗图", f"{t['copied_images']:,}"),
    ]
    if t.get("duplicate_ids"):
        cards.append(("重复商品编号", f"{t['duplicate_ids']:,}"))
    out: list[str] = [
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<div class='muted'>生成时间 {_e(s['generated_at'])} · 输入 {_e(s.get('input', ''))}"
        f" · 依据《中华人民共和国广告法》及相关规定</div>",
        "<div class='cards'>"
        + "".join(f"<div class='card'><b>{_e(b)}</b><span>{_e(a)}</span></div>" for a, b in cards)
        + "</div>",
        "<h2>审核结论</h2>",
        _bars(
            [(VERDICT_LABELS[k], v[k]) for k in ("block", "review", "pass")],
            {VERDICT_LABELS[k]: _COLOURS[k] for k in VERDICT_LABELS},
        ),
        "<div class='grid'><div><h2>按违规类型</h2>",
        _bars([(f"{r['name']}", r["findings"]) for r in s["by_family"][:TOP]]),
        "</div><div><h2>按严重程度</h2>",
        _bars(
            [(SEVERITY_LABELS[r["severity"]], r["findings"]) for r in s["by_severity"]],
            {SEVERITY_LABELS[k]: _COLOURS[k] for k in SEVERITY_LABELS},
        ),
        "<h2>风险分布</h2>",
        _histogram_svg(s["risk_histogram"], "风险分（0 = 低，1 = 高）"),
        "</div></div>",
        "<h2>按法律条款</h2>",
        _bars([(r["law"], r["findings"]) for r in s["by_law"][:TOP]], label_width=360),
        "<h2>按类目</h2>",
        *_table(
            ["类目", "商品数", "需处理", "占比", "拦截", "违规发现"],
            (
                _counts_cells(
                    f"{_e(r['name'])} <code>{_e(r['category'])}</code>", r, _pct(r["flagged"], r["listings"])
                )
                for r in s["by_category"]
            ),
        ),
    ]
    if s.get("classifier_histogram"):
        out += ["<h2>模型风险分分布</h2>", _histogram_svg(s["classifier_histogram"], "分类模型分数")]
    by_rate = s.get("sellers_by_rate") or []
    out.append(
        f"<h2>违规率最高的卖家（至少 {s.get('seller_min_listings', MIN_SELLER_LISTINGS)} 个商品）</h2>"
    )
    if by_rate:
        head = ["卖家", "商品数", "需处理", "违规率", "拦截", "违规发现"]
        out += _table(
            head, (_counts_cells(_e(r["seller_id"]), r, f"{r['rate'] * 100:.1f}%") for r in by_rate)
        )
    else:
        out.append("<p class='muted'>没有商品数达到门槛的卖家。</p>")
    out.append("<h2>需处理商品最多的卖家</h2>")
    out.append(
        _bars([(r["seller_id"], r["flagged"]) for r in s["top_sellers"][:10] if r["flagged"]], "#c0392b")
    )
    out.append("<h2>命中最多的规则</h2>")
    out += _table(
        ["规则", "条款", "严重程度", "次数", "示例", "说明 / 建议"],
        (
            f"<td><code>{_e(r['rule'])}</code></td><td>{_e(r.get('law'))}</td><td><span class='tag' "
            f"style='background:{_COLOURS.get(sev, '#888')}'>{_e(SEVERITY_LABELS.get(sev, sev))}</span></td>"
            f"<td class='n'>{r['findings']:,}</td><td class='nw'><mark>{_e(r.get('text'))}</mark>"
            f"<div class='muted'>{_e(r.get('id'))}</div></td>"
            f"<td>{_e(r.get('message'))}<div class='muted'>{_e(r.get('suggestion') or '')}</div></td>"
            for r in s["top_rules"]
            for sev in [r.get("severity", "")]
        ),
    )
    if flagged is not None:
        out.extend(_flagged_html(flagged[0], flagged[1], s.get("family_names") or {}))
    else:
        out.append("<h2>风险最高的商品</h2>")
        out += _table(
            [*_LISTING_HEAD, "规则"],
            (
                _listing_cells(
                    r,
                    (r["title"] or "")[:60],
                    f"{r['risk']:.2f}",
                    f"<code>{_e(', '.join(r['rules'] or []))}</code>",
                )
                for r in s["top_listings"]
            ),
        )
    out.append("<h2>疑似盗用图片（按被复制的原图分组）</h2>")
    if s["image_clusters"]:
        out += _table(
            ["原图", "原商品 / 卖家", "复制次数", "涉及卖家", "最小距离", "商品"],
            (
                f"<td><code>{_e(g['original_image'] or g['image'])}</code></td>"
                f"<td>{_e(g['original_listing'])} / {_e(g['original_seller'])}</td><td class='n'>{g['copies']}</td>"
                f"<td>{_e('、'.join(g['sellers'][:10]))}</td><td class='n'>{g['min_distance']}/64</td>"
                f"<td>{_e('、'.join(g['listings'][:10]))}</td>"
                for g in s["image_clusters"][:TOP]
            ),
        )
    else:
        out.append("<p class='muted'>没有发现盗用图片（未提供图片库 --image-db，或商品无图片）。</p>")
    if s.get("ocr"):
        out.extend(_ocr_html(s["ocr"]))
    out.append("<h2>无法检查的行</h2>")
    if s["errors"]:
        out.append(_bars([(f"{ERROR_ZH.get(k, k)} ({k})", n) for k, n in s["errors"].items()], "#888"))
        out += _table(
            ["文件", "行", "商品", "错误", "说明"],
            (
                f"<td>{_e(r['source'])}</td><td class='n'>{r['line']}</td><td>{_e(r['id'])}</td>"
                f"<td><code>{_e(r['error_code'])}</code></td><td>{_e(r['error_message'])}</td>"
                for r in s["error_examples"][:50]
            ),
        )
    else:
        out.append("<p class='muted'>所有行均已检查。</p>")
    out.append(
        "<p class='muted'>明细：listings/（每个商品一行）、findings/（每条违规一行）、images/ 为 Parquet 数据集；"
        "summary.json 为本页数据。</p></body></html>"
    )
    return "\n".join(out)


# -- every flagged listing: flagged.csv and the report's table --------------------------------------


def _csv_cell(value: Any) -> Any:
    """A flagged.csv cell: scores to 4 places, lists space-separated, nothing as empty."""
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return " ".join(value)
    return "" if value is None else value


def _score_reason(score: float | None, explanation: str | None, copies: int) -> str:
    """Why a listing with no rule finding is flagged: the words behind its score, or copied images."""
    parts = []
    if explanation:
        try:
            spans = json.loads(explanation)
        except ValueError:
            spans = []
        words = "、".join(
            f"“{mask_contacts(str(sp.get('text', '')))}”({float(sp.get('weight', 0)):.2f})"
            for sp in spans[:5]
        )
        if words:
            parts.append(
                f"模型分 {score:.2f}，主要依据 {words}" if score is not None else f"模型依据 {words}"
            )
    elif score is not None:
        parts.append(f"模型分 {score:.2f}（无规则命中）")
    if copies:
        parts.append(f"疑似盗图 {copies} 张")
    return "；".join(parts)


def flagged_listings(out_dir: Path, fam_names: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    """Write ``flagged.csv`` (every listing to act on, in input order; UTF-8 with a BOM so Excel reads
    the Chinese) and return the riskiest ``FLAGGED_EMBED`` of them for the report, riskiest first."""
    import csv

    heap: list[tuple[float, int, dict[str, Any]]] = []
    n = 0
    with (out_dir / FLAGGED_CSV).open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(FLAGGED_COLUMNS)
        for part in part_files(out_dir, "listings"):
            names = pq.read_schema(part).names
            columns = _LISTING_COLUMNS + (
                ["classifier_explanation"] if "classifier_explanation" in names else []
            )
            t = pq.read_table(part, columns=columns)
            t = t.filter(
                pc.and_(
                    pc.is_null(t.column("error_code")),
                    pc.is_in(t.column("verdict"), pa.array(["review", "block"])),
                )
            )
            for r in t.to_pylist():
                rules = r["rules"] or []
                reason = (
                    ""
                    if rules
                    else _score_reason(
                        r["classifier_score"], r.get("classifier_explanation"), r["copied_images"] or 0
                    )
                )
                row = {
                    "id": r["id"],
                    "seller_id": r["seller_id"],
                    "category": r["category"],
                    "title": mask_contacts(r["title"]) if r["title"] else "",
                    "verdict": r["verdict"],
                    "risk": r["risk"],
                    "classifier_score": r["classifier_score"],
                    "max_severity": r["max_severity"],
                    "rules": rules,
                    "families": [fam_names.get(f, f) for f in (r["families"] or [])],
                    "reason": reason,
                    "source": r["source"],
                    "line": r["line"],
                }
                writer.writerow([_csv_cell(row[c]) for c in FLAGGED_COLUMNS])
                _keep(heap, (row["risk"] if row["risk"] is not None else -1.0, -n, row), FLAGGED_EMBED)
                n += 1
    return [r for *_, r in sorted(heap, reverse=True)], n


#: The columns of the report's table data (``_flagged_html``): flagged.csv's but where it came from.
_EMBEDDED = FLAGGED_COLUMNS[: FLAGGED_COLUMNS.index("reason") + 1]

_TABLE_SCRIPT = r"""
(function () {
  var data = JSON.parse(document.getElementById('flagged-data').textContent);
  var $ = function (id) { return document.getElementById(id); };
  var body = $('flagged-body'), info = $('flagged-info'), page = 0, size = 50, rows = data;
  function esc(v) { return String(v == null ? '' : v).replace(/[&<>"]/g, function (c) {
    return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; }); }
  function filter() {
    var q = $('f-q').value.trim().toLowerCase(), v = $('f-verdict').value, fam = $('f-family').value,
        cat = $('f-category').value, min = parseFloat($('f-risk').value) || 0, norule = $('f-norule').checked;
    rows = data.filter(function (r) {
      if (v && r[4] !== v) return false;
      if (cat && r[2] !== cat) return false;
      if (fam && r[9].indexOf(fam) < 0) return false;
      if ((r[5] || 0) < min) return false;
      if (norule && r[8]) return false;
      if (q && (r[0] + ' ' + r[1] + ' ' + r[3]).toLowerCase().indexOf(q) < 0) return false;
      return true;
    });
    page = 0; render();
  }
  function render() {
    var pages = Math.max(1, Math.ceil(rows.length / size));
    page = Math.max(0, Math.min(page, pages - 1));
    var html = '';
    rows.slice(page * size, page * size + size).forEach(function (r) {
      html += '<tr><td class="nw">' + esc(r[0]) + '</td><td class="nw">' + esc(r[1]) + '</td><td class="nw">' +
        esc(r[2]) + '</td><td>' + esc(r[3]) + '</td><td class="nw">' + esc(r[4] === 'block' ? '拦截' : '待人工审核') +
        '</td><td class="n">' + (r[5] == null ? '' : r[5].toFixed(2)) + '</td><td><code>' + esc(r[8]) +
        '</code>' + (r[10] ? '<div class="muted">' + esc(r[10]) + '</div>' : '') + '</td></tr>';
    });
    body.innerHTML = html || '<tr><td colspan="7" class="muted">没有符合条件的商品</td></tr>';
    info.textContent = '共 ' + rows.length + ' 条 · 第 ' + (page + 1) + ' / ' + pages + ' 页';
    $('f-prev').disabled = page === 0; $('f-next').disabled = page >= pages - 1;
  }
  function csv() {
    var head = ['id', 'seller_id', 'category', 'title', 'verdict', 'risk', 'classifier_score', 'max_severity',
                'rules', 'families', 'reason'];
    var lines = [head.join(',')];
    rows.forEach(function (r) {
      lines.push([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10]].map(function (v) {
        v = String(v == null ? '' : v); return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
      }).join(','));
    });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob(['\ufeff' + lines.join('\n')], {type: 'text/csv;charset=utf-8'}));
    a.download = 'flagged-filtered.csv'; document.body.appendChild(a); a.click(); a.remove();
  }
  ['f-q', 'f-verdict', 'f-family', 'f-category', 'f-risk', 'f-norule'].forEach(function (id) {
    $(id).addEventListener('input', filter); $(id).addEventListener('change', filter); });
  $('f-prev').addEventListener('click', function () { page--; render(); });
  $('f-next').addEventListener('click', function () { page++; render(); });
  $('f-csv').addEventListener('click', csv);
  $('flagged-controls').hidden = false;
  filter();
})();
"""


def _flagged_html(rows: list[dict[str, Any]], total: int, fam_names: dict[str, str]) -> list[str]:
    """A paged, filterable table of the flagged listings: the first page is plain HTML (it prints and
    reads without script); a small inline script pages, filters and exports what is filtered as CSV."""
    cats = sorted({CATEGORY_LABELS.get(r["category"], r["category"] or "") for r in rows})
    fams = sorted({f for r in rows for f in r["families"]})
    shown = "" if total <= len(rows) else f"（表中为风险最高的 {len(rows):,} 条）"
    out = [
        f"<h2 id='flagged'>所有需处理的商品（{total:,}）{shown}</h2>",
        f"<p class='muted'>全部明细：<a href='{FLAGGED_CSV}'>{FLAGGED_CSV}</a>（Excel 可直接打开）。"
        "无规则命中而被送审的商品，说明列给出模型分的主要依据。</p>",
        "<div id='flagged-controls' class='controls' hidden>"
        "<input id='f-q' type='search' placeholder='搜索 商品编号 / 卖家 / 标题'>"
        "<select id='f-verdict'><option value=''>全部结论</option><option value='block'>拦截</option>"
        "<option value='review'>待人工审核</option></select>"
        "<select id='f-family'><option value=''>全部违规类型</option>"
        + "".join(f"<option>{_e(f)}</option>" for f in fams)
        + "</select>"
        "<select id='f-category'><option value=''>全部类目</option>"
        + "".join(f"<option>{_e(c)}</option>" for c in cats)
        + "</select>"
        "<label>风险 ≥ <input id='f-risk' type='number' min='0' max='1' step='0.05' value='0'></label>"
        "<label><input id='f-norule' type='checkbox'> 仅无规则命中</label>"
        "<button id='f-prev' type='button'>上一页</button><span id='flagged-info'></span>"
        "<button id='f-next' type='button'>下一页</button>"
        "<button id='f-csv' type='button'>导出筛选结果 CSV</button></div>",
        "<table><thead><tr>"
        + "".join(f"<th>{h}</th>" for h in [*_LISTING_HEAD, "规则 / 说明"])
        + "</tr></thead><tbody id='flagged-body'>",
    ]
    for r in rows[:50]:
        risk = "" if r["risk"] is None else f"{r['risk']:.2f}"
        reason = f"<div class='muted'>{_e(r['reason'])}</div>" if r["reason"] else ""
        rules = f"<code>{_e(' '.join(r['rules']))}</code>{reason}"
        out.append(f"<tr>{_listing_cells(r, r['title'], risk, rules)}</tr>")
    if not rows:
        out.append("<tr><td colspan='7' class='muted'>没有需要处理的商品。</td></tr>")
    out.append("</tbody></table>")
    # flagged.csv's columns up to ``reason`` (the script's CSV export names them), lists joined
    labelled = ({**r, "category": CATEGORY_LABELS.get(r["category"], r["category"])} for r in rows)
    data = [[" ".join(v) if isinstance(v := r[c], list) else v for c in _EMBEDDED] for r in labelled]
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    out.append(f"<script type='application/json' id='flagged-data'>{payload}</script>")
    out.append(f"<script>{_TABLE_SCRIPT}</script>")
    return out


def _ocr_summary(out_dir: Path, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Text read from listing images (--ocr): pictures read, findings in their text, images/s per run."""
    images = with_text = errors = 0
    error_codes: Counter[str] = Counter()
    for part in part_files(out_dir, "images"):
        names = pq.read_schema(part).names
        if "ocr_lines" not in names:
            continue
        t = pq.read_table(part, columns=["ocr_lines", "ocr_error"])
        images += t.num_rows
        lines = t.column("ocr_lines").to_pylist()
        with_text += sum(1 for n in lines if n)
        errs = t.column("ocr_error").drop_null()
        errors += len(errs)
        _add(error_codes, errs)
    rules: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    for part in part_files(out_dir, "findings"):
        f = pq.read_table(part, columns=["id", "rule", "field", "text", "box"])
        f = f.filter(pc.starts_with(f.column("field"), "image:"))
        if not f.num_rows:
            continue
        _add(rules, f.column("rule"))
        if len(examples) < 30:
            examples.extend(f.slice(0, 30 - len(examples)).to_pylist())
    return {
        "images": images,
        "with_text": with_text,
        "errors": errors,
        "error_codes": dict(error_codes),
        "findings": sum(rules.values()),
        "by_rule": [{"rule": k, "findings": v} for k, v in rules.most_common(TOP)],
        "examples": examples,
        "runs": runs,
    }


def _ocr_html(o: dict[str, Any]) -> list[str]:
    out = [
        "<h2>图片中的文字（OCR）</h2>",
        f"<p>读取图片 {o['images']:,} 张，其中含文字 {o['with_text']:,} 张，无法读取 {o['errors']:,} 张；"
        f"图片文字中的违规发现 {o['findings']:,} 条。</p>",
        *_table(
            ["运行", "读取图片", "其中来自缓存", "用时（秒）", "图片/秒"],
            (
                f"<td class='n'>{i}</td><td class='n'>{r['images']:,}</td><td class='n'>{r['cached']:,}</td>"
                f"<td class='n'>{r['seconds']:,.1f}</td><td class='n'>{'' if rate is None else f'{rate:,.2f}'}</td>"
                for i, r in enumerate(o["runs"], 1)
                for rate in [r.get("images_per_s")]
            ),
        ),
    ]
    if o["by_rule"]:
        out.append(_bars([(r["rule"], r["findings"]) for r in o["by_rule"]], "#8e44ad", label_width=300))
        out += _table(
            ["商品", "图片", "规则", "文字", "位置 [x1, y1, x2, y2]"],
            (
                f"<td class='nw'>{_e(r['id'])}</td><td class='nw'>{_e(r['field'])}</td>"
                f"<td><code>{_e(r['rule'])}</code></td><td><mark>{_e(r['text'])}</mark></td>"
                f"<td class='nw'>{_e(r['box'])}</td>"
                for r in o["examples"]
            ),
        )
    return out


def write_report(out_dir: Path) -> dict[str, Any]:
    """Aggregate the audit in ``out_dir`` and write ``summary.json``, ``report.html`` and ``flagged.csv``
    (every listing to act on) there."""
    summary = aggregate(out_dir)
    from moderation.audit.checkpoint import Manifest

    manifest = Manifest(out_dir)
    try:
        summary["input"] = manifest.get("input")
        ocr_runs = manifest.get("ocr_runs")
    finally:
        manifest.close()
    if ocr_runs:
        summary["ocr"] = _ocr_summary(out_dir, ocr_runs)
    fam_names = {**family_names(), **(summary.get("family_names") or {})}
    flagged = flagged_listings(out_dir, fam_names)
    summary["flagged_csv"] = FLAGGED_CSV
    (out_dir / "summary.json").write_text(
        json.dumps(summary, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
    )
    (out_dir / "report.html").write_text(render_html(summary, flagged=flagged), encoding="utf-8")
    return summary
