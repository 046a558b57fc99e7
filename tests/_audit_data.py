"""A small hand-written catalogue for the audit tests: real-looking Chinese listings, lawful and not,
plus the bad rows a real export contains (malformed JSON, no id, unknown category, empty text, a
broken image path). Imported by tests/test_audit_*.py; not a test module itself."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

GOOD: list[dict[str, Any]] = [
    {
        "id": "sku-001",
        "title": "【全网最低价】304不锈钢保温杯 销量第一 國家級工艺",
        "description": "保温12小时，第一次使用请先用开水烫洗。",
        "category": "general",
        "seller_id": "s-01",
    },
    {
        "id": "sku-002",
        "title": "新品首发 纯棉T恤 男款 100%棉",
        "description": "面料柔软透气，唯一的缺点是颜色选择不多。最近上新了三款颜色。",
        "category": "apparel",
        "seller_id": "s-02",
    },
    {
        "id": "sku-003",
        "title": "益生菌固体饮料 调理肠胃 治疗便秘",
        "description": "喝一周告别便秘，比药还管用，无任何副作用。",
        "category": "food",
        "seller_id": "s-03",
    },
    {
        "id": "sku-004",
        "title": "美白淡斑精华液 七天祛斑",
        "description": "三天见效，永不反弹，专家推荐。",
        "category": "cosmetics",
        "seller_id": "s-03",
    },
    {
        "id": "sku-005",
        "title": "实木书桌 学生写字台",
        "description": "桌面最高承重150kg，安装简单，附送螺丝刀。",
        "category": "general",
        "seller_id": "s-04",
    },
    {
        "id": "sku-006",
        "title": "考研英语一对一辅导 保过班",
        "description": "不过全额退款，名师押题命中率100%。",
        "category": "education",
        "seller_id": "s-05",
    },
    {
        "id": "sku-007",
        "title": "加盟奶茶店 稳赚不赔",
        "description": "投资三万，月入五万，零风险高回报。",
        "category": "finance",
        "seller_id": "s-05",
    },
    {
        "id": "sku-008",
        "title": "儿童安全座椅 0-12岁",
        "description": "通过3C认证，五点式安全带，侧撞保护。",
        "category": "baby",
        "seller_id": "s-06",
    },
    {
        "id": "sku-009",
        "title": "有机大米 5kg 东北五常",
        "description": "当季新米，真空包装，最佳食用时间为开袋后一个月内。",
        "category": "food",
        "seller_id": "s-07",
    },
    {
        "id": "sku-010",
        "title": "顶级极品红茶 史无前例的口感",
        "description": "百年工艺，绝无仅有。",
        "category": "food",
        "seller_id": "s-07",
    },
    {
        "id": "sku-011",
        "title": "蓝牙耳机 降噪 长续航",
        "description": "单次续航8小时，支持快充，第一代产品用户好评。",
        "category": "general",
        "seller_id": "s-08",
    },
    {
        "id": "sku-012",
        "title": "月销10万+ 爆款连衣裙",
        "description": "好评返现5元，晒图再送小礼品。",
        "category": "apparel",
        "seller_id": "s-08",
    },
    {
        "id": "sku-013",
        "title": "家用血压计 上臂式",
        "description": "测量准确，老人操作简单，大屏显示。",
        "category": "medical_device",
        "seller_id": "s-09",
        "attributes": {"注册证号": "国械注准20192070000", "产地": "江苏"},
    },
    {
        "id": "sku-014",
        "title": "维生素C咀嚼片",
        "description": "增强免疫力，预防感冒，抗癌防癌。",
        "category": "health_food",
        "seller_id": "s-09",
    },
    {
        "id": "sku-015",
        "title": "瑜伽垫 加厚防滑",
        "description": "TPE材质，双面防滑纹理，附收纳绑带。",
        "category": "general",
        "seller_id": "s-10",
    },
    {
        "id": "sku-016",
        "title": "原价999现价99 限时抢购",
        "description": "最后一天，错过再等一年。",
        "category": "general",
        "seller_id": "s-10",
    },
    {
        "id": 17,
        "title": "婴儿纸尿裤 超薄透气 L码",
        "description": "亲肤棉柔表层，12小时干爽。",
        "category": "baby",
        "seller_id": "s-11",
    },
    {
        "id": "sku-018",
        "title": "wifi路由器 千兆双频",
        "description": "穿墙能力强，适合三居室。",
        "category": "general",
        "seller_id": "s-11",
        "brand": "某某网络",
    },
]

#: Bad rows, in the order they appear after the good ones; their JSON Lines line numbers are 19..23.
BAD_JSONL_LINES = [
    '{"id": "sku-bad-json", "title": "缺右括号的行"',
    json.dumps({"title": "没有编号的商品 销量第一"}, ensure_ascii=False),
    json.dumps({"id": "sku-pets", "title": "猫粮 全网最好", "category": "pets"}, ensure_ascii=False),
    json.dumps({"id": "sku-empty", "title": "", "description": ""}, ensure_ascii=False),
    json.dumps(
        {
            "id": "sku-img",
            "title": "手工陶瓷杯",
            "description": "窑变釉色，每只略有不同。",
            "seller_id": "s-12",
            "images": ["/nonexistent/photos/cup.jpg"],
        },
        ensure_ascii=False,
    ),
]
BAD_EXPECTED = {  # line -> error code (the image row is checked; its image error is counted separately)
    19: "malformed_json",
    20: "missing_id",
    21: "unknown_category",
    22: "empty_text",
}
N_ROWS = len(GOOD) + len(BAD_JSONL_LINES)


def write_jsonl(path: Path, rows: list[dict[str, Any]] | None = None, bad: bool = True) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in (GOOD if rows is None else rows)]
    if bad:
        lines += BAD_JSONL_LINES
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    rows = GOOD if rows is None else rows
    fields = [
        "id",
        "title",
        "description",
        "category",
        "seller_id",
        "brand",
        "attributes.注册证号",
        "attributes.产地",
        "images",
    ]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for r in rows:
            attrs = r.get("attributes", {})
            w.writerow(
                [
                    r.get("id", ""),
                    r.get("title", ""),
                    r.get("description", ""),
                    r.get("category", ""),
                    r.get("seller_id", ""),
                    r.get("brand", ""),
                    attrs.get("注册证号", ""),
                    attrs.get("产地", ""),
                    "|".join(r.get("images", [])),
                ]
            )
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]] | None = None, row_group_size: int = 7) -> Path:
    rows = GOOD if rows is None else rows
    table = pa.Table.from_pylist(
        [
            {
                "id": str(r["id"]),
                "title": r.get("title"),
                "description": r.get("description"),
                "category": r.get("category"),
                "seller_id": r.get("seller_id"),
                "attributes": list(r.get("attributes", {}).items()) or None,
            }
            for r in rows
        ],
        schema=pa.schema(
            [
                ("id", pa.string()),
                ("title", pa.string()),
                ("description", pa.string()),
                ("category", pa.string()),
                ("seller_id", pa.string()),
                ("attributes", pa.map_(pa.string(), pa.string())),
            ]
        ),
    )
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def freeze_rules(tmp: Path) -> Path:
    """A private copy of the rules folder: a resumed or repeated run must see the same rules as the
    first (a checkpoint made with other rules is refused), even while someone edits rules/."""
    import shutil

    from moderation.paths import rules_dir

    target = tmp / "frozen-rules"
    shutil.copytree(rules_dir(), target)
    return target
