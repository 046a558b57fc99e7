"""Learning from reviewers: decided queue items become labelled examples, a retrained model is compared
with the shipped one on the fixed real test set, and it replaces the shipped model only when it is not
worse.

What a decision teaches (read-only from the queue's tables, ``moderation.queue.core``):

- the live decision (not undone or reverted) of an item; when a listing revision has several decided
  items (an appeal after the original), the latest decision wins;
- ``rejected`` / ``changes_requested`` → violation (1), ``approved`` → lawful (0);
- the text is the listing snapshot, only when the decision was made on the revision the snapshot holds
  (a listing edited after its decision is skipped: the decision judged other text);
- listings whose text is a real test item or a near duplicate of one are skipped, so the fixed test set
  stays unseen.

Per-finding "not a violation" marks do not exist in the queue yet; when they do, an approved item whose
every finding was marked "not a violation" is a clean lawful example and a rejected item with some
findings marked is still a violation (see the report of issue 13 for the field this needs).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import listing_text
from .data import Example

LABEL_OF_OUTCOME = {"rejected": 1, "changes_requested": 1, "approved": 0}
#: A new model may lose at most this much ROC-AUC on either real test set (the 90% bootstrap intervals
#: are several points wide, so smaller differences are noise) and must keep ECE within the bar.
AUC_TOLERANCE = 0.005
ECE_BAR = 0.05


@dataclass
class QueueDecisions:
    examples: list[Example] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def decisions_from_queue(database_url: str | None = None) -> QueueDecisions:
    """Labelled examples from the decided items of the queue database (read only)."""
    from sqlalchemy import create_engine, select

    from moderation.queue.core import DECISIONS, ITEMS, LISTINGS
    from moderation.queue.db import resolve_url

    from .realdata import is_held_out

    engine = create_engine(resolve_url(database_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    ITEMS.c.listing_id,
                    DECISIONS.c.listing_revision,
                    DECISIONS.c.outcome,
                    DECISIONS.c.created_at,
                    DECISIONS.c.id,
                    LISTINGS.c.revision,
                    LISTINGS.c.snapshot,
                    LISTINGS.c.category,
                )
                .join(ITEMS, ITEMS.c.id == DECISIONS.c.item_id)
                .join(LISTINGS, LISTINGS.c.id == ITEMS.c.listing_id)
                .where(DECISIONS.c.undone_at.is_(None))
                .order_by(DECISIONS.c.created_at, DECISIONS.c.id)
            ).all()
    finally:
        engine.dispose()
    out = QueueDecisions()
    latest: dict[tuple[str, int], Any] = {}
    for r in rows:
        latest[(r.listing_id, r.listing_revision)] = r  # ordered by time: the last one wins
    for (listing_id, revision), r in sorted(latest.items()):
        if r.outcome not in LABEL_OF_OUTCOME:
            out.skip(f"outcome {r.outcome}")
            continue
        if r.revision != revision:
            out.skip("listing changed after the decision")
            continue
        snap = r.snapshot if isinstance(r.snapshot, dict) else json.loads(r.snapshot or "{}")
        title, desc = snap.get("title") or "", snap.get("description") or ""
        attrs = snap.get("attributes") or {}
        raw = "\n".join(p for p in (title, desc, *[str(v) for v in attrs.values() if v]) if p)
        if not raw.strip():
            out.skip("empty listing")
            continue
        if is_held_out(title or raw) or is_held_out(raw):
            out.skip("real test item")
            continue
        label = LABEL_OF_OUTCOME[r.outcome]
        out.examples.append(
            Example(
                text=listing_text(title, desc, snap.get("category") or r.category, attrs),
                label=label,
                family="decision" if label else "lawful",
                group=f"decision:{listing_id}",
                source="decisions",
                split="train",
            )
        )
    return out


def compare(
    old: dict[str, Any], new: dict[str, Any], tol: float = AUC_TOLERANCE, ece_bar: float = ECE_BAR
) -> tuple[bool, list[str]]:
    """Whether ``new`` (a real test report) may replace ``old``, and the reasons when it may not."""
    reasons = []
    for key, name in (("cases", "enforcement cases"), ("lines", "labelled listings")):
        if new[key]["auc"] < old[key]["auc"] - tol:
            reasons.append(f"AUC on {name} fell from {old[key]['auc']:.3f} to {new[key]['auc']:.3f}")
    if new["ece"] > max(old["ece"], ece_bar):
        reasons.append(f"ECE rose from {old['ece']:.4f} to {new['ece']:.4f} (bar {ece_bar})")
    return not reasons, reasons


def _score_test(model_dir: Path, threads: int) -> dict[str, Any]:
    from .predict import load_model
    from .realdata import real_report, real_split

    rm = load_model(model_dir, backend="torch")
    test = real_split("test", binary=False)
    return real_report(rm.score_texts([r.example.text for r in test], threads=threads), test, ci=False)


def retrain_from_queue(
    database_url: str | None,
    model_dir: Path,
    data_dir: Path,
    work_dir: Path,
    *,
    epochs: int = 1,
    decision_repeat: int = 3,
    threads: int = 1,
    replace: bool = True,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build a training set from decided items, retrain (warm start from ``model_dir``), evaluate old
    and new on the real test set, and copy the new model over ``model_dir`` only when it is not worse
    (``compare``) and ``replace`` is set. Returns the record (also written to ``work_dir``)."""
    from .data import read_jsonl
    from .pipeline import train_model
    from .train import TrainConfig

    t0 = time.perf_counter()
    got = decisions_from_queue(database_url)
    progress(
        f"{len(got.examples)} decided listings ({sum(e.label for e in got.examples)} violations); "
        f"skipped {got.skipped or 'none'}"
    )
    if not got.examples:
        raise ValueError("the queue has no usable decisions to learn from")
    train_path, calib_path = data_dir / "train.jsonl", data_dir / "calib_real.jsonl"
    if not train_path.exists() or not calib_path.exists():
        raise FileNotFoundError(
            f"{data_dir} needs train.jsonl and calib_real.jsonl (run scripts/build_training_set.py)"
        )
    train = read_jsonl(train_path) + got.examples * decision_repeat
    calib = read_jsonl(calib_path)
    new_dir = work_dir / "candidate"
    if new_dir.exists():
        shutil.rmtree(new_dir)
    from .calibration import Calibration
    from .entities import kinds_of

    base_cal = Calibration.load(model_dir)
    entities = base_cal.entities if base_cal else ""
    # A tagged model is retrained with the kinds of names it was trained with (the names themselves are
    # read afresh from the rules' lexicons, which may have grown).
    kinds = kinds_of(Path(model_dir), entities)
    cfg = TrainConfig(
        epochs=epochs,
        threads=threads,
        mlm_steps=0,
        lr=3e-4,
        fold=base_cal.fold if base_cal else "",
        entities=entities,
        entity_kinds=kinds,
    )
    record: dict[str, Any] = {
        "decisions": len(got.examples),
        "skipped": got.skipped,
        "decision_repeat": decision_repeat,
        "base": str(model_dir),
    }
    record["training"] = train_model(train, calib, new_dir, cfg, progress=progress, init=model_dir)
    old_rep, new_rep = _score_test(model_dir, threads), _score_test(new_dir, threads)
    ok, reasons = compare(old_rep, new_rep)
    record.update(old=old_rep, new=new_rep, accepted=ok, reasons=reasons)
    progress(
        f"real test, old → new: cases AUC {old_rep['cases']['auc']:.3f} → {new_rep['cases']['auc']:.3f}, "
        f"listings AUC {old_rep['lines']['auc']:.3f} → {new_rep['lines']['auc']:.3f}, "
        f"ECE {old_rep['ece']:.4f} → {new_rep['ece']:.4f}"
    )
    if ok and replace:
        _export_onnx(new_dir, progress)
        _replace_dir(model_dir, new_dir)
        record["replaced"] = True
        progress(f"replaced {model_dir} (the previous model is kept in {work_dir / 'previous'})")
    else:
        record["replaced"] = False
        progress("kept the shipped model: " + ("; ".join(reasons) if reasons else "--no-replace"))
    record["seconds"] = time.perf_counter() - t0
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "retrain.json").write_text(
        json.dumps(record, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8"
    )
    return record


def _export_onnx(model_dir: Path, progress: Callable[[str], None]) -> None:
    """Re-export and check the ONNX graph for the new weights; without a passing check, drop the graph
    (load_model then scores with PyTorch)."""
    try:
        from .ort_backend import export_and_check

        rec = export_and_check(model_dir, threads=1)
        progress(
            f"ONNX export {'passed' if rec['passed'] else 'FAILED'} (max |Δp| {rec['max_abs_prob_diff']:.1e})"
        )
    except Exception as exc:  # no onnx/onnxruntime, or the export failed: ship PyTorch-only weights
        for name in ("model.onnx", "onnx_check.json"):
            (model_dir / name).unlink(missing_ok=True)
        progress(f"no ONNX graph for the new model ({type(exc).__name__}: {exc}); it will score with PyTorch")


def _replace_dir(target: Path, new: Path) -> None:
    """Swap ``new`` in for ``target``, keeping the old one as ``<work>/previous``."""
    previous = new.parent / "previous"
    if previous.exists():
        shutil.rmtree(previous)
    shutil.copytree(target, previous)
    for p in target.iterdir():
        if p.is_file():
            p.unlink()
    for p in new.iterdir():
        if p.is_file():
            shutil.copy2(p, target / p.name)
