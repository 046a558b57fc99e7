"""The real-text label files and their loader: well-formed labels, and extra corpora that a fresh clone
may not have (their labels are left out, never an error; present, they load like the shared ones)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from moderation.evaluation import realsets

REPO = Path(__file__).resolve().parent.parent


def _real_sets_script():
    spec = importlib.util.spec_from_file_location("real_sets", REPO / "scripts" / "real_sets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_label_file_is_well_formed_and_complete(capsys):
    """Each batch labelled once per ref, with the batch's hash, a known label, category and families
    (needs no corpus text: the batches carry refs and hashes)."""
    assert _real_sets_script().cmd_check(None) == 0, capsys.readouterr().out


def test_every_collected_case_has_a_category_the_checker_knows():
    """A case filed under a category the checker lacks (electronics, say) is refused on loading; every
    collected set loads (no corpus text needed: cases carry their wording)."""
    items = [
        realsets.case_item(json.loads(line))
        for p in sorted((REPO / "tests" / "real").glob("cases*.jsonl"))
        for line in p.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(items) > 500
    row = {
        "id": "x-1",
        "text": "24小时睡眠监测",
        "label": "violation",
        "category": "electronics",
        "source": "s",
    }
    with pytest.raises(ValueError, match="unknown category 'electronics'"):
        realsets.case_item(row)
    assert realsets.case_item({**row, "category": ""}).category == "general"


def test_ad_copy_lines_are_read_from_the_summary_field():
    row = {"content": "类型#裙*颜色#白色", "summary": "白色连衣裙，清新百搭。"}
    assert realsets._line_text("advertisegen_dev.json", json.dumps(row, ensure_ascii=False)) == (
        "白色连衣裙，清新百搭。"
    )
    app = {"label": "1", "sentence": "一款记账应用。"}
    assert realsets._line_text("app_descriptions_iflytek.jsonl", json.dumps(app, ensure_ascii=False)) == (
        "一款记账应用。"
    )


@pytest.fixture
def extra_corpora(tmp_path, monkeypatch):
    """An extra corpora folder holding a two-line ad-copy file written here (made-up text)."""
    rows = [
        {"content": "类型#上衣", "summary": "这件卫衣宽松舒适，百搭减龄。"},
        {"content": "类型#裙", "summary": "这条连衣裙没有之一，是你的最佳选择。"},
    ]
    folder = tmp_path / "corpora"
    folder.mkdir()
    path = folder / realsets.COPIES
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setenv("MODERATION_EXTRA_CORPORA", str(folder))
    realsets.corpus_lines.cache_clear()
    yield folder
    realsets.corpus_lines.cache_clear()


def test_a_label_on_an_extra_corpus_resolves_and_is_sent_as_a_description(extra_corpora):
    text = "这条连衣裙没有之一，是你的最佳选择。"
    row = {
        "ref": f"{realsets.COPIES}:2",
        "sha": realsets.text_hash(text),
        "label": "violation",
        "category": "apparel",
        "families": ["absolute_claims"],
    }
    item = realsets.label_item(row)
    assert item.text == text and item.source == realsets.COPIES
    assert item.listing() == {"id": row["ref"], "description": text, "category": "apparel"}
    assert realsets._corpus_present(row["ref"])


def test_a_missing_extra_corpus_leaves_its_labels_out(tmp_path, monkeypatch):
    monkeypatch.setenv("MODERATION_EXTRA_CORPORA", str(tmp_path / "nowhere"))
    assert not realsets._corpus_present(f"{realsets.COPIES}:1")
    # a shared corpus is always expected: its absence must fail loudly, not shrink a figure
    assert realsets._corpus_present("taobao_titles.txt:1")
    with pytest.raises(FileNotFoundError, match="MODERATION_EXTRA_CORPORA"):
        realsets.corpus_lines.__wrapped__("not_a_corpus.json")


def test_ner_titles_are_rebuilt_from_the_character_per_line_file():
    """The NER set's test split is one character and its tag per line (CRLF in the published file), a
    blank line after each title; a line whose character is blank or invisible becomes a space whichever
    invisible character a copy kept, so every copy gives the same titles file (made-up titles here)."""
    conll = "鱼 B-HCCX\r\n油 I-HCCX\r\n O\r\n2 B-MISC\r\n粒 I-MISC\r\n\r\n新 O\r\n款 O\r\n\r O\r\n\ufffd O\r\n裙 B-HCCX\r\n\r\n"
    assert _real_sets_script().conll_titles(conll) == ["鱼油 2粒", "新款  裙"]
    assert _real_sets_script().conll_titles("a O\nb O") == ["ab"]


def test_a_label_row_may_carry_its_split(extra_corpora):
    """A fresh set read blind once and then tuned on marks its rows dev, like cases-n."""
    (extra_corpora / realsets.NER_TITLES).write_text("鱼油软胶囊 降血脂\n", encoding="utf-8")
    row = {"ref": f"{realsets.NER_TITLES}:1", "label": "violation", "category": "food", "split": "dev"}
    assert realsets.label_item(row).split == "dev"
    assert realsets.label_item({**row, "split": "test"}).split == "test"
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        realsets.label_item({**row, "split": "tset"})


def test_ner_titles_command_writes_the_titles_file_and_refuses_another_hash(extra_corpora, tmp_path):
    """``real_sets.py ner-titles`` writes one title per line into the extra corpora folder and stops with a
    clear message when the result is not the file the labels were made against (made-up titles here)."""
    import argparse

    source = tmp_path / "test.txt"
    source.write_text("鱼 O\r\n油 O\r\n\r\n新 O\r\n款 O\r\n\r\n", encoding="utf-8")
    script = _real_sets_script()
    args = argparse.Namespace(source=str(source), expect=None, batches=False, seed=1)
    assert script.cmd_ner_titles(args) == 0
    assert (extra_corpora / realsets.NER_TITLES).read_text(encoding="utf-8") == "鱼油\n新款\n"
    with pytest.raises(SystemExit, match="differs from the expected"):
        script.cmd_ner_titles(argparse.Namespace(**{**vars(args), "expect": "0" * 64}))
    # Refused before writing: the good copy is still there.
    assert (extra_corpora / realsets.NER_TITLES).read_text(encoding="utf-8") == "鱼油\n新款\n"


def test_cpr_titles_are_every_distinct_candidate_title(extra_corpora, tmp_path):
    """The Multi-CPR product-selection lines name a query and four candidate titles; the titles file holds
    each distinct title once, in order of first appearance, and a line whose matching title is not one of
    the cut pieces is refused (made-up titles here)."""
    import argparse

    def line(query: str, titles: list[str], match: str) -> str:
        sentences = f"Query: {query}\nCandidate Document: {', '.join(titles)}."
        return json.dumps(
            {"label_set": [""], "sentences": sentences, "spans": [{"term": match}]}, ensure_ascii=False
        )

    rows = [
        line("鱼油", ["深海鱼油软胶囊 90粒", "纯棉T恤 男", "儿童雨靴", "保温杯500ml"], "深海鱼油软胶囊 90粒"),
        line("雨靴", ["儿童雨靴", "防滑雨鞋 女", "纯棉T恤 男", "雨衣"], "儿童雨靴"),
    ]
    source = tmp_path / "test.json"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    script = _real_sets_script()
    assert script.cpr_titles(source.read_text(encoding="utf-8")) == [
        "深海鱼油软胶囊 90粒", "纯棉T恤 男", "儿童雨靴", "保温杯500ml", "防滑雨鞋 女", "雨衣",
    ]  # fmt: skip
    args = argparse.Namespace(source=str(source), expect=None, batches=False, seed=1)
    assert script.cmd_cpr_titles(args) == 0
    assert (extra_corpora / realsets.CPR_TITLES).read_text(encoding="utf-8").splitlines()[
        0
    ] == "深海鱼油软胶囊 90粒"
    bad = line("杯", ["保温杯, 500ml", "雨衣", "T恤", "雨靴"], "雨衣")
    with pytest.raises(SystemExit, match="line 1: 5 pieces, not 4"):
        script.cpr_titles(bad)  # a title holding ", " would be cut in two: refused, whichever title matches
    missing = line("杯", ["保温杯", "雨衣", "T恤", "雨靴"], "水杯")
    with pytest.raises(SystemExit, match="line 1: the matching title"):
        script.cpr_titles(missing)
    # Lines end at \n only: U+2028 inside a JSON string is part of the title, written as a space.
    sep = line("杯", ["保温\u2028杯", "雨衣", "T恤", "雨靴"], "雨衣")
    assert script.cpr_titles(sep)[0] == "保温 杯"
