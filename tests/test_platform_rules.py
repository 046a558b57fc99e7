"""Issue 15: platform-rule families beside the advertising-law ones.

The packs' own examples run in tests/test_rule_examples.py; here: the hard negatives of
../shared/PLATFORM_RULES.md as whole listings, the actions the platform rules ask for, the exemptions
that come from the listing (its own brand, an authorisation attribute), contact ids in disguise, the
masking of contact ids, the per-platform switches of rules/policy.yaml, and the lexicons' provenance.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation.paths import REPO_ROOT
from moderation.rules.engine import RulesEngine
from moderation.rules.masking import contact_spans, mask_contacts, mask_finding, mask_result, mask_value
from moderation.rules.pack import RulePackError, load_pack
from moderation.rules.policy import Policy, load_policy
from moderation.schema import Finding, Listing

FAMILIES = (
    "counterfeit_signals", "brand_keyword_misuse", "name_and_image_use", "off_platform_diversion",
    "prohibited_goods",
)  # fmt: skip
_ENGINE = RulesEngine.load()


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


def _findings(title: str, **kw: object) -> list[Finding]:
    return [f for f in _ENGINE.find(Listing(id="t", title=title, **kw)) if f.family in FAMILIES]


def _rules(title: str, **kw: object) -> set[str]:
    return {f.rule for f in _findings(title, **kw)}


# -- the hard negatives ----------------------------------------------------------------------------


def test_every_hard_negative_of_platform_rules_passes() -> None:
    assert len(HARD_NEGATIVES) >= 30
    failures = []
    for title, attributes in HARD_NEGATIVES:
        hits = [f"{f.rule}:{f.text}" for f in _findings(title, attributes=attributes)]
        if hits:
            failures.append((title, hits))
    assert failures == []


@pytest.mark.parametrize(
    "title",
    [
        "腾讯QQ币100个 Q币100元 自动充值",
        "QQ会员 年卡 官方直充",
        "支持微信支付 支付宝",
        "游戏点卡 支持微信区",
        "智能手环 微信来电提醒",
        "情侣同款 亲子同款 同款不同色 卫衣",
        "ISBN 978-7-115-42802-8 人民邮电出版社",
        "货号13817979586 型号KD13817979586 月销13800笔 售价1388元",
        "菜刀 水果刀 剪刀 剃须刀 玩具剑",
        "仿真花 仿皮 仿古",
    ],
)
def test_hard_negative_titles_have_no_platform_finding(title: str) -> None:
    assert _findings(title) == []


def test_own_brand_words_pass_with_the_listings_brand() -> None:
    assert _findings("耐克官方正品 品牌直营 官方授权 耐克同款", brand="耐克") == []
    assert _findings("优衣库同款 摇粒绒", attributes={"品牌": "优衣库"}) == []
    assert "brand_keyword.brand_same_style" in _rules("优衣库同款 摇粒绒")


# -- actions ---------------------------------------------------------------------------------------


def _action(title: str, rule: str, **kw: object) -> str | None:
    return next((f.action for f in _findings(title, **kw) if f.rule == rule), None)


def test_counterfeit_word_with_a_brand_blocks_and_without_one_is_reviewed() -> None:
    assert _action("高仿耐克 篮球鞋", "counterfeit.replica_word_with_brand") == "block"
    assert _action("高仿包包 斜挎包", "counterfeit.replica_word") == "review"
    assert "counterfeit.replica_word_with_brand" not in _rules("高仿包包 斜挎包")


def test_authorisation_attribute_exempts_counterfeit_and_name_use() -> None:
    assert _findings("耐克 复刻款 篮球鞋", attributes={"品牌授权": "耐克授权书NK2024"}) == []
    assert "name_image.person_endorsement" in _rules("杨幂同款 针织衫")
    assert _findings("杨幂同款 针织衫", attributes={"肖像授权": "授权书 2024-001"}) == []


def test_full_contact_id_blocks_and_invitation_is_reviewed() -> None:
    assert _action("订购电话 13817979586", "offplatform.mobile_number") == "block"
    assert _action("咨询微信：love520abc", "offplatform.messenger_id") == "block"
    assert _action("私聊优惠 量大从优", "offplatform.invitation") == "review"
    assert _action("见 www.shop-abc.com", "offplatform.external_link") == "review"


def test_prohibited_goods_block() -> None:
    assert _action("仿真枪 金属 可发射", "prohibited.firearms") == "block"
    assert _action("犬用五联疫苗 送针筒", "prohibited.special_drugs") == "block"
    assert _action("针孔摄像头 无线 超小", "prohibited.covert_devices") == "block"


def test_every_platform_rule_cites_a_verified_article_or_platform_policy() -> None:
    verified = ("商标法第五十七条", "反不正当竞争法第六条", "广告法第三十三条", "电子商务法第十三条")
    rules = [r for r in _ENGINE.rules if r.family in FAMILIES]
    assert len(rules) >= 20
    for rule in rules:
        assert rule.law.startswith(verified) or rule.law.startswith("平台规则："), (rule.id, rule.law)


# -- contact ids in disguise -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        "联系 138 1798 7958",
        "电话 138-1798-7958",
        "订购 ①③⑧①⑦⑨⑦⑨⑤⑧⑥",
        "手机 一三八一七九七九五八六",
        "手机 壹叁捌壹柒玖柒玖伍捌陆",
        "电话 l38l7979586",
        "＋８６ １３８１７９７９５８６",
    ],
)
def test_disguised_mobile_numbers_are_found(title: str) -> None:
    assert "offplatform.mobile_number" in _rules(title)


@pytest.mark.parametrize(
    "title",
    [
        "加我微信：love520abc",
        "v信 shop8888",
        "VX: shop8888",
        "威信 meimei1314",
        "薇信：xiaomei999",
        "加V：tb123456",
        "扣扣 2946205548",
        "Q群 68973394",
        "微 信 号 ｓｈｏｐ＿２０２４",
    ],
)
def test_disguised_messenger_ids_are_found(title: str) -> None:
    assert "offplatform.messenger_id" in _rules(title)


# -- masking ---------------------------------------------------------------------------------------


def test_mask_value_keeps_length_and_a_little_of_each_end() -> None:
    assert mask_value("13817979586") == "138******86"
    assert mask_value("138 1798 7958") == "138 **** **58"
    assert len(mask_value("love520abc")) == len("love520abc")
    assert mask_value("ab") == "**"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("江浙沪洒水车出租13817979586绿化", "13817979586"),
        ("订购请拨 ①③⑧①⑦⑨⑦⑨⑤⑧⑥ 包邮", "①③⑧①⑦⑨⑦⑨⑤⑧⑥"),
        ("手机 一三八一七九七九五八六", "一三八一七九七九五八六"),
        ("加我微信：love520abc 谢谢", "love520abc"),
        ("咨询扣扣 2946205548", "2946205548"),
        ("电话021-54143212", "021-54143212"),
        ("见 www.shop-abc.com", "shop-abc"),
    ],
)
def test_mask_contacts_hides_the_id_in_the_original_text(text: str, hidden: str) -> None:
    masked = mask_contacts(text)
    assert hidden not in masked
    assert len(masked) == len(text)
    assert "*" in masked
    # the words around the id stay readable
    assert masked[:2] == text[:2]


@pytest.mark.parametrize(
    "text", ["ISBN 9787115428028", "腾讯QQ币100个", "售价1388元 月销13800笔", "支持微信支付"]
)
def test_mask_contacts_leaves_lawful_numbers_alone(text: str) -> None:
    assert mask_contacts(text) == text
    assert contact_spans(text) == []


def test_mask_finding_masks_text_and_message_of_contact_findings_only() -> None:
    findings = _ENGINE.find(Listing(id="m", title="洒水车出租13817979586 高仿耐克"))
    contact = next(f for f in findings if f.family == "off_platform_diversion")
    other = next(f for f in findings if f.family == "counterfeit_signals")
    masked = mask_finding(contact)
    assert "13817979586" not in masked.text and "13817979586" not in masked.message
    assert (masked.start, masked.end) == (contact.start, contact.end)
    assert mask_finding(other) is other
    as_dict = mask_finding(contact.model_dump())
    assert "13817979586" not in as_dict["text"]
    result = mask_result({"id": "m", "findings": [contact.model_dump(), other.model_dump()]})
    assert "13817979586" not in str(result)


# -- per-platform switches -------------------------------------------------------------------------


def _policy(tmp_path: Path, body: str) -> Policy:
    path = tmp_path / "policy.yaml"
    path.write_text(body, encoding="utf-8")
    return load_policy(path)


def _rule(rule_id: str):
    return next(r for r in _ENGINE.rules if r.id == rule_id)


def test_shipped_policy_switches_every_platform_family_on() -> None:
    policy = load_policy(REPO_ROOT / "rules" / "policy.yaml")
    for rule in _ENGINE.rules:
        if rule.family in FAMILIES:
            assert policy.enabled(rule)
            assert policy.action_for(rule) == (rule.action or policy.severity_action[rule.severity])
    assert policy.is_brand_owner("demo-nike-store", "NIKE")
    assert not policy.is_brand_owner("someone-else", "耐克")


def test_switching_a_family_off_makes_its_findings_pass(tmp_path: Path) -> None:
    policy = _policy(tmp_path, "platform_rules:\n  families:\n    off_platform_diversion: off\n")
    rule = _rule("offplatform.mobile_number")
    assert policy.action_for(rule) == "pass"
    assert not policy.enabled(rule)
    assert policy.action_for(_rule("prohibited.firearms")) == "block"
    engine = RulesEngine(_ENGINE.packs, policy)
    actions = {f.action for f in engine.find(Listing(id="s", title="电话13817979586"))}
    assert actions == {"pass"}


def test_a_rule_switch_wins_over_its_family(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        "platform_rules:\n  families:\n    brand_keyword_misuse: off\n"
        "  rules:\n    brand_keyword.negated_brand: block\n    brand_keyword.other_marketplace: 'on'\n",
    )
    assert policy.action_for(_rule("brand_keyword.negated_brand")) == "block"
    assert policy.action_for(_rule("brand_keyword.stacked_brands")) == "pass"
    assert policy.enabled(_rule("brand_keyword.other_marketplace"))
    assert policy.action_for(_rule("brand_keyword.other_marketplace")) == "review"


def test_rule_action_still_wins_over_platform_switches(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path,
        "rule_action:\n  offplatform.mobile_number: review\n"
        "platform_rules:\n  families:\n    off_platform_diversion: off\n",
    )
    assert policy.action_for(_rule("offplatform.mobile_number")) == "review"


@pytest.mark.parametrize(
    "body",
    [
        "platform_rules: [a]\n",
        "platform_rules:\n  families:\n    off_platform_diversion: maybe\n",
        "platform_rules:\n  unknown: {}\n",
        "platform_rules:\n  brand_owners:\n    s1: 3\n",
    ],
)
def test_malformed_platform_switches_are_refused(tmp_path: Path, body: str) -> None:
    with pytest.raises(RulePackError):
        _policy(tmp_path, body)


def test_brand_owner_allow_list(tmp_path: Path) -> None:
    policy = _policy(
        tmp_path, "platform_rules:\n  brand_owners:\n    shop-1: [耐克, Nike]\n    shop-2: 海尔\n"
    )
    assert policy.is_brand_owner("shop-1", "ＮＩＫＥ")
    assert policy.is_brand_owner("shop-2", "海尔")
    assert policy.owner_exempt(_rule("counterfeit.replica_word"), "shop-1", "耐克")
    assert not policy.owner_exempt(_rule("prohibited.firearms"), "shop-1", "耐克")
    assert not policy.is_brand_owner(None, "耐克")


# -- lexicons --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "brands",
        "people",
        "marketplaces",
        "controlled_firearms",
        "controlled_knives",
        "controlled_self_defence",
        "controlled_special_drugs",
        "controlled_wildlife",
        "controlled_covert_devices",
        "controlled_invoices",
        "controlled_personal_data",
    ],
)
def test_platform_lexicons_say_where_their_words_come_from(name: str) -> None:
    lines = (REPO_ROOT / "rules" / "lexicons" / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    sources = [line for line in lines if line.startswith("#") and "source:" in line.lower()]
    assert sources, name
    words = [line for line in lines if line.strip() and not line.startswith("#")]
    assert words and len(set(words)) == len(words), name


def test_brand_lexicon_rows_name_their_source() -> None:
    lines = (REPO_ROOT / "rules" / "lexicons" / "brands.txt").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]
    assert len(rows) >= 400
    assert {row[1] for row in rows} <= {"ner-dev", "gazetteer", "curated"}


@pytest.mark.parametrize(
    ("title", "split"),
    [
        ("古*驰 女士斜挎包", True),
        ("香❤奈❤儿 链条包", True),
        ("N I K E 气垫跑鞋", True),
        ("古驰 女士斜挎包 官方授权", False),
        ("H&M 女装 针织开衫", False),
        ("Levi's 501 牛仔裤", False),
        ("九阳豆浆机 d j i3r-p9", False),
    ],
)
def test_a_brand_broken_up_by_symbols_is_a_counterfeit_signal(title: str, split: bool) -> None:
    """Genuine sellers write their brand whole; the split itself is what counterfeit.split_brand reports."""
    found = {f.rule for f in _ENGINE.find(Listing(id="t", title=title, category="general"))}
    assert ("counterfeit.split_brand" in found) is split


def test_obfuscated_must_be_a_boolean(tmp_path: Path) -> None:
    pack = tmp_path / "counterfeit_signals.yaml"
    pack.write_text(
        "family: counterfeit_signals\nname: x\nlaw: 商标法第五十七条\nseverity: high\nrules:\n"
        "  - id: counterfeit.x\n    terms: [古驰]\n    obfuscated: maybe\n    message: m\n"
        "    examples: {fire: [古*驰], pass: [古驰]}\n",
        encoding="utf-8",
    )
    with pytest.raises(RulePackError, match="obfuscated"):
        load_pack(pack)
