"""The server's scoring thread (BatchScorer) and Checker.check_async: same answers as check, batched.

The gated fake model makes batching deterministic: the first forward pass waits on an event while the
other listings queue up, so the second pass must take them all at once.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from moderation.api import create_app
from moderation.checker import Checker
from moderation.classifier.batcher import BatchScorer
from moderation.rules.engine import RulesEngine
from moderation.schema import Listing

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "risk-classifier"

LISTINGS = [
    Listing(id="a", title="全网最低价 保温杯 500ml", category="general"),
    Listing(
        id="b",
        title="【食品】手撕牛肉干 净含量500g",
        description="口感酥脆不粘牙，独立小包装。",
        category="food",
    ),
    Listing(id="c", title="祛斑霜", description="用了三天斑就没了，比医院的药还管用🔥", category="cosmetics"),
    Listing(id="d", title="ＮＯ．１ 人气 保溫杯", description="最多可容纳 500ml，第一次使用请清洗。" * 20),
    Listing(
        id="e", title="躺赚项目 稳赚不赔", description="投资 1 万，每月保底收益 20%。", category="finance"
    ),
]


class GatedModel:
    """Scores = len(title) / 100; the first call blocks until ``gate`` is set; records batch sizes."""

    name = "gated@test"

    def __init__(self, fail_first: bool = False) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.sizes: list[int] = []
        self.threads: list[int | None] = []
        self.fail_first = fail_first

    def score_listings(self, listings, batch_size=64, threads=None):  # type: ignore[no-untyped-def]
        first = not self.sizes
        self.sizes.append(len(listings))
        self.threads.append(threads)
        if first:
            self.entered.set()
            self.gate.wait(10)
            if self.fail_first:
                raise RuntimeError("model exploded")
        return [len(listing.title) / 100 for listing in listings]


def test_waiting_listings_share_one_forward_pass_and_keep_their_order() -> None:
    model = GatedModel()
    scorer = BatchScorer(model, threads=1, max_batch=8)
    first = scorer.submit(LISTINGS[0])
    assert model.entered.wait(5)
    rest = [scorer.submit(listing) for listing in LISTINGS[1:]] + [scorer.submit(LISTINGS[0])]
    model.gate.set()
    assert first.result(5) == pytest.approx(len(LISTINGS[0].title) / 100)
    expected = [len(listing.title) / 100 for listing in [*LISTINGS[1:], LISTINGS[0]]]
    assert [f.result(5) for f in rest] == pytest.approx(expected)
    assert model.sizes == [1, len(LISTINGS)]  # everything that waited went in one batch
    assert model.threads == [1, 1]
    assert (scorer.batches, scorer.scored) == (2, 1 + len(LISTINGS))
    scorer.close()


def test_max_batch_caps_a_forward_pass() -> None:
    model = GatedModel()
    scorer = BatchScorer(model, max_batch=2)
    scorer.submit(LISTINGS[0])
    assert model.entered.wait(5)
    futures = [scorer.submit(listing) for listing in LISTINGS]
    model.gate.set()
    assert len([f.result(5) for f in futures]) == len(LISTINGS)
    assert model.sizes == [1, 2, 2, 1]
    scorer.close()


def test_a_failing_batch_fails_its_callers_and_the_thread_goes_on() -> None:
    model = GatedModel(fail_first=True)
    scorer = BatchScorer(model)
    doomed = scorer.submit(LISTINGS[0])
    assert model.entered.wait(5)
    model.gate.set()
    with pytest.raises(RuntimeError, match="model exploded"):
        doomed.result(5)
    assert scorer.submit(LISTINGS[1]).result(5) == pytest.approx(len(LISTINGS[1].title) / 100)
    scorer.close()


def test_close_finishes_what_is_queued_then_refuses() -> None:
    model = GatedModel()
    scorer = BatchScorer(model)
    queued = [scorer.submit(listing) for listing in LISTINGS]
    model.gate.set()
    scorer.close()
    assert all(f.done() for f in queued)
    with pytest.raises(RuntimeError, match="closed"):
        scorer.submit(LISTINGS[0])
    with pytest.raises(ValueError):
        BatchScorer(model, max_batch=0)


def test_check_async_with_a_failing_model_returns_an_error_result(engine: RulesEngine) -> None:
    checker = Checker(engine, classifier=False)
    model = GatedModel(fail_first=True)
    model.gate.set()
    checker._model, checker._model_loaded = model, True  # a model that raises on its first batch
    result = asyncio.run(checker.check_async(LISTINGS[0]))
    assert result.error is not None and result.error.code == "internal_error"
    assert "model exploded" in result.error.message
    assert asyncio.run(checker.check_async(LISTINGS[1])).error is None


@pytest.fixture(scope="module")
def shipped_checker(engine: RulesEngine) -> Checker:
    return Checker(engine, classifier=SHIPPED)


def test_check_async_gives_the_same_answer_as_check(shipped_checker: Checker) -> None:
    from moderation.api.checkpool import CheckPool

    pool = CheckPool(2)

    async def all_at_once() -> list:  # half through a check pool, half through asyncio's executor
        return await asyncio.gather(
            *(
                shipped_checker.check_async(listing, submit=pool.submit if i % 2 else None)
                for i, listing in enumerate(LISTINGS)
            )
        )

    concurrent = asyncio.run(all_at_once())
    for listing, got in zip(LISTINGS, concurrent, strict=True):
        want = shipped_checker.check(listing)
        assert got.classifier is not None
        assert got.to_json_dict() == want.to_json_dict(), listing.id
    assert shipped_checker.scorer.scored >= len(LISTINGS)


def test_http_check_scores_through_the_scorer(shipped_checker: Checker, tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'q.db'}", shipped_checker)
    accounts = app.state.accounts
    token = accounts.create_token(accounts.create_user("svc", "service").id, "t")
    before = shipped_checker.scorer.scored
    with TestClient(app) as client:
        for listing in LISTINGS:
            r = client.post(
                "/v1/check", json=listing.model_dump(), headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200, r.text
            assert r.json() == shipped_checker.check(listing).to_json_dict()
    assert shipped_checker.scorer.scored == before + len(LISTINGS)
    app.state.queue.close()


def test_warm_up_loads_the_model_and_starts_the_scorer(engine: RulesEngine) -> None:
    checker = Checker(engine, classifier=SHIPPED)
    checker.warm_up()
    assert checker._model_loaded and checker.model is not None
    assert checker.scorer.scored == 1 and checker.scorer.batches == 1
    Checker(engine, classifier=False).warm_up()  # rules only: nothing to start, no error


@pytest.mark.slow
def test_a_lazily_built_checker_is_warm_before_the_first_request_uses_it(tmp_path: Path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'q.db'}")  # no checker given: built on first /v1/check
    accounts = app.state.accounts
    token = accounts.create_token(accounts.create_user("svc", "service").id, "t")
    with TestClient(app) as client:
        r = client.post(
            "/v1/check", json=LISTINGS[2].model_dump(), headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
    checker = app.state.checker
    assert checker._model_loaded and checker.model is not None
    assert r.json()["classifier"]["model"] == checker.model.name
    assert checker.scorer.scored == 2  # the warm-up listing, then the request's
    app.state.queue.close()
