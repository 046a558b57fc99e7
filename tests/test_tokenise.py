"""Block tokenisation around candidates must equal full-text jieba segmentation."""

from __future__ import annotations

import random
from itertools import pairwise

from moderation.rules.engine import RulesEngine
from moderation.text.normalise import normalise
from moderation.text.tokenise import Tokeniser

_SAMPLES = [
    "第一次购买的新客有优惠，销量第一的保温杯",
    "最高承重150kg，最近很多买家回购！最好的选择",
    "唯一的缺点是颜色偏暗。顾客第一，服务至上；本系列最大容量",
    "TOP1 best seller 国家级工艺 第一代产品 no1",
    "特级初榨橄榄油500ml，最佳食用方式为凉拌，开封后最佳保存温度为15℃以下",
]


def _full_boundaries(tok: Tokeniser, text: str) -> set[int]:
    bounds, pos = {0}, 0
    for token in tok.cut(text):
        pos += len(token)
        bounds.add(pos)
    return bounds


def test_block_boundaries_equal_full_text_boundaries(engine: RulesEngine) -> None:
    tok = engine.tokeniser
    rng = random.Random(7)
    texts = [normalise(t).text for t in _SAMPLES]
    pieces = [t for s in texts for t in s.split("，")]
    for _ in range(200):
        rng.shuffle(pieces)
        texts.append("，".join(pieces[: rng.randint(1, len(pieces))]))
    for text in texts:
        full = _full_boundaries(tok, text)
        view = tok.boundaries(text)
        for pos in range(len(text) + 1):
            assert view.is_boundary(pos) == (pos in full), (text, pos)


def test_rule_terms_do_not_break_everyday_words(engine: RulesEngine) -> None:
    tokens = engine.tokeniser.cut("第一次使用")
    assert "第一次" in tokens


def test_block_cut_equals_jieba_dag_segmenter(engine: RulesEngine) -> None:
    """The block segmenter (one backward pass over the dictionary) cuts as jieba's own ``__cut_DAG``
    does: the same route, ties and HMM runs, on rule examples, their fragments and shuffled glue."""
    from moderation.text.tokenise import BLOCK_RE

    tok = engine.tokeniser
    tok.cut("预热")
    reference = tok._jieba._Tokenizer__cut_DAG
    texts = [normalise(ex.text).text for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
    rng = random.Random(29)
    chars = "".join(texts)
    texts += ["".join(rng.choice(chars) for _ in range(rng.randint(1, 30))) for _ in range(500)]
    blocks = {m.group() for t in texts for m in BLOCK_RE.finditer(t)}
    assert len(blocks) > 1000
    for block in blocks:
        ends, pos = [], 0
        for token in reference(block):
            pos += len(token)
            ends.append(pos)
        assert tok._cut_block_uncached(block) == tuple(ends), block


def test_tokens_at_positions_equal_full_text_tokens(engine: RulesEngine) -> None:
    """``token_at`` and ``is_boundary`` asked in any order (runs of single characters are cut by the
    HMM only when a position falls in them) give jieba's full-text tokens."""
    tok = engine.tokeniser
    rng = random.Random(31)
    texts = [normalise(ex.text).text for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
    texts += [normalise(t).text for t in _SAMPLES]
    for text in texts[:1500]:
        full = sorted(_full_boundaries(tok, text))
        spans = dict(pairwise(full))
        positions = list(range(len(text) + 1))
        rng.shuffle(positions)
        view = tok.boundaries(text)
        for pos in positions[: rng.randint(1, len(positions))]:
            if rng.random() < 0.5:
                assert view.is_boundary(pos) == (pos in spans or pos == len(text)), (text, pos)
                continue
            got = view.token_at(pos)
            if got is None:
                continue  # outside any block (punctuation, spaces): no token of a block holds it
            start = max(b for b in full if b <= pos)
            assert got == (start, spans[start]), (text, pos)
