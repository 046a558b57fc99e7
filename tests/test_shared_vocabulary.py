"""One home each: labels and ranks in ``schema``, the environment in ``settings``, the model folder in
``paths.model_dir``, and ``Checker.check_many`` taking a reader's lines as parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from moderation.schema import (
    SEVERITIES,
    SEVERITY_LABELS,
    SEVERITY_RANK,
    VERDICT_LABELS,
    CheckResult,
    Listing,
    max_severity,
    read_json_line,
)
from moderation.settings import Settings


def test_labels_and_ranks_have_one_home() -> None:
    from moderation.api import console
    from moderation.audit import report
    from moderation.queue.states import SEVERITY_ORDER
    from moderation.rules.pack import SEVERITIES as PACK_SEVERITIES

    assert SEVERITY_LABELS["low"] == "提示" and set(SEVERITY_LABELS) == set(SEVERITIES)
    assert console.SEVERITY_LABELS is SEVERITY_LABELS and report.SEVERITY_LABELS is SEVERITY_LABELS
    assert report.VERDICT_LABELS is VERDICT_LABELS
    assert SEVERITY_ORDER == PACK_SEVERITIES == SEVERITIES
    assert [SEVERITY_RANK[s] for s in SEVERITIES] == [0, 1, 2, 3]
    assert max_severity(["medium", "critical", "low"]) == "critical" and max_severity([]) is None


def test_one_model_folder_for_loading_and_fingerprinting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moderation.audit.runner import model_fingerprint
    from moderation.classifier.config import default_model_dir
    from moderation.paths import model_dir

    monkeypatch.delenv("MODERATION_MODEL_DIR", raising=False)
    monkeypatch.setenv("MODERATION_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models" / "risk-classifier").mkdir(parents=True)
    (tmp_path / "models" / "risk-classifier" / "config.json").write_text("{}", encoding="utf-8")
    assert model_dir() == default_model_dir() == tmp_path / "models" / "risk-classifier"
    assert model_fingerprint(True) == model_fingerprint(str(model_dir()))
    monkeypatch.setenv("MODERATION_MODEL_DIR", str(tmp_path / "other"))
    assert model_dir() == default_model_dir() == tmp_path / "other"
    assert model_fingerprint(True) is None  # no such folder: the fingerprint and the load agree


def test_settings_read_the_environment_and_hand_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODERATION_SCORER_THREADS", "3")
    monkeypatch.setenv("MODERATION_OCR", "on")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    s = Settings.from_env(serve_db="sqlite:///x.db", serve_classifier=False)
    assert (s.scorer_threads, s.ocr, s.ray_address, s.image_db) == (3, True, "ray://head:10001", None)
    env = s.to_env()
    assert env["RAY_ADDRESS"] == "ray://head:10001" and env["MODERATION_SERVE_CLASSIFIER"] == "0"
    for key in ("MODERATION_SCORER_THREADS", "MODERATION_OCR", "RAY_ADDRESS"):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert Settings.from_env() == s


def test_check_many_takes_lines_as_parsed() -> None:
    from moderation.checker import Checker

    lines = [
        read_json_line('{"id": "a", "title": "全网最低价 保温杯"}', 1),
        read_json_line("{not json", 2),
        read_json_line("[1, 2]", 3),
        Listing(id="b", title="保温杯 304 不锈钢"),
        CheckResult.failed(None, "malformed_csv", "line 5: 3 fields but the header has 2"),
    ]
    results = Checker(classifier=False, ocr=False).check_many(lines)
    assert [(r.id, r.verdict, r.error.code if r.error else None) for r in results] == [
        ("a", "block", None),
        (None, None, "malformed_json"),
        (None, None, "invalid_listing"),
        ("b", "pass", None),
        (None, None, "malformed_csv"),
    ]
    assert results[1].error is not None and results[1].error.message.startswith("line 2: ")
    assert results[4] is lines[4]
