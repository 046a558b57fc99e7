"""Precision and recall of the platform-rule families on the blind-labelled real lines.

    .venv/bin/python scripts/eval_platform.py [--show FAMILY] [--json OUT]

Reads the primary blind labels (tests/real/labels/, every Taobao title and 800 app descriptions, text from
../shared/corpora by reference) with moderation/evaluation/realsets.py, checks every line with the rules
engine (the line is the listing's title, in the labelled category) and scores, per family, a line-level
decision: predicted = the line has at least one finding of that family; gold = the labeller gave that
family. Figures are given for the titles (the bar of issue 15: precision >= 0.9 per family), for the app
descriptions, by split (dev / test, fixed by realsets), and the hard negatives of
../shared/PLATFORM_RULES.md are checked as listings of their own (each must have no finding of these
families). Only the five platform families are scored here: the advertising-law families have their own
evaluation (scripts/eval_rules.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from moderation.evaluation.realsets import RealItem, load_corpus_labels  # noqa: E402
from moderation.rules.engine import RulesEngine  # noqa: E402
from moderation.schema import Listing  # noqa: E402

FAMILIES = (
    "counterfeit_signals",
    "brand_keyword_misuse",
    "name_and_image_use",
    "off_platform_diversion",
    "prohibited_goods",
)

#: The hard negatives listed in ../shared/PLATFORM_RULES.md, written as listings (title, attributes).
HARD_NEGATIVES: tuple[tuple[str, dict[str, str]], ...] = (
    ("腾讯QQ币100个 Q币100元 自动充值秒到", {}),
    ("QQ会员12个月 官方直充 QQ超级会员年卡", {}),
    ("支持微信支付 支付宝 货到付款", {}),
    ("游戏点卡 支持微信区 安卓苹果通用", {}),
    ("智能手环 微信来电提醒 心率血压监测", {}),
    ("耐克官方正品 Nike Air 跑步鞋 品牌直营", {"品牌": "耐克"}),
    ("阿迪达斯官方授权 三叶草卫衣 正品保证", {"品牌": "阿迪达斯"}),
    ("海尔品牌直营 滚筒洗衣机 10公斤", {"品牌": "海尔"}),
    ("情侣同款卫衣 宽松连帽 秋冬加厚", {}),
    ("亲子同款 母女装 一家三口 夏装", {}),
    ("同款不同色 纯棉T恤 男女同款", {}),
    ("华为 Mate 40 Pro 型号NOH-AN00 货号13817979586", {}),
    ("ISBN 9787115428028 人民邮电出版社 Python编程", {}),
    ("月销13817笔 爆款保温杯 已售13800件", {}),
    ("售价138.00元 原价1388元 充电宝13800mAh", {}),
    ("张小泉菜刀 家用切片刀 不锈钢厨房刀具", {}),
    ("十八子作水果刀 厨师刀 厨房刀具套装", {}),
    ("裁缝剪刀 家用剪刀 理发剪 不锈钢", {}),
    ("飞利浦电动剃须刀 男士刮胡刀 吉列剃须刀片", {}),
    ("儿童玩具剑 发光 宝剑 塑料 cos道具刀", {}),
    ("仿真花 客厅装饰 假花 绢花 仿真植物", {}),
    ("仿皮 PU皮沙发 仿皮手套 人造革", {}),
    ("仿古砖 仿古家具 实木 中式仿古", {}),
    ("外贸原单 纯棉童装 清仓", {}),
    ("翡翠a货 天然缅甸玉 吊坠 附证书", {}),
    ("象牙白 粉底液 自然色", {}),
    ("猛犸象牙 手串 国检证书", {}),
    ("婴儿监听器 宝宝看护器 哭声提醒", {}),
    ("可开发票 正规公司 全国联保", {}),
    ("已打疫苗 纯种英短蓝猫 幼猫活体", {}),
    ("汽车排气消音器 摩托车消声器 改装", {}),
    ("手枪钻 充电式电钻 锂电", {}),
    ("防偷拍检测器 酒店防摄像头探测", {}),
    ("明星同款墨镜 偏光太阳镜", {}),
    ("李宁运动鞋 李宁官方旗舰店", {"品牌": "李宁"}),
)


def _check(engine: RulesEngine, item: RealItem) -> set[str]:
    listing = Listing(id=item.id, title=item.text, category=item.category or "general")
    return {f.family for f in engine.find(listing) if f.family in FAMILIES}


def _pr(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {
        "tp": tp, "fp": fp, "fn": fn,
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
    }


def evaluate(engine: RulesEngine, items: list[RealItem]) -> tuple[dict[str, Any], dict[str, list[tuple[str, RealItem]]]]:
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    errors: dict[str, list[tuple[str, RealItem]]] = defaultdict(list)
    for item in items:
        corpus = "titles" if item.source.startswith("taobao") else "apps"
        predicted = _check(engine, item)
        gold = set(item.families) & set(FAMILIES)
        for family in FAMILIES:
            p, g = family in predicted, family in gold
            for key in ((corpus, "all", family), (corpus, item.split, family), ("all", "all", family)):
                c = counts[key]
                c[0] += p and g
                c[1] += p and not g
                c[2] += g and not p
            if p != g:
                errors[family].append(("FP" if p else "FN", item))
    out: dict[str, Any] = {}
    for (corpus, split, family), (tp, fp, fn) in sorted(counts.items()):
        out.setdefault(corpus, {}).setdefault(split, {})[family] = _pr(tp, fp, fn)
    return out, errors


def hard_negatives(engine: RulesEngine) -> list[tuple[str, list[str]]]:
    failures = []
    for i, (title, attributes) in enumerate(HARD_NEGATIVES):
        listing = Listing(id=f"hn-{i}", title=title, attributes=attributes)
        hits = [f"{f.rule}:{f.text}" for f in engine.find(listing) if f.family in FAMILIES]
        if hits:
            failures.append((title, hits))
    return failures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--show", metavar="FAMILY", help="list the false positives and misses of one family")
    ap.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    engine = RulesEngine.load()
    items = load_corpus_labels()
    figures, errors = evaluate(engine, items)
    print(f"{len(items)} labelled lines")
    header = f"{'family':24} {'P':>6} {'R':>6} {'tp':>4} {'fp':>4} {'fn':>4}"
    for corpus, split in (("titles", "all"), ("titles", "dev"), ("titles", "test"), ("apps", "all"), ("all", "all")):
        print(f"\n{corpus} / {split}\n{header}")
        for family in FAMILIES:
            f = figures.get(corpus, {}).get(split, {}).get(family)
            if f is None:
                continue
            fmt = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
            print(f"{family:24} {fmt(f['precision'])} {fmt(f['recall'])} {f['tp']:4} {f['fp']:4} {f['fn']:4}")
    failures = hard_negatives(engine)
    print(f"\nhard negatives of PLATFORM_RULES.md: {len(HARD_NEGATIVES) - len(failures)}/{len(HARD_NEGATIVES)} pass")
    for title, hits in failures:
        print(f"  FAIL {title}: {hits}")
    if args.show:
        for kind, item in errors.get(args.show, []):
            print(f"{kind} {item.id} [{item.split}] {item.text[:110]} | gold={list(item.families)}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "hard_negative_failures": failures}, ensure_ascii=False, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
