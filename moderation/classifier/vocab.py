"""Character vocabulary and tokenizer for the from-scratch Chinese model.

No pretrained vocabulary may be downloaded here, so the vocabulary is built from jieba's dictionary
(which ships inside the jieba package) plus the characters of the local corpora, with a frequency
cut-off that keeps the embedding matrix small. The tokenizer is a standard BERT WordPiece tokenizer
whose vocabulary holds single characters (and `##x` continuations for the non-CJK characters that BERT
pre-tokenisation glues into words, such as Latin letters, digits and emoji), so that
`AutoTokenizer.from_pretrained(dir)` and `BertTokenizerFast.from_pretrained(dir)` build the very same
pipeline and a Chinese listing with full-width digits, emoji or English yields no [UNK].
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import BertTokenizerFast

SPECIAL_TOKENS: tuple[str, ...] = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

#: Non-CJK blocks kept whole: symbols sellers type (①, ㎡, ★, ✅, arrows), kana seen in titles, and the
#: emoji blocks. Each of these also gets a `##` form because BERT glues them to neighbouring non-CJK text.
_SYMBOL_RANGES: tuple[tuple[int, int], ...] = (
    (0x00A1, 0x00FF),  # Latin-1 symbols and letters (× ÷ ° ¥ …)
    (0x0391, 0x03C9),  # Greek (μ, α, Ω in specifications)
    (0x2010, 0x205E),  # general punctuation (— … ‰ ※)
    (0x20A0, 0x20BF),  # currency
    (0x2100, 0x218B),  # letterlike and number forms (℃ № ™ Ⅰ)
    (0x2190, 0x21FF),  # arrows
    (0x2264, 0x2265),  # ≤ ≥
    (0x2460, 0x24FF),  # enclosed alphanumerics (① ⑳ Ⓐ)
    (0x25A0, 0x25FF),  # geometric shapes (■ ● ◆)
    (0x2600, 0x27BF),  # misc symbols and dingbats (★ ☆ ✅ ❤)
    (0x2B50, 0x2B55),  # stars and circles (⭐ ⭕)
    (0x3000, 0x303F),  # CJK punctuation
    (0x3040, 0x30FF),  # kana (の, ー)
    (0x3280, 0x32B0),  # circled ideographs (㊣)
    (0x3380, 0x33DF),  # compatibility units (㎡ ㎏ ㎝)
    (0xFE30, 0xFE4F),  # CJK compatibility forms
    (0xFF01, 0xFF64),  # full-width ASCII and half-width CJK punctuation
    (0xFFE0, 0xFFEE),  # full-width currency (￥)
    (0x1F300, 0x1F64F),  # emoji: pictographs and faces
    (0x1F680, 0x1F6C5),  # emoji: transport
    (0x1F900, 0x1F9FF),  # emoji: supplemental
)


def is_cjk(ch: str) -> bool:
    """True for the code points BERT's normaliser isolates as Chinese characters."""
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def _bert_normalise_char(ch: str) -> str:
    """What BERT's normaliser (lowercase + strip accents) turns one character into."""
    lowered = unicodedata.normalize("NFD", ch.lower())
    return "".join(c for c in lowered if unicodedata.category(c) != "Mn")


def _is_kept_symbol(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat.startswith("C") or cat in ("Zs", "Mn"):
        return False
    return _bert_normalise_char(ch) == ch


def jieba_char_scores(dict_path: Path | None = None) -> Counter[str]:
    """Character frequencies implied by jieba's dictionary (sum of the frequencies of words holding it)."""
    if dict_path is None:
        import jieba

        dict_path = Path(jieba.__file__).parent / "dict.txt"
    scores: Counter[str] = Counter()
    with open(dict_path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            word, freq = parts[0], int(parts[1])
            for ch in set(word):
                if is_cjk(ch):
                    scores[ch] += freq
    return scores


def build_vocab(
    corpus_texts: Iterable[str] = (),
    extra_texts: Iterable[str] = (),
    max_jieba_chars: int = 4500,
    min_corpus_count: int = 3,
    max_cjk: int = 6500,
) -> list[str]:
    """The ordered token list: specials, ASCII and symbols (with ## forms), then CJK by frequency.

    CJK characters come from the top of jieba's dictionary, from the corpora when seen at least
    ``min_corpus_count`` times (the real listing distribution), and always from ``extra_texts`` (the
    claim lexicons, so no training claim ever hits [UNK]). The order is deterministic.
    """
    tokens: list[str] = list(SPECIAL_TOKENS)
    seen = set(tokens)

    def add(tok: str) -> None:
        if tok not in seen:
            seen.add(tok)
            tokens.append(tok)

    symbols: list[str] = [chr(cp) for cp in range(0x21, 0x7F) if not chr(cp).isupper()]
    for lo, hi in _SYMBOL_RANGES:
        symbols.extend(chr(cp) for cp in range(lo, hi + 1) if _is_kept_symbol(chr(cp)))
    for ch in symbols:
        add(ch)
    for ch in symbols:
        if not _is_punct(ch):
            add("##" + ch)

    jieba_scores = jieba_char_scores() if max_jieba_chars > 0 else Counter()
    corpus_counts: Counter[str] = Counter()
    for text in corpus_texts:
        corpus_counts.update(ch for ch in text if is_cjk(ch))
    forced = sorted({ch for text in extra_texts for ch in text if is_cjk(ch)})

    cjk: list[str] = list(forced)
    cjk_seen = set(cjk)
    top_jieba = sorted(jieba_scores.items(), key=lambda kv: (-kv[1], kv[0]))[:max_jieba_chars]
    from_corpus = sorted(
        ((ch, n) for ch, n in corpus_counts.items() if n >= min_corpus_count), key=lambda kv: (-kv[1], kv[0])
    )
    # Interleave by rank so that the cap keeps the most frequent characters of both sources.
    for i in range(max(len(top_jieba), len(from_corpus))):
        for source in (from_corpus, top_jieba):
            if i < len(source) and source[i][0] not in cjk_seen and len(cjk) < max_cjk:
                cjk_seen.add(source[i][0])
                cjk.append(source[i][0])
    for ch in cjk:
        add(ch)
    return tokens


def _is_punct(ch: str) -> bool:
    """BERT's notion of punctuation: always split off, so never needs a ## form."""
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def make_tokenizer(tokens: list[str], max_chars: int) -> BertTokenizerFast:
    """A BERT fast tokenizer over ``tokens``; built from the vocab dict because in transformers 5.x the
    ``vocab_file`` argument is ignored, and saved/loaded with save_pretrained/from_pretrained only.
    Imports transformers here: only training builds a tokenizer (loading reads tokenizer.json)."""
    from transformers import BertTokenizerFast

    vocab = {tok: i for i, tok in enumerate(tokens)}
    tok = BertTokenizerFast(vocab=vocab, do_lower_case=True, tokenize_chinese_chars=True)
    tok.model_max_length = max_chars + 2
    return tok
