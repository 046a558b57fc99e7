"""Demo data for ``moderation serve --demo``: users with printed passwords and real checked listings.

The listings are the repository's examples plus the realistic ones below; each goes through the
Checker, so every finding in the console is what the rules really report, not canned data.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from moderation.api.accounts import Accounts
from moderation.paths import REPO_ROOT
from moderation.queue import ReviewQueue
from moderation.queue.errors import Conflict
from moderation.schema import Listing

DEMO_USERS = (
    ("lead", "lead"),
    ("reviewer1", "reviewer"),
    ("reviewer2", "reviewer"),
    ("triage", "triage"),
    ("auditor", "auditor"),
    ("admin", "admin"),
)

DEMO_LISTINGS: tuple[dict[str, Any], ...] = (
    {
        "id": "demo-101",
        "title": "祛痘特效面霜 三天见效 医学护肤",
        "description": "专治痘痘粉刺，消炎杀菌，无任何副作用。",
        "category": "cosmetics",
        "seller_id": "s-11",
    },
    {
        "id": "demo-102",
        "title": "纯牛奶 250ml×24盒 整箱",
        "description": "每100ml含蛋白质3.2g，早餐搭配。",
        "category": "food",
        "seller_id": "s-12",
    },
    {
        "id": "demo-103",
        "title": "顶级大红袍 极品岩茶 礼盒装",
        "description": "史无前例的口感，喝了降血压、降血脂。",
        "category": "food",
        "seller_id": "s-13",
    },
    {
        "id": "demo-104",
        "title": "儿童学习桌 可升降 护眼",
        "description": "最高可升至76cm，桌面倾斜角度0-45°可调。",
        "category": "baby",
        "seller_id": "s-14",
    },
    {
        "id": "demo-105",
        "title": "考研英语一对一 保过班",
        "description": "不过全额退款，命题组专家亲自授课。",
        "category": "education",
        "seller_id": "s-15",
    },
    {
        "id": "demo-106",
        "title": "黄金投资计划 年化收益15% 保本保息",
        "description": "稳赚不赔，零风险，银行级安全保障。",
        "category": "finance",
        "seller_id": "s-16",
    },
    {
        "id": "demo-107",
        "title": "地铁口旁学区房 升值潜力巨大",
        "description": "距离市中心仅10分钟车程，投资回报率年均20%。",
        "category": "real_estate",
        "seller_id": "s-17",
    },
    {
        "id": "demo-108",
        "title": "复合肥 亩产翻倍 增产50%",
        "description": "保证增收，用了就丰收。",
        "category": "agriculture",
        "seller_id": "s-18",
    },
    {
        "id": "demo-109",
        "title": "全网销量第一 国家级品质 智能电饭煲",
        "description": "原价999元，现价199元，仅限今天！",
        "category": "general",
        "seller_id": "s-19",
    },
    {
        "id": "demo-110",
        "title": "北欧风实木餐桌 1.4米",
        "description": "桌面采用白蜡木，承重约80kg，适合4人使用。",
        "category": "general",
        "seller_id": "s-19",
    },
    {
        "id": "demo-111",
        "title": "维生素C泡腾片 增强免疫力 预防感冒",
        "description": "医生推荐，治疗感冒效果显著。",
        "category": "health_food",
        "seller_id": "s-20",
    },
    {
        "id": "demo-112",
        "title": "降压神器 血压仪",
        "description": "根治高血压，治愈率100%，专家推荐。",
        "category": "medical_device",
        "seller_id": "s-21",
    },
    {
        "id": "demo-113",
        "title": "军用级户外手电 部队专供",
        "description": "超亮强光，防水防摔。",
        "category": "general",
        "seller_id": "s-22",
    },
    {
        "id": "demo-114",
        "title": "招财貔貅手链 转运辟邪",
        "description": "佩戴后财运亨通，驱邪避凶。",
        "category": "general",
        "seller_id": "s-23",
    },
    {
        "id": "demo-115",
        "title": "零添加 婴儿米粉 有机",
        "description": "不添加任何防腐剂，宝宝放心吃。",
        "category": "baby",
        "seller_id": "s-24",
    },
    {
        "id": "demo-116",
        "title": "好评返现5元 抽纸 10包",
        "description": "晒图好评联系客服返现。",
        "category": "general",
        "seller_id": "s-25",
    },
    {
        "id": "demo-117",
        "title": "美白祛斑霜 一周淡斑",
        "description": "国际大牌同款，效果秒杀某品牌。",
        "category": "cosmetics",
        "seller_id": "s-26",
    },
    {
        "id": "demo-118",
        "title": "电子烟 薄荷味 烟弹",
        "description": "口感顺滑，戒烟神器。",
        "category": "tobacco",
        "seller_id": "s-27",
    },
    {
        "id": "demo-119",
        "title": "酱香型白酒 53度 500ml",
        "description": "喝出健康，解乏助眠，开车也能来一杯。",
        "category": "alcohol",
        "seller_id": "s-28",
    },
    {
        "id": "demo-120",
        "title": "专利技术 负离子吹风机",
        "description": "采用专利技术，90%的用户表示头发更顺滑。",
        "category": "general",
        "seller_id": "s-29",
    },
    {
        "id": "demo-121",
        "title": "第一次养猫必备 猫砂盆",
        "description": "唯一的缺点是体积稍大。最近新增粉色款。",
        "category": "general",
        "seller_id": "s-30",
    },
    {
        "id": "demo-122",
        "title": "最佳 zui好 保温杯 ＮＯ．１",
        "description": "全国销量领先。",
        "category": "general",
        "seller_id": "s-19",
    },
)


def load_listings(limit: int = 34) -> list[dict[str, Any]]:
    examples = Path(REPO_ROOT) / "examples" / "listings.jsonl"
    rows: list[dict[str, Any]] = []
    if examples.exists():
        rows = [
            json.loads(line) for line in examples.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    return (rows + list(DEMO_LISTINGS))[:limit]


def seed(queue: ReviewQueue, checker: Any, *, echo: Any = print) -> dict[str, str]:
    """Create the demo users (fresh random passwords) and queue every non-pass demo listing."""
    accounts = Accounts(queue.db)
    credentials: dict[str, str] = {}
    for username, role in DEMO_USERS:
        password = secrets.token_urlsafe(9)
        try:
            accounts.create_user(username, role, password)
            credentials[username] = password
        except Conflict:
            continue  # an earlier demo run created it; its password was printed then
    try:
        actor = accounts.create_user("demo-service", "service")
    except Conflict:
        actor = accounts.get_user("demo-service")
    queued = 0
    listings = load_listings()
    results = checker.check_many(listings)
    for raw, result in zip(listings, results, strict=True):
        if result.error is not None:
            continue
        out = queue.intake.enqueue(Listing.model_validate(raw), result, actor, source="demo")
        queued += out["action"] in ("created", "attached")
    echo(f"demo: {len(listings)} listings checked, {queued} queued for review")
    for username, password in credentials.items():
        role = dict(DEMO_USERS)[username]
        echo(f"demo user  {username:<10} role {role:<9} password {password}")
    return credentials
