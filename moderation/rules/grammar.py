"""Claim grammars: what a degree marker modifies, decided over jieba's segmentation.

A closed list of 最-words can never keep up with the language (最具人气, 最出众, 最懂你), and a bare
``最.`` pattern fires on 最近, 最后 and 最高承重150kg. The superlative grammar instead reads the marker and
the word it attaches to — jieba keeps 最好, 最高, 最低价 as one token, or splits 最 / 出众 — and classes that
word by a lexicon (``rules/lexicons/superlative_heads.txt``): an ordinary time word, a dimension that is a
spec limit unless scoped, a pain point, a discourse phrase, a preference, or (by default) a quality of
the thing described. The result is a claim with ``modifies`` for the finding's explanation, or a named
reason why it is not a claim. Context judgements shared with other rules (usage tips, the seller's own
range, goals, titles of works) run after this, in ``moderation/rules/judge.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from moderation.rules.pack import Lexicons


class Boundaries(Protocol):
    def token_at(self, pos: int) -> tuple[int, int] | None: ...


@dataclass(frozen=True, slots=True)
class GrammarResult:
    """A degree marker read in context: a claim (``reason`` empty) or why it is not one."""

    start: int
    end: int
    modifies: str
    kind: str
    reason: str = ""  # non-empty: not a claim (ordinary_word, spec_limit, pain_point, discourse, …)
    action: str | None = None  # a stronger action than the rule's default, for unmistakable claims

    @property
    def is_claim(self) -> bool:
        return not self.reason


#: Classes of the superlative lexicon and what they mean (see the lexicon's header).
_NOT_CLAIMS = {
    "time": "ordinary_word",
    "position": "space_order",
    "negative": "pain_point",
    "discourse": "discourse",
    "delegate": "delegated",
}
_SCOPE = re.compile(
    r"(全网|全国|全球|世界|全世界|国内|国际|中国|亚洲|行业|业内|业界|同行|同类|同价位|同级|市场|市面|品类|类目|"
    r"淘宝|天猫|京东|拼多多|抖音|全平台|电商|史上|有史以来|宇宙|地表|全城|全省|全市|全县|本地|当地|"
    r"本土|台湾|香港|澳门|大陆|内地|海内外|全岛|亚太|欧洲|全美|华人|"
    r"[东南西北华][东南西北中]?(地区|区域|片区|一带)?|(省|市|县|区|地区|区域|城区|片区)内|本省|本市|本区|"
    r"规模|体量|产量|销量|销售额|市场份额|占有率|知名度)"
    r"[的上之内中里]?(范围内)?[^，。！？；、\n]{0,4}$"
)
#: A scope word glued to 最 in one token (全网最低价 is one word once rules teach it to jieba).
_SCOPE_WORD = re.compile(
    r"全网|全国|全球|世界|全世界|国内|国际|中国|行业|业内|同行|同类|市场|史上|宇宙|地表|全城|全省|全市"
)
#: After a dimension (最大, 最低…): nouns that make it a claim about quality, price or standing, not a spec.
_STANDING = re.compile(
    r"的?(品质|质量|等级|标准|水平|工艺|档次|性价比|品牌|厂家|工厂|生产商|制造商|供应商|批发商|经销商|卖家|"
    r"基地|企业|公司|平台|商城|网站|销量|销售|优惠|折扣|力度|让利|福利|价|价格|价位|规模|实力|市场份额|份额|"
    r"口碑|人气|知名度|影响力|满意度|好评|诚意|保障|库存|货源|源头|专卖|旗舰|门店|连锁|体验|效果|功效)"
)
#: After a dimension: a quantity or a spec verb means a specification limit (最高承重150kg, 最多可容纳).
_SPEC = re.compile(
    r"(的)?[^，。！？；\n]{0,6}?(\d|[一二两三四五六七八九十百千万]+[个人件台张层次档级位只支]|可|能|支持|达|至|为|仅|只|不超过)"
)
#: 最多…的航空公司, 最大的…平台: the quantity ranks the seller or the product named after it.
_RANKS_SELLER = re.compile(
    r"[^，。！？；\n]{0,12}的[\u4e00-\u9fa5]{0,6}?(航空公司|公司|平台|品牌|厂家|工厂|商家|卖家|店铺|网店|门店|网站|商城|app|软件|应用|"
    r"企业|集团|机构|供应商|服务商|经销商|医院|诊所|专科|学校|培训机构|楼盘|社区|商场|酒店|基地|超市|卖场|连锁店|"
    r"连锁|专卖店|商行|药房|药店|餐厅|饭店|酒楼|工作室|批发商|零售商|厂商|制造商|生产商|养殖场|种植园|牧场|茶园|酒厂)"
)
#: 是最轻的通用塑料, 堪称最大的…: a copula before the superlative and a class noun after it rank the subject
#: within that class (a standing), unlike 最薄的一款 or 最大的尺寸, which name a spec or a model of the range.
_COPULA = re.compile(r"(是|乃|属于|堪称|称得上|号称|成为|当之无愧的|公认的?)$")
_CLASS_AFTER = re.compile(
    r"的(?!一款|款|型号|版本|配置|一个|一种|那个|这个|时候|地方|一次|一天|尺寸|规格|码|号|档)[\u4e00-\u9fa5]{2,8}"
)
#: 最大的优点是…, 最大的区别在于…: the superlative ranks a point of the text, not the product.
_DISCOURSE_NOUN = re.compile(
    r"的?(优点|特点|特色|区别|不同|差别|差异|问题|好处|亮点|缺点|难题|痛点|敌人|挑战|心愿|愿望|困扰|烦恼|担心|"
    r"顾虑|原因|理由|目的|意义|价值在于|程度|限度|化|可能|努力|诚意|帮助|支持)"
)
#: Classes whose one-character entries also class longer words (最下层, 最上面, 最后排).
_PREFIX_CLASSES = frozenset({"time", "position", "delegate", "negative"})
#: What a one-character dimension (大, 低…) measures when jieba glues it to the next word (最低温度,
#: 最/大气压): a quantity, so the whole is a specification limit.
_MEASURE = re.compile(
    r"(温度|温|气压|压力|压|功率|承重|载重|尺寸|速度|容量|重量|长度|高度|宽度|深度|厚度|电流|电压|转速|频率|亮度|"
    r"音量|距离|范围|角度|档位|负荷|负载|面积|体积|人数|口径|孔径|直径|半径|倍率|倍数|分辨率|像素|续航|流量|扬程|"
    r"吸力|风量|风速|载荷|拉力|扭矩|用|充|装|放|坐|睡|载|容纳|待机|\d)"
)
#: What a superlative may rank other than the goods: equipment, technology, standards, materials.
_EVIDENCE_HEAD = re.compile(
    r"[^，。！？；\n]{0,10}?(仪器|设备|生产线|机器|机械|技术|工艺|标准|原料|原材料|材料|配方|检测|实验室|研究|研发|"
    r"认证|体系|流程|管理)"
)
#: Time words that can rank the goods against others' once a scope names the others (世界最新, 全球最早).
_RANKABLE_TIME = frozenset({"新", "早", "先"})
_ADVICE_OBJECT = re.compile(r"(的)?(你|您|自己|个人|不同|各种|每个|每位|那些|这些|各类)")
#: 最吸引人的地方就是…, 最抢眼的亮点, 整件衬衫最美的焦点: the superlative ranks one part of the item against
#: its other parts, not the item against other goods. 地方/之处 are also places (最专业的地方), so they
#: count only when a copula names the part next, or the clause speaks of the whole item.
_OWN_PART = re.compile(
    r"[\u4e00-\u9fa5]{0,2}?的(亮点|看点|焦点|细节|部分|部位|特点|特色|卖点|点睛之笔|"
    r"(地方|之处)(就是|便是|是|在于|莫过于|当属|要数|还是|则是|当然是|应该是)?)"
)
#: 最喜欢的是它的领口设计, 最满意于经典的圆领设计, 最出彩的还是袖口: the same ranking of the item's own parts,
#: named after a copula (or 于): a part of the goods, not other goods (顾客最喜欢的是这款面霜 stays a claim).
_OWN_PART_NAMED = re.compile(
    r"(的(地方|之处)?(就是|便是|是|在于|莫过于|当属|要数|还是|则是|当然是|应该是)|于)"
    r"(它|其|这款|此款|本款|这件|这条|衣服|裙子|裤子)?的?[\u4e00-\u9fa5]{0,6}?"
    r"(设计|领口|领型|领子|衣领|袖口|袖型|袖子|肩部|腰部|腰身|腰线|下摆|裙摆|裤脚|面料|材质|用料|做工|走线|"
    r"版型|剪裁|裁剪|廓形|颜色|配色|色彩|图案|印花|刺绣|纽扣|拉链|口袋|细节|质感|手感|垂感)"
)
_WHOLE_ITEM = re.compile(r"整[件条款个套双身体]|衣身|裙身|裤身|鞋身|包身|全身")
_LIGHT_VERBS = frozenset({"具", "具有", "富", "富有", "受", "有", "是", "为", "能", "会", "让", "令", "值得"})


class SuperlativeGrammar:
    """Reads 最 + what it modifies (``grammar: superlative`` in a rule)."""

    def __init__(self, lexicons: Lexicons) -> None:
        rows = lexicons.rows("superlative_heads", "grammar superlative")
        self.classes: dict[str, str] = {row[0]: row[1] if len(row) > 1 else "quality" for row in rows}
        self._longest = max(len(w) for w in self.classes)

    def head_class(self, word: str) -> tuple[str, str]:
        """The class of ``word``: an exact lexicon entry, else the longest entry of two or more characters
        it starts with (最高端 → 高端), else ``quality``. A one-character entry (大, 高) only classes that
        character alone, because jieba keeps 最大, 最高 as one token while 最轻便, 最高贵 split as 最 / 轻便."""
        cls = self.classes.get(word)
        if cls is not None:
            return cls, word
        for n in range(min(len(word) - 1, self._longest), 0, -1):
            cls = self.classes.get(word[:n])
            if cls is not None and (n > 1 or cls in _PREFIX_CLASSES):
                return cls, word[:n]
        return "quality", word

    def _lexicon_word(self, text: str, start: int, hi: int) -> str | None:
        """The longest lexicon entry at ``text[start:]`` that can stand for what 最 modifies without
        segmentation (any entry of two or more characters; one character only for the classes read by
        prefix: time, position, 最好)."""
        for n in range(min(self._longest, hi - start), 0, -1):
            word = text[start : start + n]
            cls = self.classes.get(word)
            if cls is not None and (n > 1 or cls in _PREFIX_CLASSES):
                return word
        return None

    def analyse(
        self, text: str, pos: int, bounds: Boundaries, clause: tuple[int, int]
    ) -> GrammarResult | None:
        """Read the marker at ``text[pos]`` (最); None when it is part of another word.

        A word of the lexicon right after 最 settles what it modifies at once; jieba is asked only for
        words the lexicon does not know (most 最 in real text are 最好, 最近, 最大… and need no cut)."""
        c_lo, c_hi = clause
        known = self._lexicon_word(text, pos + 1, c_hi)
        if known is not None:
            return self._judge_word(text, pos, pos + 1, pos + 1 + len(known), known, c_lo, c_hi)
        token = bounds.token_at(pos)
        if token is None:
            return None
        t_start, t_end = token
        if t_start != pos and not _SCOPE_WORD.fullmatch(text[t_start:pos]):
            return None  # 最 inside a longer word (a name): not a degree marker
        # What 最 modifies: the rest of its own token (最好, 最低价), else the next token(s).
        if t_end > pos + 1:
            x_start, x_end = pos + 1, t_end
        else:
            x_start = pos + 1
            while x_start < c_hi and text[x_start] in "最为":  # 最最, 最为
                x_start += 1
            nxt = bounds.token_at(x_start) if x_start < c_hi else None
            if nxt is None:
                return None
            x_end = min(nxt[1], c_hi)
        word = text[x_start:x_end]
        if not word or not (word[0].isalnum()):
            return None
        if word in _LIGHT_VERBS and x_end < c_hi:  # 最具人气, 最受欢迎, 最有效: the light verb and its object
            nxt = bounds.token_at(x_end)
            if nxt is not None and nxt[1] <= c_hi:
                x_end = nxt[1]
                word = text[x_start:x_end]
        return self._judge_word(text, pos, x_start, x_end, word, c_lo, c_hi)

    def _judge_word(
        self, text: str, pos: int, x_start: int, x_end: int, word: str, c_lo: int, c_hi: int
    ) -> GrammarResult:
        """Class the word 最 modifies and decide, from the clause around it, whether it is a claim."""
        cls, head = self.head_class(word)
        if cls == "light":
            cls, head = "quality", word
        if (
            cls == "quality"
            and len(word) > 1
            and self.classes.get(word[0]) == "dimension"
            and _MEASURE.match(word, 1)
        ):
            cls, head = "dimension", word[0]
        end = x_end
        before = text[max(c_lo, pos - 12) : pos]
        after = text[end : min(c_hi, end + 12)]
        scoped = _SCOPE.search(before) is not None
        if cls == "time" and scoped and head in _RANKABLE_TIME:
            # 世界最新科技, 全球最早的…: newness or priority ranked against everyone else's is a claim
            # that evidence decides, unlike 最新款 or 最早发货 about the seller's own range and service.
            return GrammarResult(pos, end, word, "quality")
        if cls in _NOT_CLAIMS:
            return GrammarResult(pos, end, word, cls, reason=_NOT_CLAIMS[cls])
        if cls == "dimension":
            # 最大/最低/最多… is a specification limit (最高承重150kg) unless it ranks the product, its
            # price or the seller (全网最低, 最高品质, 最大的厂家).
            if scoped:
                return GrammarResult(
                    pos, end, word, cls, action=None if _EVIDENCE_HEAD.match(after) else "block"
                )
            if _STANDING.match(after) or _STANDING.match(word[len(head) :]) or _RANKS_SELLER.match(after):
                return GrammarResult(pos, end, word, "standing")
            if _COPULA.search(before) and _CLASS_AFTER.match(after) and not _MEASURE.match(after, 1):
                return GrammarResult(pos, end, word, "standing")
            if _DISCOURSE_NOUN.match(after):
                return GrammarResult(pos, end, word, cls, reason="discourse")
            # Unscoped size, speed or amount (最大尺寸, 最快读取速度, 最矮105cm, 最薄的一款) describes a
            # specification; without a scope it cannot rank the product against others.
            return GrammarResult(pos, end, word, cls, reason="spec_limit")
        if cls == "setting":  # 最高档 (the top power setting) unless it grades something: 最高档的面料
            if after.startswith("的") or scoped:
                return GrammarResult(pos, end, word, "quality", action="block" if scoped else None)
            return GrammarResult(pos, end, word, cls, reason="spec_limit")
        # 最适合你的尺码 is advice and 最适合春秋徒步 a usage scene; 最适合宝宝体质的奶粉 ranks the product.
        if cls == "suitable" and (_ADVICE_OBJECT.match(after) or "的" not in after):
            return GrammarResult(pos, end, word, cls, reason="advice")
        if not scoped:
            part = _OWN_PART.match(after)
            if part is not None and (not part.group(2) or part.group(3) or _WHOLE_ITEM.search(before)):
                return GrammarResult(pos, end, word, cls, reason="own_feature")
            if _OWN_PART_NAMED.match(after):
                return GrammarResult(pos, end, word, cls, reason="own_feature")
        action = "block" if cls in ("strong", "price") or scoped else None
        if action == "block" and _EVIDENCE_HEAD.match(after):
            # 最先进的检测设备, 行业最高品质标准: it ranks the seller's equipment, technology or standard,
            # a claim that evidence can support or refute (courts have said so): a person decides.
            action = None
        return GrammarResult(pos, end, word, cls, action=action)
