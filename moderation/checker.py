"""The one entry point: ``check(listing)`` and ``check_many(listings)``.

Every interface (Python API, CLI, HTTP, bulk audit) goes through ``Checker`` so the same listing gets the
same answer everywhere. A listing that cannot be checked (malformed, unknown category, empty text) gets
a result with ``error`` instead of an exception, because one bad row must never stop a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, cast

from moderation.rules.engine import CheckBudgetExceeded, Detection, Folded, RulesEngine
from moderation.rules.lawful import lawful_wording
from moderation.schema import (
    CategoryInference,
    CheckResult,
    ClassifierScore,
    ExplanationSpan,
    Finding,
    ImageResult,
    LawfulWordingInfo,
    Listing,
    ListingError,
    parse_listing,
)
from moderation.settings import settings
from moderation.verdict import decide

log = logging.getLogger(__name__)


class Checker:
    """Rules engine plus, when available, the risk classifier and the copied-image index.

    ``classifier``: ``True`` loads the shipped model (or ``MODERATION_MODEL_DIR``) and, if that fails,
    carries on with rules only and says so in the log; ``False`` never loads it; a path loads that
    checkpoint and fails loudly. ``image_db``: a path to an image index, or ``MODERATION_IMAGE_DB``.
    Listing images are read only as ``data:`` URIs or files under ``image_root`` (else
    ``MODERATION_IMAGE_ROOT``; see ``moderation/images/sources.py``); ``local_image_paths=True`` lets an
    operator's own tool (``moderation check``, the audit) read any local path. ``ocr``: also read the
    text in listing images and check it (moderation/ocr, docs/ocr.md) by default; ``None`` takes
    ``MODERATION_OCR`` (off unless ``1``/``true``); ``check``, ``check_many`` and ``check_here`` take
    ``ocr=`` per call.
    """

    def __init__(
        self,
        engine: RulesEngine | None = None,
        *,
        classifier: bool | str | Path = True,
        image_db: str | Path | None = None,
        image_root: str | Path | None = None,
        local_image_paths: bool = False,
        ocr: bool | None = None,
    ) -> None:
        self.engine = engine or RulesEngine.load()
        self._classifier_setting = classifier
        self._model: Any = None
        self._model_error: str | None = None
        self._model_loaded = False
        self._image_db = image_db if image_db is not None else settings().image_db
        self._images: Any = None
        self._image_root = image_root
        self._local_image_paths = local_image_paths
        self._scorer: Any = None
        self._lock = threading.Lock()
        self.ocr = ocr if ocr is not None else settings().ocr
        self._ocr_stage: Any = None

    # -- optional parts -------------------------------------------------------------------------

    @property
    def model(self) -> Any:
        """The risk classifier, loaded on first use (torch import is slow; rules need none of it)."""
        if self._model_loaded:
            return self._model
        with self._lock:
            if self._model_loaded:
                return self._model
            setting = self._classifier_setting
            if setting is not False:
                try:
                    from moderation.classifier import load_model

                    path = None if setting is True else setting
                    self._model = load_model(path)
                except Exception as exc:  # the rules engine must keep working without a model
                    if setting is not True:
                        raise
                    self._model_error = str(exc)
                    log.warning("risk classifier unavailable, checking with rules only: %s", exc)
            self._model_loaded = True
        return self._model

    @property
    def scorer(self) -> Any:
        """A BatchScorer on the loaded model (None without one), created on first use by check_async."""
        model = self.model
        if model is None:
            return None
        if self._scorer is None:
            with self._lock:
                if self._scorer is None:
                    from moderation.classifier.batcher import BatchScorer

                    self._scorer = BatchScorer(model, threads=settings().scorer_threads)
        return self._scorer

    @property
    def images(self) -> Any:
        if self._images is None and self._image_db:
            with self._lock:
                if self._images is None:
                    from moderation.images.matcher import ImageChecker

                    self._images = ImageChecker.open(self._image_db, sources=self._image_sources())
        return self._images

    def _image_sources(self) -> Any:
        """Where listing images may be read from: any local path (the command line), the configured image
        root, or what the environment allows (the server). The copy index and OCR read alike."""
        from moderation.images.sources import ImageSources

        if self._local_image_paths:
            return ImageSources(any_path=True)
        return ImageSources(self._image_root) if self._image_root else ImageSources.from_env()

    @property
    def ocr_stage(self) -> Any:
        """The OCR stage (moderation/ocr), built on first use; it reads images as ``images`` does."""
        if self._ocr_stage is None:
            with self._lock:
                if self._ocr_stage is None:
                    from moderation.ocr.stage import OcrStage

                    self._ocr_stage = OcrStage(sources=self._image_sources())
        return self._ocr_stage

    # -- checking -------------------------------------------------------------------------------

    def _prepare(self, raw: Any) -> Listing | CheckResult:
        if isinstance(raw, Listing | CheckResult):
            return raw
        listing_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            return parse_listing(raw)
        except ListingError as exc:
            return CheckResult.failed(None if listing_id is None else str(listing_id), exc.code, exc.message)

    def finish(self, listing: Listing, detection: Detection, score: float | None) -> CheckResult:
        """The second half of a check: image findings, verdict and risk from the rules' detection and a
        score; the result says when the rules were truncated or ran with an inferred category."""
        findings = detection.findings
        image_results: list[ImageResult] = []
        if listing.images and self.images is not None:
            image_results, image_findings = self.images.check_listing(listing)
            findings = findings + image_findings
        lawful = self._lawful_wording(listing, detection, findings, score)
        verdict, risk = decide(
            findings,
            self.engine.policy,
            score,
            truncated=detection.truncated,
            lawful_wording=lawful is not None,
        )
        model = self.model
        classifier = None
        if score is not None:
            classifier = ClassifierScore(score=round(float(score), 4), model=model.name)
            classifier.lawful_wording = lawful
            if (
                verdict == "review"
                and not findings
                and score >= self.engine.policy.classifier_review_threshold
            ):
                classifier.explanation = self.explain(listing)
        inferred = detection.inferred
        return CheckResult.model_construct(  # built from validated parts; no second validation pass
            id=listing.id,
            verdict=verdict,
            risk=risk,
            findings=findings,
            classifier=classifier,
            images=image_results,
            error=None,
            truncated=True if detection.truncated else None,
            category_inferred=CategoryInference.model_construct(**cast("dict[str, Any]", inferred.as_json()))
            if inferred is not None
            else None,
        )

    def _lawful_wording(
        self, listing: Listing, detection: Detection, findings: list[Finding], score: float | None
    ) -> LawfulWordingInfo | None:
        """Only when the score alone would send the listing to review: is its text lawful wording?"""
        if (
            score is None
            or score < self.engine.policy.classifier_review_threshold
            or detection.truncated
            or any(f.action != "pass" for f in findings)
        ):
            return None
        text = "，".join(t for t in (listing.title, listing.description) if t)
        return lawful_wording().recognise(text, detection.category)

    def for_model(self, listing: Listing, folded: Folded | None = None) -> Listing:
        """The listing as the classifier scores and explains it: a ``general`` listing carries the
        category the rules infer for it. ``folded``: the listing as the rules folded it for ``detect``
        (``fold_many``), whose inference is reused; without it, ``RulesEngine.scoring_category``."""
        if listing.category != "general":
            return listing
        if folded is not None:
            category = folded.inferred.category if folded.inferred is not None else "general"
        else:
            category = self.engine.scoring_category(listing)
        return listing if category == listing.category else listing.model_copy(update={"category": category})

    def explain(self, listing: Listing) -> list[ExplanationSpan] | None:
        """The words that drove the classifier's score (``classifier.explanation``), or None without a
        model or when explaining fails. ``finish`` asks for it when the score alone sends a listing
        to review, so a reviewer sees why."""
        model = self.model
        if model is None:
            return None
        try:
            from moderation.classifier.explain import explain_listing

            return [ExplanationSpan(**sp.as_dict()) for sp in explain_listing(model, self.for_model(listing))]
        except Exception:  # an explanation is a courtesy; the check result must not fail for it
            log.exception("explaining the classifier score of %s failed", listing.id)
            return None

    def check(self, raw: Listing | dict[str, Any], *, ocr: bool | None = None) -> CheckResult:
        """Check one listing (a ``Listing`` or its JSON dict); ``ocr`` overrides the checker's setting."""
        return self.check_many([raw], ocr=ocr)[0]

    def warm_up(self) -> None:
        """Load the model and pass one listing through ``check`` and the scorer thread, so that a
        server's first request does not pay for the torch import, the model load or a new ONNX session."""
        listing = Listing(id="warm-up", title="全网最低价 保温杯", description="保温12小时")
        self.check(listing)
        if self.scorer is not None:
            self.scorer.submit(self.for_model(listing)).result()
            # Explanations load jieba's dictionary (seconds, holding the GIL) on first use: not mid-load.
            self.explain(listing)

    def find_within(self, listing: Listing, budget_s: float | None = None) -> Detection:
        """The rules' detection within a CPU budget (``CheckBudgetExceeded`` past it)."""
        return self.engine.detect(listing, budget_s=budget_s)

    def check_scored(
        self,
        listing: Listing,
        score: Future[float] | None,
        budget_s: float | None = None,
        find: Callable[[Listing, float | None], Detection] | None = None,
        *,
        ocr: bool | None = None,
    ) -> CheckResult:
        """The whole check of one listing on the calling (worker) thread: rules within ``budget_s``,
        then the score from ``score`` (a BatchScorer future, usually ready by then), then ``finish``.
        A listing over its budget gets the error result ``too_costly``; any other failure
        ``internal_error`` (the contract of check_many: a result, never a crash). ``find`` replaces
        ``find_within`` (the server runs heavy listings in a separate process); with ``ocr`` the rules
        run here over the fields and the images' text instead (``moderation.ocr.check.ocr_find``)."""
        texts: list[Any] = []
        if ocr if ocr is not None else self.ocr:
            from moderation.ocr.check import ocr_find

            find = ocr_find(self.ocr_stage, self.engine, texts)
        try:
            detection = (find or self.find_within)(listing, budget_s)
            value = score.result() if score is not None else None
            result = self.finish(listing, detection, value)
            if texts:
                from moderation.ocr.stage import annotate

                annotate(result, texts, len(listing.images))
            return result
        except Exception as exc:
            if getattr(exc, "propagate", False):
                raise
            if isinstance(exc, CheckBudgetExceeded) or getattr(exc, "too_costly", False):
                return CheckResult.failed(
                    listing.id,
                    "too_costly",
                    f"checking this listing needs more than its {budget_s:g} s CPU budget",
                )
            log.exception("checking listing %s failed", listing.id)
            return CheckResult.failed(listing.id, "internal_error", f"{type(exc).__name__}: {exc}")

    def check_here(
        self,
        listing: Listing,
        budget_s: float | None = None,
        find: Callable[[Listing, float | None], Detection] | None = None,
        *,
        ocr: bool | None = None,
    ) -> CheckResult:
        """``check_scored`` with the listing handed to the shared scorer first: the whole check on the
        calling (worker) thread, the forward pass batched on the scorer's thread meanwhile."""
        scorer = self.scorer
        return self.check_scored(
            listing,
            scorer.submit(self.for_model(listing)) if scorer is not None else None,
            budget_s,
            find,
            ocr=ocr,
        )

    async def check_async(
        self,
        listing: Listing,
        *,
        submit: Callable[..., Future[Any]] | None = None,
        budget_s: float | None = None,
        then: Callable[[CheckResult], Any] | None = None,
        heavy: bool = False,
    ) -> Any:
        """Check one listing from an event loop: the same answer as ``check``, computed off the loop.

        The classifier score comes from the shared ``scorer`` thread (batched with other requests'
        listings); the rules, the verdict and ``then`` (the caller's rendering of the result, e.g. to
        JSON bytes) run in one job given to ``submit`` (a ``CheckPool.submit``: bounded, may refuse with
        ``Saturated`` before anything is queued) or, without one, in asyncio's default executor. The
        loop only awaits. ``budget_s`` bounds the rules' CPU time
        (``too_costly``). Returns ``then(result)``, or the CheckResult when ``then`` is None.
        """

        def job(score: Future[float] | None) -> Any:
            result = self.check_scored(listing, score, budget_s)
            return then(result) if then is not None else result

        if submit is None:
            scorer = self.scorer
            return await asyncio.to_thread(
                job, scorer.submit(self.for_model(listing)) if scorer is not None else None
            )
        # Admission first: a refused request must not leave work for the scorer.
        gate: Future[Future[float] | None] = Future()
        future = submit(_after, gate, job, heavy=heavy)
        try:
            scorer = self.scorer
            gate.set_result(scorer.submit(self.for_model(listing)) if scorer is not None else None)
        except Exception as exc:  # the job must not wait for a score that will never come
            gate.set_exception(exc)
        return await asyncio.wrap_future(future)

    def check_many(
        self,
        raws: Iterable[Listing | dict[str, Any] | CheckResult],
        batch_size: int = 64,
        *,
        ocr: bool | Any = None,
    ) -> list[CheckResult]:
        """Check many listings, in order, one result per input; the classifier scores them in batches.

        Readers hand over their lines as parsed: a ``Listing``, a JSON dict (validated here), or the
        ``CheckResult`` a line already is because it could not be read (``schema.read_json_line``
        gives ``malformed_json``), which comes back in its place. So results line up with lines.
        ``ocr``: also check the text in the listings' images (``True``: with ``ocr_stage``; an
        ``OcrStage``: with that one); ``None`` takes the checker's setting.
        """
        use = self.ocr if ocr is None else ocr
        check_one: Callable[[Listing, float | None], CheckResult] = self._check_one
        if use is not False:
            from moderation.ocr.check import check_listing_ocr

            check_one = functools.partial(check_listing_ocr, self, self.ocr_stage if use is True else use)
        prepared = [self._prepare(r) for r in raws]
        results: list[CheckResult | None] = [p if isinstance(p, CheckResult) else None for p in prepared]
        todo = [(i, p) for i, p in enumerate(prepared) if isinstance(p, Listing)]
        for offset in range(0, len(todo), batch_size):
            with collector_paused():
                self._check_batch(todo[offset : offset + batch_size], results, use, check_one)
        return [r for r in results if r is not None]

    def _check_batch(
        self,
        batch: list[tuple[int, Listing]],
        results: list[CheckResult | None],
        use: bool | Any,
        check_one: Callable[[Listing, float | None], CheckResult],
    ) -> None:
        """One batch of ``check_many``: each listing's result into ``results`` at its index."""
        # Without OCR, the rules fold the batch's texts and infer its categories in one pass each,
        # and detect stage by stage over the batch.
        listings = [listing for _, listing in batch]
        folds = self._fold_batch(listings) if use is False else None
        model = self.model
        scores: list[float | None] = [None] * len(batch)
        if model is not None:
            # The model was trained on the category tag plus the text (see models/MODEL_CARD.md); a
            # general listing is tagged with the category its fold inferred (no second inference).
            scoring = (
                [self.for_model(x, f) for x, f in zip(listings, folds, strict=True)]
                if folds is not None
                else [self.for_model(x) for x in listings]
            )
            scores = list(model.score_listings(scoring))
        detections = self.engine.detect_many(listings, folds) if folds is not None else None
        for k, ((i, listing), score) in enumerate(zip(batch, scores, strict=True)):
            try:
                if detections is not None:
                    detection = detections[k]
                    if isinstance(detection, Exception):
                        raise detection
                    results[i] = self.finish(listing, detection, score)
                else:
                    results[i] = check_one(listing, score)
            except Exception as exc:  # one listing must never stop a run
                log.exception("checking listing %s failed", listing.id)
                results[i] = CheckResult.failed(listing.id, "internal_error", f"{type(exc).__name__}: {exc}")

    def _fold_batch(self, listings: list[Listing]) -> list[Folded] | None:
        """The batch folded for the rules (``RulesEngine.fold_many``), or None when that fails: then each
        listing is folded on its own, so that only the listing that cannot be checked gets an error."""
        try:
            return self.engine.fold_many(listings)
        except Exception:
            return None

    def _check_one(self, listing: Listing, score: float | None) -> CheckResult:
        return self.finish(listing, self.engine.detect(listing), score)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one batch of checks, back on after.

    Why: a batch allocates tens of thousands of short-lived containers (folded texts, candidates,
    findings, results) and none of them form a cycle that outlives the batch, so the young-generation
    collections they trigger on the way find nothing to free; they cost several per cent of a check.
    Reference counting still frees everything as before. The collector is process-wide: when it is
    already off (the caller's choice, or another thread's batch) it is left as it is, and each pause
    ends with the batch that began it, so it is never left off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _after(gate: Future[Future[float] | None], job: Callable[[Future[float] | None], Any]) -> Any:
    """Run ``job`` with the score future handed over through ``gate`` (set right after admission)."""
    try:
        score = gate.result()
    except Exception:
        log.exception("the risk scorer did not take the listing; checking with rules only")
        score = None
    return job(score)


_default: Checker | None = None
_default_lock = threading.Lock()


def default_checker() -> Checker:
    """A process-wide checker on the shipped rules and model."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Checker()
    return _default


def check(listing: Listing | dict[str, Any], *, ocr: bool | None = None) -> CheckResult:
    """Check one listing with the default checker (``ocr=True``: also the text in its images)."""
    return default_checker().check(listing, ocr=ocr)


def check_many(listings: Iterable[Listing | dict[str, Any]]) -> list[CheckResult]:
    """Check listings in order with the default checker."""
    return default_checker().check_many(listings)
