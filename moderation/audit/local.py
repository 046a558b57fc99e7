"""The local engine: a process pool over batches, each worker holding one Checker.

Workers read their batch straight from the input (by its planned offset), check it and write its
part files, and send back only a few counts; the coordinating process then commits the batch to
the manifest. So the coordinator never parses or serialises listings, and the run scales with the
cores instead of with one process's JSON and Parquet work.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moderation.audit.batch import run_batch
from moderation.audit.readers import BatchSpec
from moderation.audit.writers import write_parts


@dataclass(frozen=True)
class CheckerSettings:
    """How each worker builds its Checker (picklable, so it can cross to workers and Ray actors)."""

    classifier: bool | str = True
    image_db: str | None = None
    classifier_batch: int = 16
    threads: int = 1  # torch threads per worker: the pool already uses every core
    #: Read the text in listing images (moderation/ocr) with this OCR cache file (None: the default,
    #: ``MODERATION_OCR_CACHE`` or var/ocr-cache.sqlite).
    ocr: bool = False
    ocr_cache: str | None = None

    def build(self) -> Any:
        # Set before any model loads: ONNX Runtime and torch (spawned workers import them lazily with the
        # classifier) take their thread count from these; the ONNX path never imports torch at all.
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(self.threads))
        # One "Loading weights" bar per worker would garble the audit's own progress bar (read by
        # huggingface_hub and transformers when a checkpoint loads through them).
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from moderation.checker import Checker

        checker = Checker(classifier=self.classifier, image_db=self.image_db, local_image_paths=True)
        model = checker.model  # load now, not in the first batch
        if model is not None and model.backend == "torch":  # the graph already read OMP_NUM_THREADS
            import torch

            torch.set_num_threads(self.threads)
        if self.ocr:
            from moderation.images.sources import ImageSources
            from moderation.ocr.cache import OcrCache
            from moderation.ocr.check import OcrChecker
            from moderation.ocr.engine import OcrSettings
            from moderation.ocr.stage import OcrStage

            cache = OcrCache(self.ocr_cache) if self.ocr_cache else OcrCache.from_env()
            stage = OcrStage(
                sources=ImageSources(any_path=True), cache=cache, settings=OcrSettings(threads=self.threads)
            )
            return OcrChecker(checker, stage)  # the models load at the first picture not in the cache
        return checker


@dataclass(frozen=True)
class BatchDone:
    """What a finished batch reports back to the coordinator."""

    spec: BatchSpec
    n_listings: int
    n_findings: int
    n_errors: int
    seconds: float


def process_batch(
    checker: Any, spec: BatchSpec, out_dir: Path, jsonl: bool, classifier_batch: int
) -> BatchDone:
    """Check one batch and put its parts in place (the manifest commit is the caller's)."""
    t0 = time.perf_counter()
    output = run_batch(checker, spec, jsonl=jsonl, classifier_batch=classifier_batch)
    write_parts(out_dir, output)
    return BatchDone(
        spec, output.n_listings, output.findings.num_rows, output.n_errors, time.perf_counter() - t0
    )


_in_process: dict[tuple[Any, ...], Any] = {}


def _in_process_checker(settings: CheckerSettings) -> Any:
    """One Checker per settings and rules folder for in-process runs: repeated audits in one process
    (tests, notebooks) do not reload the rules and jieba each time."""
    from moderation.paths import rules_dir

    key = (settings.classifier, settings.image_db, settings.ocr, settings.ocr_cache, str(rules_dir()))
    if key not in _in_process:
        _in_process[key] = settings.build()
    return _in_process[key]


# -- worker process state ----------------------------------------------------------------------------

_worker_checker: Any = None


def _init_worker(settings: CheckerSettings) -> None:
    global _worker_checker
    _worker_checker = settings.build()


def _work(spec: BatchSpec, out_dir: str, jsonl: bool, classifier_batch: int) -> BatchDone:
    return process_batch(_worker_checker, spec, Path(out_dir), jsonl, classifier_batch)


def run_local(
    specs: Iterable[BatchSpec],
    out_dir: Path,
    settings: CheckerSettings,
    *,
    workers: int,
    jsonl: bool,
) -> Iterator[BatchDone]:
    """Yield each batch as it finishes (any order). ``workers <= 1`` runs in this process."""
    if workers <= 1:
        checker = _in_process_checker(settings)
        for spec in specs:
            yield process_batch(checker, spec, out_dir, jsonl, settings.classifier_batch)
        return
    # spawn, not fork: the coordinator may hold threads (progress bar, Ray, torch) that fork would copy
    # in a locked state, and spawned workers import only what checking needs.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(settings,)
    ) as pool:
        pending: set[Future[BatchDone]] = set()
        it = iter(specs)
        while True:
            # enough queued work to keep every worker busy, no more (bounded memory)
            for spec in itertools.islice(it, workers * 2 - len(pending)):
                pending.add(pool.submit(_work, spec, str(out_dir), jsonl, settings.classifier_batch))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(done, key=lambda f: f.result().spec.batch_id):
                yield fut.result()
