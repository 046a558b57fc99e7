"""Checking listings with the text of their pictures: the same answer as ``Checker``, plus ``image:N``.

``OcrChecker(checker, stage)`` wraps a ``moderation.checker.Checker``: ``check``/``check_many`` run the
rules once over the listing's fields and its images' text (``OcrStage.detect``), then the checker's own
``finish`` (copied images, verdict, risk) with the classifier's score of the listing text, and finally put
each image's ``ocr`` object on the result. Everything else (``engine``, ``model``, ...) is the wrapped
checker's. The bulk audit and ``moderation check --ocr`` use it; ``check_listing_ocr`` is the one-listing
form for a server's worker thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from moderation.ocr.stage import OcrStage, annotate
from moderation.schema import CheckResult, Listing


def check_listing_ocr(
    checker: Any, stage: OcrStage, listing: Listing, score: float | None = None, budget_s: float | None = None
) -> CheckResult:
    """One listing: rules over its fields and its images' text, then ``checker.finish``.

    ``budget_s`` bounds the rules' CPU time as ``RulesEngine.detect`` does (not the OCR, which is
    bounded by the pictures' sizes and counts).
    """
    kwargs: dict[str, Any] = {"budget_s": budget_s} if budget_s is not None else {}
    detection, texts = stage.detect(checker.engine, listing, **kwargs)
    result: CheckResult = checker.finish(listing, detection, score)
    annotate(result, texts, len(listing.images))
    return result


def ocr_find(stage: OcrStage, rules: Any, texts: list[Any]) -> Any:
    """A ``find(listing, budget_s) -> Detection`` for ``Checker.check_scored`` that checks the listing's
    fields and its images' text; the images' ImageTexts are appended to ``texts``."""

    def find(listing: Listing, budget_s: float | None) -> Any:
        kwargs: dict[str, Any] = {"budget_s": budget_s} if budget_s is not None else {}
        detection, read = stage.detect(rules, listing, **kwargs)
        texts.extend(read)
        return detection

    return find


class OcrChecker:
    """A Checker whose ``check``/``check_many`` also read the listing's pictures (see the module)."""

    def __init__(self, checker: Any, stage: OcrStage) -> None:
        self.checker = checker
        self.ocr = stage

    def __getattr__(self, name: str) -> Any:
        return getattr(self.checker, name)

    def check(self, raw: Listing | dict[str, Any]) -> CheckResult:
        return self.check_many([raw])[0]

    def check_many(
        self, raws: Iterable[Listing | dict[str, Any] | CheckResult], batch_size: int = 64
    ) -> list[CheckResult]:
        return self.checker.check_many(raws, batch_size, ocr=self.ocr)  # type: ignore[no-any-return]
