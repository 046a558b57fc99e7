"""``--enqueue``: non-pass listings go to the review queue, highest risk first, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _audit_data import freeze_rules, write_jsonl
from sqlalchemy import create_engine, text

from moderation.audit import AuditOptions, run_audit
from moderation.audit.writers import read_table
from moderation.checker import Checker

pytestmark = pytest.mark.slow  # a whole audit


def test_enqueue_flagged_highest_risk_first_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_RULES_DIR", str(freeze_rules(tmp_path)))
    inp = write_jsonl(tmp_path / "cat.jsonl")
    out = tmp_path / "out"
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    opts = AuditOptions(
        input=inp,
        out=out,
        workers=1,
        classifier=False,
        progress=False,
        batch_size=5,
        enqueue=True,
        database_url=url,
        report=False,
    )
    first = run_audit(opts)
    listings = read_table(out, "listings").to_pylist()
    flagged = {r["id"]: r for r in listings if r["verdict"] in ("review", "block")}
    assert first.enqueued == len(flagged) >= 7

    engine = create_engine(url)
    with engine.connect() as conn:
        items = conn.execute(text("SELECT listing_id, risk, verdict, title FROM items ORDER BY id")).all()
        signals = conn.execute(text("SELECT COUNT(*) FROM signals")).scalar_one()
        snapshot = conn.execute(text("SELECT snapshot FROM listings WHERE id = 'sku-003'")).scalar_one()
    assert {i.listing_id for i in items} == set(flagged)
    risks = [i.risk for i in items]
    assert risks == sorted(risks, reverse=True)  # created highest risk first
    assert all(i.verdict == flagged[i.listing_id]["verdict"] for i in items)
    assert "治疗便秘" in json.loads(snapshot)["title"]
    assert signals == len(items)
    # the queue gets the contract Check result the audit stored, the same JSON /v1/check returns
    row = flagged["sku-003"]
    expected = Checker(classifier=False).check(json.loads(row["listing"])).to_json_dict()
    assert json.loads(row["result"]) == expected
    with engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT s.result FROM signals s JOIN items i ON i.id = s.item_id WHERE i.listing_id = 'sku-003'"
            )
        ).scalar_one()
    assert (json.loads(stored) if isinstance(stored, str) else stored)["check"] == expected

    again = run_audit(opts)  # rerun: nothing sent twice
    assert again.enqueued == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM items")).scalar_one() == len(items)
        assert conn.execute(text("SELECT COUNT(*) FROM signals")).scalar_one() == signals
    engine.dispose()
