"""The regulated-product listings (scripts/data/lawful_regulated.yaml → moderation/classifier/regulated.py):
cited sources, label integrity, the product split and the test-set exclusion."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation.classifier.regulated import load_regulated, product_part, regulated_examples

SRC = Path(__file__).resolve().parents[1] / "scripts" / "data" / "lawful_regulated.yaml"


@pytest.fixture(scope="module")
def doc() -> dict:
    return load_regulated(SRC)


def test_every_list_cites_a_named_source(doc: dict) -> None:
    sources = doc["sources"]
    for sid, s in sources.items():
        assert s.get("title") and s.get("where") and s.get("what"), sid
    for cat, info in doc["categories"].items():
        assert info["cite"], cat
        for list_name, cited in info["cite"].items():
            ids = cited if isinstance(cited, list) else [cited]
            # Either a source id or an explicit reference (e.g. a LEGAL.md section).
            assert all(i in sources or " " in i for i in ids), (cat, list_name, ids)


def _unlawful_phrases(doc: dict, cat: str) -> list[str]:
    info = doc["categories"][cat]
    diseases = info.get("diseases") or [""]
    return [u.replace("{disease}", d) for u in info["unlawful"] for d in diseases]


def test_labels_follow_the_claim_not_the_frame(doc: dict) -> None:
    exs, _ = regulated_examples(SRC, 600, seed=7)
    assert 0.4 < sum(e.label for e in exs) / len(exs) < 0.6
    tags = {info["tag"]: cat for cat, info in doc["categories"].items()}
    seen_mandatory = {0: 0, 1: 0}
    for e in exs:
        cat = e.group.split(":")[1]
        assert cat in tags.values()
        has_unlawful = any(p in e.text for p in _unlawful_phrases(doc, cat))
        assert has_unlawful == bool(e.label), e.text
        if "本品不能代替药物" in e.text:
            seen_mandatory[e.label] += 1
    # The mandatory line appears on both sides, so it cannot become a "lawful" cue.
    assert seen_mandatory[0] > 0 and seen_mandatory[1] > 0


def test_reproducible_and_products_split(doc: dict) -> None:
    a, _ = regulated_examples(SRC, 200, seed=3)
    b, _ = regulated_examples(SRC, 200, seed=3)
    assert [e.text for e in a] == [e.text for e in b]
    check, _ = regulated_examples(SRC, 200, seed=3, part="check")
    held = {
        p["name"]
        for cat, info in doc["categories"].items()
        for p in info["products"]
        if product_part(cat, p["name"]) == "check"
    }
    assert held
    for e in a:
        assert not any(name in e.text for name in held), e.text
    assert any(any(name in e.text for name in held) for e in check)


def test_excluded_texts_never_come_out() -> None:
    exs, dropped = regulated_examples(SRC, 300, seed=5, exclude=lambda t: "本品不能代替药物" in t)
    assert dropped > 0
    assert all("本品不能代替药物" not in e.text for e in exs)
