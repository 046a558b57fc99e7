"""The compiled rules modules: a stale build is never run, and a build answers as the source does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from moderation import native
from moderation.native import GROUP, MODULES, compiled_files, source_of, stale_modules, write_stamp

ROOT = Path(__file__).resolve().parent.parent


def _fake_build(root: Path) -> list[Path]:
    """Sources of every compiled module and a build of them (empty files stand for the extensions)."""
    built = []
    for module in MODULES:
        src = source_of(module, root)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(f"# {module}\n", encoding="utf-8")
        so = src.with_name(src.stem + ".cpython-311-x86_64-linux-gnu.so")
        so.write_bytes(b"")
        built.append(so)
    package, _, name = GROUP.rpartition(".")
    lib = root.joinpath(*package.split("."), f"{name}__mypyc.cpython-311-x86_64-linux-gnu.so")
    lib.write_bytes(b"")
    write_stamp(root)
    return [*built, lib]


def test_a_build_from_the_current_sources_is_kept(tmp_path: Path) -> None:
    built = _fake_build(tmp_path)
    assert stale_modules(tmp_path) == []
    assert native.guard(tmp_path) == []
    assert compiled_files(tmp_path) == sorted(built)


def test_an_edited_source_removes_the_whole_build_with_a_warning(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    edited = source_of("moderation.rules.judge", tmp_path)
    edited.write_text("# judge, edited\n", encoding="utf-8")
    assert stale_modules(tmp_path) == ["moderation.rules.judge"]
    with pytest.warns(RuntimeWarning, match="moderation.rules.judge"):
        assert native.guard(tmp_path) == ["moderation.rules.judge"]
    # Compiled modules call each other directly: none of the build may stay next to a newer source.
    assert compiled_files(tmp_path) == []
    assert not (tmp_path / "moderation" / native.STAMP_NAME).exists()


def test_a_build_without_its_stamp_counts_as_stale(tmp_path: Path) -> None:
    _fake_build(tmp_path)
    (tmp_path / "moderation" / native.STAMP_NAME).write_text("not json", encoding="utf-8")
    assert stale_modules(tmp_path) == list(MODULES)


def test_no_build_is_nothing_to_guard(tmp_path: Path) -> None:
    for module in MODULES:
        src = source_of(module, tmp_path)
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text("", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.guard(tmp_path) == []


# Checks the hand-written examples of every rule pack and a few hostile texts, printing each answer.
_ANSWERS = """
import json, sys
from moderation.checker import Checker
from moderation.native import is_compiled
from moderation.rules.engine import RulesEngine
engine = RulesEngine.load()
examples = [ex for rule in engine.rules for ex in (*rule.fire, *rule.pass_)]
listings = [
    {"id": str(i), "title": ex.text[:60], "description": ex.text, "category": ex.category,
     "attributes": ex.attributes}
    for i, ex in enumerate(examples)
]
hostile = ["", "最" * 5000, "全网最好\\u0000的 面霜 ①③⑧ 0ne", "國家級 ＮＯ．１ 治疗便秘 " * 300]
listings += [{"id": f"h{i}", "title": t[:60], "description": t} for i, t in enumerate(hostile)]
results = Checker(engine, classifier=False).check_many(listings)
print(json.dumps([is_compiled("moderation.rules.engine")] + [r.model_dump(mode="json") for r in results]))
"""


def _answers(native_on: bool) -> list[object]:
    env = {**os.environ, "MODERATION_NATIVE": "1" if native_on else "0"}
    out = subprocess.run(
        [sys.executable, "-c", _ANSWERS], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    answers: list[object] = json.loads(out)
    return answers


@pytest.mark.slow
@pytest.mark.skipif(not compiled_files(ROOT), reason="the rules modules are not compiled here")
def test_the_compiled_modules_answer_as_their_source() -> None:
    compiled, source = _answers(True), _answers(False)
    assert compiled[0] is True and source[0] is False
    assert len(compiled) > 3000
    assert compiled[1:] == source[1:]


def test_a_build_is_found_without_the_repository_on_the_path(tmp_path: Path) -> None:
    """Console scripts of an editable install import the package through its finder, with neither the
    repository nor the working folder on ``sys.path``: the build must be found from the package."""
    probe = "import moderation.rules.engine as e, moderation.native as n; print(e.__file__)"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    if out.returncode != 0 or not out.stdout.strip().startswith(str(ROOT / "moderation")):
        pytest.skip("the installed package is not this checkout")
    assert out.stdout.strip().endswith(".so") == bool(compiled_files(ROOT))
