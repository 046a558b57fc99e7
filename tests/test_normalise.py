"""Offset-preserving normalisation: evasions fold, and every folded character maps back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.text.normalise import normalise

_ALPHABET = st.sampled_from(
    list("最佳好第一國家級顶级唯的近次步ＮＯ．１①❶TOPtop1#%. \u200b*·-_~🔥😀\u3000，。！\n3.5kg醉zuiì")
)


@given(st.text(alphabet=_ALPHABET, max_size=60) | st.text(max_size=60))
@settings(max_examples=300, deadline=None)
def test_offsets_are_monotonic_and_in_range(text: str) -> None:
    norm = normalise(text)
    assert len(norm.starts) == len(norm.text) == len(norm.ends)
    prev = 0
    for i in range(len(norm.text)):
        start, end = int(norm.starts[i]), int(norm.ends[i])
        assert 0 <= start < end <= len(text)
        assert start >= prev or start == int(norm.starts[i - 1])
        prev = start


@given(st.text(alphabet=_ALPHABET, max_size=60))
@settings(max_examples=300, deadline=None)
def test_each_folded_character_comes_from_its_original_span(text: str) -> None:
    from moderation.text.normalise import _evasions

    canonical = {ch for e in _evasions()[1] for ch in e.canonical}
    norm = normalise(text)
    for i, ch in enumerate(norm.text):
        start, end = norm.original_span(i, i + 1)
        piece = text[start:end]
        assert piece
        if end - start == 1 and ch not in ".-~":  # these survive only between digits
            assert normalise(piece).text == ch or ch in canonical, (text, i, piece, ch)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=80))
@settings(max_examples=200, deadline=None)
def test_plain_chinese_and_ascii_letters_survive(text: str) -> None:
    norm = normalise(text)
    for ch in norm.text:
        assert ch.strip() or ch == "\n"  # no spacing survives


def test_evasions_fold_to_the_canonical_term() -> None:
    cases = {
        "最 佳": "最佳",
        "最*佳": "最佳",
        "最\u200b佳": "最佳",
        "最🔥佳": "最佳",
        "國家級": "国家级",
        "ＮＯ．１": "no1",
        "No.1": "no1",
        "TOP 1": "top1",
        "第①": "第一",
        "第❶名": "第一名",
        "zui佳": "最佳",
        "zuì好": "最好",
        "醉佳": "最佳",
        "3.5kg": "3.5kg",
        "３．５": "3.5",
        "120㎡ 35-95平方": "120㎡35-95平方",
        "最-佳 10~20℃": "最佳10~20℃",
        # a dash or wave between digits is a range, whichever one the seller typed; elsewhere noise
        "月瘦5—10斤": "月瘦5-10斤",
        "3–5天 2〜3次": "3-5天2~3次",
        "最—佳 好——的": "最佳好的",
    }
    for raw, folded in cases.items():
        assert normalise(raw).text == folded, raw


def test_pinyin_inside_english_words_is_left_alone() -> None:
    assert normalise("Zuider Zee").text == "zuiderzee"


def test_offsets_point_at_what_the_seller_typed() -> None:
    text = "新款 zui佳 口感🔥咖啡"
    norm = normalise(text)
    i = norm.text.index("最佳")
    start, end = norm.original_span(i, i + 2)
    assert text[start:end] == "zui佳"


def test_empty_and_huge_text() -> None:
    assert normalise("").text == ""
    big = "优质面料，舒适透气。" * 100_000  # 1,000,000 characters
    norm = normalise(big)
    assert len(norm.text) == len(big)


def test_lone_surrogates_do_not_crash() -> None:
    norm = normalise("最\ud83d佳")
    assert "最" in norm.text


def test_full_pinyin_claims_fold_as_whole_words() -> None:
    from moderation.text.normalise import normalise

    assert normalise("zuì jiā 口感").text == "最佳口感"
    assert normalise("guó jiā jí 工艺").text == "国家级工艺"
    assert normalise("zuijiahome 品牌").text == "zuijiahome品牌"  # part of a longer Latin word: left alone


def test_pinyin_claims_inside_a_longer_pinyin_run_fold_too() -> None:
    """Spaces are folded before the evasion lexicon, so "zui jia hao yong" is one Latin run; a run that
    is pinyin throughout is cut at syllables, and an English or mixed run is still left alone."""
    from moderation.text.normalise import normalise

    assert normalise("zui jia hao yong 保温杯").text == "最佳haoyong保温杯"
    assert normalise("zuì jiā zuì jiā").text == "最佳最佳"
    assert normalise("jueduizuijia").text == "juedui最佳"
    for left_alone in ("zuijiahome", "bestzuijia", "panzuijiang", "zuijia2024", "brazuijia"):
        assert "最" not in normalise(left_alone).text, left_alone
    # A very long run keeps the strict guard: the cost stays linear for hostile input.
    assert "最" not in normalise("zuijia" * 20).text
