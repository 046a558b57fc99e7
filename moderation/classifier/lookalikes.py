"""Lawful look-alikes as training data: the same sentence read the exempt way, next to its violation.

Why: on the real enforcement cases the shipped model's weakness is lawful look-alikes (text that carries
the vocabulary of a violation but is permitted: 最近, 第一次, 最多可容纳, a specification limit, a launch
order, a comparison inside the seller's own range, a mandatory warning, an approved function claim).
This module writes them from material the repository already holds, each sourced:

- **frame pairs**: minimal pairs written from the exemptions of ../shared/LEGAL.md §3 (SAMR 执法指南
  2023) and the frames of ``rules/frames.yaml`` (usage tip, self-comparison, attitude, recipient,
  standard grade, title of work, negation, general remark, question) and §4's category-conditional
  claims. Each pair shares its product and most of its words; the lawful side is the exempt reading
  (label 0), the other side turns the same words into a claim about the goods (label 1), so the model
  has to learn the distinction, not the vocabulary;
- **lawful wording**: the ``lawful`` and ``not_lawful`` examples of ``rules/lawful_wording.yaml``
  (regulation-permitted or required wording, and the near misses next to it);
- **rule-pack passes**: the hand-checked ``pass`` examples of the rule packs' training rules (the hard
  negatives written next to each rule), as extra copies; rules held out of the generated test stay out.

Every text is passed through ``exclude`` (the real test set's near-duplicate check) before it is used.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .config import CATEGORY_ZH
from .data import Example
from .synth import HELD_OUT_FRACTION, rule_pack_examples, stable_hash


def _w(words: str) -> list[str]:
    return words.split()


#: Products by category: (name, category). Plain shop nouns, none of them a claim.
PRODUCTS: dict[str, list[str]] = {
    "general": _w(
        "保温杯 收纳盒 雨伞 拖把 台灯 行李箱 抱枕 晾衣架 垃圾桶 折叠椅 保鲜盒 充电宝 数据线 蓝牙耳机 电热水壶 加湿器 书包 帐篷 登山杖 储物柜"
    ),
    "apparel": _w("连衣裙 羽绒服 卫衣 牛仔裤 运动鞋 衬衫 毛衣 童装套装 袜子 围巾"),
    "food": _w("橄榄油 绿茶 大米 牛肉干 坚果礼盒 酱油 蜂蜜 燕麦片 红枣 咖啡豆"),
    "cosmetics": _w("面霜 洗发水 护手霜 精华液 洗面奶 润唇膏 身体乳 面膜 护发素 爽肤水"),
    "health_food": _w("维生素C片 钙片 鱼油软胶囊 蛋白粉 益生菌 叶黄素软糖 辅酶Q10 葡萄籽胶囊"),
    "baby": _w("纸尿裤 奶瓶 婴儿湿巾 儿童牙刷 婴儿推车 安抚奶嘴"),
    "furniture": _w("沙发 床垫 书桌 衣柜 办公椅 鞋柜"),
    "electronics": _w("吸尘器 电饭煲 空气炸锅 路由器 电风扇 剃须刀"),
}

#: Minimal pairs: (category or "*", lawful template, violation template). ``{p}`` product, ``{n}`` a number,
#: ``{y}`` a year. Both sides describe the same product in nearly the same words.
PAIRS: list[tuple[str, str, str]] = [
    # LEGAL §3 last paragraph: ordinary words that contain 最 / 第一.
    ("*", "最近很多人问的{p}，今天到货了", "全网最火的{p}，今天到货了"),
    ("*", "第一次买{p}，做工还可以", "{p}销量第一，做工最好"),
    ("*", "第一次用这个牌子的{p}", "第一品牌的{p}"),
    ("*", "最后一步：拧紧{p}的盖子", "{p} 史上最低价 最后一步到位"),
    ("*", "最初是朋友推荐的{p}", "最顶级的{p}"),
    ("*", "唯一的缺点是{p}有点重", "全网唯一正品{p}"),
    ("*", "第一步：拆开{p}包装；第二步：安装", "第一步就领先全行业的{p}"),
    ("*", "第二代{p} 比第一代轻了{n}克", "{p} 全国第一 比同行轻{n}克"),
    ("general", "{p} 最多可容纳{n}件衣物", "{p} 最好用 容纳{n}件衣物"),
    ("general", "{p} 最高承重{n}kg", "{p} 最高品质 承重{n}kg"),
    ("general", "{p} 最大功率{n}W", "{p} 功率最强 {n}W 行业第一"),
    ("general", "{p} 最低工作温度零下{n}度", "{p} 全网最低价 零下{n}度可用"),
    ("electronics", "{p} 最大功率{n}W 最长续航{n}分钟", "{p} 功率世界第一 续航最强{n}分钟"),
    ("furniture", "{p} 最多可坐{n}人 最大承重{n}0斤", "{p} 最舒适的{p} 国家级品质"),
    ("apparel", "{p} 尺码最大到{n}XL", "{p} 最好穿的{p} 全网第一"),
    # §3 item 7: time or space order.
    ("*", "{p} 新品首发 {n}月上市", "{p} 全球首创 {n}月上市"),
    ("*", "{p} {y}年新款 首发", "{p} {y}年最强款 独家首创"),
    # §3 item 2, frames.self_comparison.
    ("*", "本店最新款{p}", "全网最好的{p}"),
    ("*", "本系列中最轻的一款{p}", "同类产品中最轻的{p} 无人能比"),
    ("*", "{p} 三档配置中最便宜的一档", "{p} 全网最便宜 比别家都便宜"),
    ("*", "店里{p}中容量最大的一款", "市面上{p}中容量最大的一款 无人能及"),
    # §3 item 1, frames.attitude_goal.
    ("*", "致力于做最好的{p}", "{p} 做工最好 行业领先"),
    ("*", "顾客第一 服务至上 {p}", "{p} 品质第一 国家级产品"),
    ("*", "力争做让您满意的{p}", "{p} 百分百满意 绝对第一"),
    # frames.recipient.
    ("*", "送给最爱的人 {p}", "最好的{p} 送人首选"),
    ("*", "给最重要的她 {p} 礼盒", "{p} 礼盒 世界级顶级品质"),
    # §3 item 3, frames.usage_tip.
    ("food", "{p} 最佳食用期{n}个月 开封后冷藏", "{p} 最佳品质 全国销量第一"),
    ("food", "{p} 冲泡最佳水温{n}度", "{p} 口感最佳 全网第一"),
    ("cosmetics", "{p} 最佳使用时间：睡前", "{p} 效果最好 一用就白"),
    # §3 item 4, frames.standard_grade.
    ("food", "特级初榨{p} 执行标准GB/T 23347", "顶级{p} 世界第一"),
    ("food", "一级{p} 执行标准GB/T 14456", "最好的{p} 极品中的极品"),
    ("furniture", "{p} E0级板材 执行标准GB/T 39600", "{p} 零甲醛 最环保 绝对无毒"),
    ("apparel", "{p} 100%棉 A类婴幼儿用品", "{p} 纯棉 抗菌防螨 治疗湿疹"),
    # §3 item 5, frames.title_of_work.
    ("*", "《最好的我们》同款{p}", "最好的{p} 排名第一"),
    # frames.negation.
    ("*", "不是最便宜的{p}，但用料扎实", "是最便宜的{p}，用料最扎实"),
    ("*", "不敢说最好，{p}做工认真", "{p}做工最好 没有之一"),
    # frames.general_remark, question_or_advice.
    ("apparel", "今年最流行的颜色 {p}", "今年最好的{p} 全网最低"),
    ("*", "哪款{p}最适合你？看尺码表", "这款{p}最适合你 效果最好"),
    # §4 category-conditional claims and mandatory statements.
    (
        "health_food",
        "{p} 国食健注G2019{n} 有助于增强免疫力 本品不能代替药物",
        "{p} 国食健注G2019{n} 增强免疫力 预防感冒 治疗疾病",
    ),
    (
        "health_food",
        "{p} 保健食品是食品，不是药物，不能代替药物治疗疾病",
        "{p} 保健食品 可以代替药物治疗疾病",
    ),
    (
        "health_food",
        "{p} 国食健注G2020{n} 有助于改善睡眠 每日{n}粒",
        "{p} 国食健注G2020{n} 根治失眠 每日{n}粒",
    ),
    (
        "health_food",
        "{p} 卫食健字{n}号 缓解体力疲劳 适宜人群：易疲劳者",
        "{p} 卫食健字{n}号 治疗慢性疲劳 三天见效",
    ),
    ("cosmetics", "{p} 补水保湿 改善干燥", "{p} 补水保湿 治疗湿疹"),
    ("cosmetics", "{p} 舒缓肌肤 滋润保湿", "{p} 消炎抗敏 修复皮炎"),
    ("cosmetics", "{p} 去屑 清洁头皮 柔顺发丝", "{p} 生发 防脱 治疗脱发"),
    ("cosmetics", "{p} 控油 清洁毛孔", "{p} 杀菌 祛痘 七天去痘印"),
    ("food", "{p} 每100g含蛋白质{n}g", "{p} 高蛋白 降血压 降血糖"),
    ("food", "{p} 添加维生素C", "{p} 增强免疫力 防感冒"),
    ("baby", "{p} 适用于{n}个月以上宝宝", "{p} 预防宝宝湿疹 医生推荐"),
    ("baby", "婴幼儿以母乳喂养为主 {p}", "{p} 比母乳更好 最营养"),
    ("*", "{p} 请仔细阅读说明书 按说明使用", "{p} 无需说明书 包治百病"),
    ("*", "{p} 图片仅供参考，以实物为准", "{p} 图片真实 全网最低价"),
    ("*", "{p} 效果因人而异", "{p} 百分之百有效 无效退款"),
    ("*", "{p} 价格以订单结算页为准", "{p} 全网最低价 买贵十倍赔"),
]


def _fill(template: str, product: str, rng: random.Random) -> str:
    n = rng.choice([2, 3, 5, 6, 8, 10, 12, 15, 20, 30, 50, 100, 120, 150])
    return (
        template.replace("{p}", product)
        .replace("{n}", str(n))
        .replace("{y}", str(rng.choice([2024, 2025, 2026])))
    )


#: Product groups without a category of their own are listed as general merchandise.
_AS_GENERAL = {"furniture", "electronics"}


def _tag(text: str, category: str) -> str:
    category = "general" if category in _AS_GENERAL else category
    return f"【{CATEGORY_ZH[category]}】{text}" if category in CATEGORY_ZH else text


def _shapes(text: str, category: str, rng: random.Random) -> str:
    """The shape of the text: a bare quote with the category tag (how cases read) or a title with filler."""
    r = rng.random()
    if r < 0.5:
        return _tag(text, category)
    filler = rng.sample(
        ["包邮", "现货", "正品", "新款", "家用", "热卖", "品质保障", "顺丰", "厂家直发", "实拍"], 2
    )
    if r < 0.8:
        return _tag(f"{text} {' '.join(filler)}", category)
    return _tag(f"{' '.join(filler)} {text}", category)


def frame_pairs(n_pairs: int, seed: int) -> list[Example]:
    """``n_pairs`` minimal pairs (2 examples each), templates and products drawn uniformly."""
    rng = random.Random(f"{seed}:lookalike-pairs")
    out: list[Example] = []
    for i in range(n_pairs):
        k = i % len(PAIRS)
        cat_spec, lawful, unlawful = PAIRS[k]
        category = rng.choice(list(PRODUCTS)) if cat_spec == "*" else cat_spec
        product = rng.choice(PRODUCTS[category])
        state = rng.getstate()
        for label, template in ((0, lawful), (1, unlawful)):
            rng.setstate(state)  # the same number and shape on both sides
            text = _shapes(_fill(template, product, rng), category, rng)
            out.append(_lookalike(text, label, f"lookalike:{k}", "lookalike:frames"))
    return out


def _lookalike(text: str, label: int, group: str, source: str) -> Example:
    """One side of a look-alike pair: the claim is family ``lookalike``, its lawful twin ``lawful``."""
    return Example(
        text=text, label=label, family="lookalike" if label else "lawful", group=group, source=source
    )


def lawful_wording_examples(path: Path) -> list[Example]:
    """The lawful and not-lawful examples of rules/lawful_wording.yaml, with their category tags."""
    d: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: list[Example] = []
    for s in d.get("sets", []):
        ex = s.get("examples") or {}
        for key, label in (("lawful", 0), ("not_lawful", 1)):
            for e in ex.get(key) or []:
                text, cat = (
                    (e, "general") if isinstance(e, str) else (e["text"], e.get("category", "general"))
                )
                out.append(_lookalike(_tag(text, cat), label, f"wording:{s['id']}", "lookalike:wording"))
    return out


def rule_pass_examples(packs_dir: Path) -> list[Example]:
    """The ``pass`` examples of the training rules (held-out rules stay out, as in synth.build_dataset)."""
    out: list[Example] = []
    for text, label, _fam, rid, cat in rule_pack_examples(packs_dir):
        if label or stable_hash(rid) < HELD_OUT_FRACTION:
            continue
        out.append(_lookalike(_tag(text, cat or ""), 0, f"rule:{rid}", "lookalike:rule_pass"))
    return out


def lookalike_examples(
    n_pairs: int,
    seed: int,
    packs_dir: Path,
    wording_path: Path,
    wording_repeat: int = 3,
    pass_repeat: int = 2,
    exclude: Callable[[str], bool] | None = None,
) -> tuple[list[Example], int]:
    """Frame pairs, lawful-wording examples (×``wording_repeat``) and rule-pack passes (×``pass_repeat``,
    on top of the copies the generated set already holds). Returns (examples, dropped as near
    duplicates of real test items)."""
    items = frame_pairs(n_pairs, seed)
    items += lawful_wording_examples(wording_path) * wording_repeat
    items += rule_pass_examples(packs_dir) * pass_repeat
    if exclude is None:
        return items, 0
    kept = [e for e in items if not exclude(e.text.split("】", 1)[-1])]
    return kept, len(items) - len(kept)
