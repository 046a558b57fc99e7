"""Run an audit: plan batches, skip the ones the manifest has, run the rest on an engine, finish.

The coordinator's loop is deliberately small: it commits each finished batch to the manifest and
moves the progress bar. Everything heavy (reading, checking, writing) happens in the engine's
workers, and only finished parts are ever recorded, which is what makes a killed run resumable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from moderation.audit.checkpoint import Manifest
from moderation.audit.local import BatchDone, CheckerSettings, run_local
from moderation.audit.readers import BatchSpec, discover, plan_batches, source_name
from moderation.audit.writers import JSONL_FILE, clean_temporary, concat_jsonl, remove_outputs

log = logging.getLogger(__name__)

#: Bumped when the output tables change shape, so an old checkpoint is not silently continued.
#: 2: findings.box, images.ocr_* (text read from images, --ocr). 3: listings.result (the contract Check
#: result of non-pass rows, what --enqueue sends).
OUTPUT_VERSION = 3


class AuditError(RuntimeError):
    """A problem with the run as a whole (bad input path, settings that do not match a checkpoint)."""


@dataclass
class AuditOptions:
    """Everything ``moderation audit`` takes; the CLI only fills this in."""

    input: Path
    out: Path
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    batch_size: int = 1000
    classifier: bool | str = True
    image_db: str | None = None
    engine: Literal["local", "ray"] = "local"
    jsonl: bool = False
    resume: bool = True
    enqueue: bool = False
    database_url: str | None = None
    progress: bool = True
    report: bool = True
    ray_address: str | None = None
    #: Listings per classifier forward pass: small batches pad less (texts are padded to the longest of
    #: their batch); the measurement is in docs/audit.md.
    classifier_batch: int = 16
    #: Read the text in listing images and check it with the rules (moderation/ocr, docs/ocr.md).
    ocr: bool = False
    #: OCR cache file shared by runs (default: MODERATION_OCR_CACHE, else var/ocr-cache.sqlite).
    ocr_cache: str | None = None


@dataclass
class AuditResult:
    """What a run did, for the CLI's last line and for scripts."""

    out: Path
    listings: int
    findings: int
    errors: int
    batches: int
    batches_run: int
    listings_run: int
    seconds: float
    resumed: bool
    enqueued: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.listings_run / self.seconds if self.seconds > 0 else 0.0


def rules_fingerprint() -> str:
    """A hash of every rule file: a checkpoint made with other rules must not be continued silently."""
    from moderation.paths import rules_dir

    h = hashlib.sha256()
    root = rules_dir()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def model_fingerprint(setting: bool | str | Path) -> str | None:
    """Which classifier a run uses (path, and the names, sizes and times of its files), so a model
    trained or swapped mid-audit is not mixed into one output. ``None``: rules only, or no model."""
    if setting is False:
        return None
    from moderation.paths import model_dir

    path = model_dir() if setting is True else Path(setting)
    if not path.is_dir():
        return None
    h = hashlib.sha256(str(path.resolve()).encode())
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path).as_posix()}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def fingerprint(opts: AuditOptions, files: list[Path], root: Path) -> dict[str, Any]:
    """The settings a resumed run must share with the run it continues (not workers or engine: the
    output does not depend on them)."""
    return {
        "version": OUTPUT_VERSION,
        "input": [
            {"source": source_name(p, root), "size": p.stat().st_size, "mtime_ns": p.stat().st_mtime_ns}
            for p in files
        ],
        "batch_size": opts.batch_size,
        "classifier": opts.classifier
        if isinstance(opts.classifier, bool)
        else str(Path(opts.classifier).resolve()),
        "image_db": str(Path(opts.image_db).resolve()) if opts.image_db else None,
        "jsonl": opts.jsonl,
        "rules": rules_fingerprint(),
        "model": model_fingerprint(opts.classifier),
        # padding differs with the batch, and a score could round differently in its last digit
        "classifier_batch": opts.classifier_batch if opts.classifier is not False else None,
        "ocr": _ocr_fingerprint() if opts.ocr else None,
    }


def _ocr_fingerprint() -> str:
    """The OCR settings and models a run reads pictures with (a resumed run must read them the same)."""
    from moderation.ocr.engine import OcrSettings

    return OcrSettings().key()


def _explain_mismatch(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(keys) or "settings"


class _Progress:
    """tqdm on stderr, or nothing. The bar starts when the run does and says "loading" until the first
    batch lands (workers load rules, jieba, the model first), and its rate is the plain average since
    that start (no smoothing): the same figure as the summary line's listings/s."""

    def __init__(self, enabled: bool, total: int, initial: int) -> None:
        self.enabled, self.total, self.initial = enabled, total, initial
        self.bar: Any = None

    def start(self) -> None:
        if self.enabled and self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total,
                initial=self.initial,
                unit=" listings",
                dynamic_ncols=True,
                file=sys.stderr,
                desc="audit (loading)",
                smoothing=0,
                unit_scale=self.total >= 100_000,
                mininterval=0.5 if sys.stderr.isatty() else 5.0,
            )

    def update(self, n: int) -> None:
        self.start()
        if self.bar is not None:
            if self.bar.desc != "audit":
                self.bar.set_description("audit", refresh=False)
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _announce(opts: AuditOptions, files: list[Path], total: int, already: int, batches: int) -> None:
    """One line on stderr before the workers start: what is read, and what each worker loads."""
    loading = ["rules", "jieba"]
    if opts.classifier is not False:
        loading.append("classifier" + (f" {opts.classifier}" if isinstance(opts.classifier, str) else ""))
    if opts.image_db:
        loading.append(f"image index {opts.image_db}")
    if opts.ocr:
        loading.append("OCR")
    where = (
        f"{opts.workers} worker processes"
        if opts.engine == "local" and opts.workers > 1
        else ("Ray actors" if opts.engine == "ray" else "this process")
    )
    done = f", {already:,} already done" if already else ""
    print(
        f"audit: {total:,} listings in {batches:,} batches from {len(files)} file(s){done}; "
        f"loading {', '.join(loading)} in {where}…",
        file=sys.stderr,
        flush=True,
    )


def run_audit(opts: AuditOptions) -> AuditResult:
    """Run (or continue) an audit of ``opts.input`` into ``opts.out``."""
    t_start = time.perf_counter()
    try:
        files = discover(opts.input)
    except (FileNotFoundError, ValueError) as exc:
        raise AuditError(str(exc)) from exc
    root = Path(opts.input)
    out = Path(opts.out)
    # `moderation audit . --out audit` must not read its own output as input
    files = [f for f in files if not f.resolve().is_relative_to(out.resolve())]
    if not files:
        raise AuditError(f"{root}: no input files outside the output folder {out}")
    if not opts.resume:
        remove_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out)
    try:
        fp = fingerprint(opts, files, root)
        old = manifest.get("fingerprint")
        resumed = old is not None
        if old is not None and old.get("version") != OUTPUT_VERSION:
            raise AuditError(
                f"{out} holds an audit in output format {old.get('version')}, this version writes format "
                f"{OUTPUT_VERSION}; use --restart to start over or another --out folder "
                "(`moderation audit report` and `audit diff` still read it)"
            )
        if old is not None and old != fp:
            raise AuditError(
                f"{out} holds an audit made with other {_explain_mismatch(old, fp)}; "
                "use --restart to start over or another --out folder"
            )
        if old is None:
            manifest.set("fingerprint", fp)
            manifest.set("started_at", time.time())
        manifest.set("input", str(root.resolve()))
        clean_temporary(out)

        specs = list(plan_batches(files, root, opts.batch_size))
        done_ids = manifest.done_batches()
        todo = [s for s in specs if s.batch_id not in done_ids]
        total = sum(s.count for s in specs)
        already = sum(s.count for s in specs if s.batch_id in done_ids)
        if resumed and done_ids:
            log.info("resuming: %d of %d batches already done", len(done_ids), len(specs))
        settings = CheckerSettings(
            classifier=opts.classifier,
            image_db=opts.image_db,
            classifier_batch=opts.classifier_batch,
            ocr=opts.ocr,
            ocr_cache=opts.ocr_cache,
        )
        progress = _Progress(opts.progress and bool(todo), total, already)
        if opts.progress and todo:
            _announce(opts, files, total, already, len(specs))
        t_run = time.perf_counter()
        progress.start()
        run_listings = 0
        ocr_images = ocr_cached = 0
        first: tuple[float, int] | None = None  # when the first batch landed, and its size
        try:
            for done in _engine(opts, todo, out, settings, progress):
                if first is None:
                    first = (time.perf_counter(), done.n_listings)
                manifest.record_batch(
                    done.spec.batch_id,
                    done.spec.source,
                    done.spec.first_line,
                    done.n_listings,
                    done.n_findings,
                    done.n_errors,
                    done.seconds,
                )
                run_listings += done.n_listings
                if opts.ocr:
                    n, c = _ocr_counts(out, done.spec.batch_id)
                    ocr_images, ocr_cached = ocr_images + n, ocr_cached + c
                progress.update(done.n_listings)
        finally:
            progress.close()
        t_end = time.perf_counter()
        run_seconds = t_end - t_run

        all_ids = [s.batch_id for s in specs]
        if opts.jsonl and not manifest.get("jsonl_joined"):
            concat_jsonl(out, all_ids)
            manifest.set("jsonl_joined", True)
        manifest.set("complete", True)
        manifest.set("finished_at", time.time())
        totals = manifest.totals()
        result = AuditResult(
            out=out,
            listings=totals["listings"],
            findings=totals["findings"],
            errors=totals["errors"],
            batches=len(specs),
            batches_run=len(todo),
            listings_run=run_listings,
            seconds=run_seconds,
            resumed=bool(resumed and done_ids),
        )
        if opts.ocr:  # images/s of each run that made this audit, for the report
            stats = {
                "images": ocr_images,
                "cached": ocr_cached,
                "seconds": round(run_seconds, 3),
                "images_per_s": round(ocr_images / run_seconds, 3) if run_seconds > 0 else None,
            }
            result.extra["ocr"] = stats
            manifest.set("ocr_runs", [*(manifest.get("ocr_runs") or []), stats])
        if opts.report:
            from moderation.audit.report import write_report

            write_report(out)
        if opts.enqueue:
            from moderation.audit.enqueue import enqueue_flagged

            result.enqueued = enqueue_flagged(out, manifest, database_url=opts.database_url)
        result.extra["total_seconds"] = time.perf_counter() - t_start
        if first is not None and t_end > first[0]:
            # throughput once the workers were up: what a long run converges to
            result.extra["steady_rate"] = (run_listings - first[1]) / (t_end - first[0])
        if opts.jsonl:
            result.extra["jsonl"] = str(out / JSONL_FILE)
        return result
    finally:
        manifest.close()


def _ocr_counts(out: Path, batch_id: int) -> tuple[int, int]:
    """Pictures of one finished batch that were read (or found in the OCR cache): from its images part."""
    import pyarrow.parquet as pq

    from moderation.audit.writers import part_name

    path = out / "images" / part_name(batch_id, "parquet")
    if not path.exists():
        return 0, 0
    t = pq.read_table(path, columns=["ocr_lines", "ocr_cached"])
    read = t.num_rows - t.column("ocr_lines").null_count
    cached = sum(1 for v in t.column("ocr_cached").to_pylist() if v)
    return read, cached


def _engine(
    opts: AuditOptions, todo: list[BatchSpec], out: Path, settings: CheckerSettings, progress: _Progress
) -> Iterator[BatchDone]:
    if opts.engine == "ray":
        try:
            from moderation.audit.ray_runner import run_ray
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise AuditError("--engine ray needs Ray: pip install 'ray[data]'") from exc
        return run_ray(todo, out, settings, workers=opts.workers, jsonl=opts.jsonl, address=opts.ray_address)
    return run_local(todo, out, settings, workers=opts.workers, jsonl=opts.jsonl)
