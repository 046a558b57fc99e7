"""Loading the shipped classifier: the ONNX path without torch, and every fallback to PyTorch.

The torch-free assertion runs in a fresh interpreter: in the test process other tests (and these
fallbacks) have imported torch already.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from moderation.classifier import ModelLoadError, load_model
from moderation.classifier.ort_backend import (
    CHECK_TEXTS,
    ENV_BACKEND,
    ONNX_CHECK_FILE,
    ONNX_FILE,
    TOKENIZER_FILE,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "risk-classifier"

pytest.importorskip("onnxruntime")

_TORCH_FREE = r"""
import json, sys
from moderation.classifier import load_model
from moderation.classifier.ort_backend import CHECK_TEXTS
rm = load_model()
loaded = {"backend": rm.backend, "torch_weights": rm.torch_loaded,
          "torch": "torch" in sys.modules, "transformers": "transformers" in sys.modules}
scores = rm.score_texts([*CHECK_TEXTS, "【保健食品】吃了三天血糖就降了，比药还管用"])
import moderation
result = moderation.check({"id": "t1", "title": "【限时】祛斑霜 用了三天斑就没了",
                           "description": "比医院的药还管用", "category": "cosmetics"})
from moderation.classifier.explain import explain_fields
long_text = "，".join(["纯棉短袖T恤男夏季宽松大码半袖上衣"] * 6 + ["喝了三天血糖就降了比药还管用"])
spans = explain_fields(rm, [("title", long_text)], "food")
print(json.dumps({"loaded": loaded, "scores": scores, "risk": result.risk,
                  "torch_after_check": "torch" in sys.modules,
                  "transformers_after_check": "transformers" in sys.modules,
                  "long_spans": [sp.text for sp in spans],
                  "torch_after_explain": "torch" in sys.modules or rm.torch_loaded}))
"""


def _shipped_has_reference() -> bool:
    d = json.loads((SHIPPED / ONNX_CHECK_FILE).read_text(encoding="utf-8"))
    return isinstance(d.get("reference"), dict)


def _copy(dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in SHIPPED.iterdir():
        if f.is_file():
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def _edit_check(d: Path, edit: object) -> None:
    path = d / ONNX_CHECK_FILE
    record = json.loads(path.read_text(encoding="utf-8"))
    edit(record)  # type: ignore[operator]
    path.write_text(json.dumps(record), encoding="utf-8")


def test_shipped_model_loads_and_checks_without_torch_or_transformers():
    """The default load (ONNX graph, load-time check against the recorded reference), a whole check()
    and the explanation of a long text leave torch and transformers unimported, and score like the
    PyTorch model."""
    assert _shipped_has_reference(), "re-run scripts/export_onnx.py: onnx_check.json has no reference"
    env = {k: v for k, v in os.environ.items() if k not in (ENV_BACKEND, "MODERATION_MODEL_DIR")}
    proc = subprocess.run(
        [sys.executable, "-c", _TORCH_FREE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["loaded"] == {"backend": "onnx", "torch_weights": False, "torch": False, "transformers": False}
    assert not got["torch_after_check"] and not got["transformers_after_check"]
    # Explaining a text of more than 24 words picks its candidates by occluding runs, not gradients.
    assert not got["torch_after_explain"]
    assert any("血糖" in t or "药" in t or "降" in t for t in got["long_spans"]), got["long_spans"]
    assert got["risk"] is not None and 0.0 <= got["risk"] <= 1.0
    torch_rm = load_model(SHIPPED, backend="torch")
    want = torch_rm.score_texts([*CHECK_TEXTS, "【保健食品】吃了三天血糖就降了，比药还管用"])
    np.testing.assert_allclose(got["scores"], want, atol=1e-5)


def test_tokenizers_pipeline_matches_the_transformers_tokenizer():
    """ids and masks as training's AutoTokenizer gives them: truncation at max_chars + 2 tokens,
    padding to the longest, full-width forms, emoji, Latin words, traditional characters, blanks."""
    from transformers import AutoTokenizer

    rm = load_model(SHIPPED)
    hf = AutoTokenizer.from_pretrained(str(SHIPPED), local_files_only=True)
    texts = [
        "【食品】新疆若羌灰枣５００ｇ×２袋🔥🔥 iPhone同款礼盒 Ｎｏ．１？买２送１😀👍",
        "投資1萬，每月保底收益20%，穩賺不賠",
        "",
        "   ",
        "短",
        "Thermos-style 500ML Vacuum Flask â café",
        "祛斑" * 400,
        "A" * 300 + "中" * 10,
        "①号仓发货 100%纯正 ℃冷藏 ＃好评＃\n\t第二行",
    ]
    prepared = rm.prepare(texts)
    kw = {"padding": True, "truncation": True, "max_length": rm.max_length, "return_tensors": "np"}
    want, got = hf(prepared, **kw), rm.tokenizer(prepared, **kw)
    for key in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(got[key], want[key])
    assert got["input_ids"].shape[1] == rm.max_length  # the long texts were cut, not left whole
    single = rm.tokenizer([prepared[0]], return_offsets_mapping=True)
    ref = hf([prepared[0]], return_offsets_mapping=True, truncation=True, max_length=rm.max_length)
    assert single["offset_mapping"][0].tolist() == [list(t) for t in ref["offset_mapping"][0]]


def test_older_check_without_reference_loads_pytorch_and_checks_live(tmp_path):
    d = _copy(tmp_path / "m")
    _edit_check(d, lambda r: r.pop("reference", None))
    rm = load_model(d)
    assert rm.torch_loaded  # the graph was compared with PyTorch, as before references were recorded
    assert rm.backend == "onnx"
    np.testing.assert_allclose(
        rm.score_texts(CHECK_TEXTS), load_model(d, backend="torch").score_texts(CHECK_TEXTS), atol=1e-5
    )


@pytest.mark.parametrize("name", [ONNX_FILE, TOKENIZER_FILE])
def test_a_file_changed_after_export_means_pytorch(tmp_path, name):
    """A graph (or tokenizer) that is not the one the reference was recorded for is not trusted;
    requiring the graph then fails loudly."""
    d = _copy(tmp_path / "m")
    if name == ONNX_FILE:
        onnx = pytest.importorskip("onnx")
        graph = onnx.load(str(d / ONNX_FILE))
        graph.doc_string = "edited after export"  # still a valid graph, same scores, other bytes
        onnx.save(graph, str(d / ONNX_FILE))
    else:
        tok = json.loads((d / TOKENIZER_FILE).read_text(encoding="utf-8"))
        (d / TOKENIZER_FILE).write_text(json.dumps(tok, indent=1), encoding="utf-8")
    rm = load_model(d)
    assert rm.backend == "torch" and rm.torch_loaded
    with pytest.raises(ModelLoadError, match=rf"cannot use model\.onnx: {re.escape(name)} .*sha256"):
        load_model(d, backend="onnx")


def test_a_failed_load_time_check_means_pytorch(tmp_path):
    d = _copy(tmp_path / "m")

    def shift(record: dict) -> None:  # type: ignore[type-arg]
        record["reference"]["logits"] = [[a - 1.0, b + 1.0] for a, b in record["reference"]["logits"]]

    _edit_check(d, shift)
    rm = load_model(d)
    assert rm.backend == "torch" and rm.torch_loaded
    with pytest.raises(ModelLoadError, match="differ from the recorded PyTorch reference"):
        load_model(d, backend="onnx")


def test_no_onnxruntime_or_forced_torch_means_pytorch(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    rm = load_model(SHIPPED)
    assert rm.backend == "torch" and rm.torch_loaded
    with pytest.raises(ModelLoadError, match="onnxruntime is not installed"):
        load_model(SHIPPED, backend="onnx")
    monkeypatch.delitem(sys.modules, "onnxruntime")
    monkeypatch.setenv(ENV_BACKEND, "torch")
    forced = load_model(SHIPPED)
    assert forced.backend == "torch" and forced.torch_loaded


def test_use_torch_loads_the_weights_and_keeps_the_scores():
    rm = load_model(SHIPPED)
    onnx_scores = rm.score_texts(CHECK_TEXTS)
    rm.use_torch()
    assert rm.backend == "torch" and rm.torch_loaded
    np.testing.assert_allclose(rm.score_texts(CHECK_TEXTS), onnx_scores, atol=1e-5)
