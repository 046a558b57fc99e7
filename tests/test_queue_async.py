"""The PostgreSQL fast path that the HTTP API awaits on its event loop (``claim_next_async``,
``decide_async``, ``Database.async_pool``): the same answers and rows as the thread-pool path, no item
claimed twice under concurrency, and every case it cannot answer left untouched for ``decide``.

Test 13 (event replay equals state) runs after each test as the ``queue`` fixture's teardown.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from queue_support import TRIAGE, add_items, fresh_database_url, queue_fixture, reviewer  # noqa: F401
from sqlalchemy import func, select, text

from moderation.queue import Conflict, DecisionIn, Forbidden, ReviewQueue
from moderation.queue.core import DECISIONS, EVENTS, IDEMPOTENCY, OUTBOX


@pytest.fixture(name="db_url")
def pg_url_fixture(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL only: SQLite has no async pool (its endpoints stay in the thread pool)."""
    url, drop = fresh_database_url("postgresql", tmp_path)
    yield url
    drop()


def decision_for(claim: dict) -> DecisionIn:
    return DecisionIn(outcome="rejected", claim_token=claim["claim_token"], version=claim["version"],
                       listing_revision=claim["item"]["listing_revision"], reason_codes=["absolute_claim"])


def _count(q: ReviewQueue, table: object) -> int:
    with q.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_async_answers_and_rows_match_the_sync_path(queue: ReviewQueue) -> None:
    first, second = add_items(queue, 2)
    sync_claim = queue.workflow.claim_next(reviewer(1))
    async_claim = asyncio.run(queue.workflow.claim_next_async(reviewer(2)))
    assert sync_claim is not None and async_claim is not None
    assert {sync_claim["item"]["id"], async_claim["item"]["id"]} == {first, second}
    assert async_claim.keys() == sync_claim.keys() and async_claim["item"].keys() == sync_claim["item"].keys()
    assert async_claim["item"]["status"] == "claimed" and async_claim["item"]["families"] == ["absolute_claims"]
    assert "claim_token" not in async_claim["item"]

    sync_answer = queue.workflow.decide(sync_claim["item"]["id"], reviewer(1), decision_for(sync_claim), "k-sync")
    async_answer = asyncio.run(queue.workflow.decide_async(async_claim["item"]["id"], reviewer(2),
                                                           decision_for(async_claim), "k-async"))
    assert async_answer is not None and async_answer.keys() == sync_answer.keys()
    assert async_answer["item"]["status"] == "decided" and async_answer["outcome"] == "rejected"
    # The stored idempotent answer is the answer given, whichever path stored it.
    assert queue.workflow.decide(async_claim["item"]["id"], reviewer(2), decision_for(async_claim),
                                 "k-async") == async_answer
    assert _count(queue, DECISIONS) == 2 and _count(queue, OUTBOX) == 2 and _count(queue, IDEMPOTENCY) == 2
    with queue.db.read() as conn:
        types = Counter(conn.execute(select(EVENTS.c.type)).scalars())
    assert types == {"created": 2, "claimed": 2, "decided": 2}


def test_async_declines_what_only_decide_can_answer(queue: ReviewQueue) -> None:
    add_items(queue, 2)
    claim = queue.workflow.claim_next(reviewer(1))
    assert claim is not None
    item_id = claim["item"]["id"]
    wf = queue.workflow
    stale = decision_for(claim).model_copy(update={"version": 0})
    # Stale version, someone else's claim: nothing written, decide() gives the 409.
    assert asyncio.run(wf.decide_async(item_id, reviewer(1), stale)) is None
    assert asyncio.run(wf.decide_async(item_id, reviewer(2), decision_for(claim))) is None
    assert _count(queue, DECISIONS) == 0
    with pytest.raises(Conflict) as conflict:
        wf.decide(item_id, reviewer(1), stale)
    assert conflict.value.code == "stale_version"
    answer = asyncio.run(wf.decide_async(item_id, reviewer(1), decision_for(claim), "key-1"))
    assert answer is not None
    # A retry and a reused key: declined (rolled back), decide() answers from the stored key.
    assert asyncio.run(wf.decide_async(item_id, reviewer(1), decision_for(claim), "key-1")) is None
    assert wf.decide(item_id, reviewer(1), decision_for(claim), "key-1") == answer
    other = queue.workflow.claim_next(reviewer(1))
    assert other is not None
    assert asyncio.run(wf.decide_async(other["item"]["id"], reviewer(1), decision_for(other), "key-1")) is None
    assert _count(queue, DECISIONS) == 1 and _count(queue, IDEMPOTENCY) == 1
    # Roles are checked before anything is sent.
    with pytest.raises(Forbidden):
        asyncio.run(wf.claim_next_async(TRIAGE))


def test_async_claims_never_hand_out_an_item_twice(queue: ReviewQueue) -> None:
    """QUEUE.md test 1 for the async path: 24 reviewers on one event loop (the pool's 20 connections
    and a wait for a free one) plus 4 threads on the sync path drain 60 items together."""
    add_items(queue, 60)

    async def reviewer_loop(n: int) -> list[int]:
        taken = []
        while (claim := await queue.workflow.claim_next_async(reviewer(n))) is not None:
            taken.append(claim["item"]["id"])
            assert await queue.workflow.decide_async(claim["item"]["id"], reviewer(n), decision_for(claim)) is not None
        return taken

    def sync_loop(n: int) -> list[int]:
        taken = []
        while (claim := queue.workflow.claim_next(reviewer(n))) is not None:
            taken.append(claim["item"]["id"])
            queue.workflow.decide(claim["item"]["id"], reviewer(n), decision_for(claim))
        return taken

    async def everyone() -> list[list[int]]:
        threads = [asyncio.to_thread(sync_loop, 100 + n) for n in range(4)]
        return await asyncio.gather(*[reviewer_loop(n) for n in range(24)], *threads)

    taken = [i for part in asyncio.run(everyone()) for i in part]
    assert len(taken) == len(set(taken)) == 60
    assert _count(queue, DECISIONS) == 60


def test_pool_survives_a_new_loop_and_a_dropped_connection(queue: ReviewQueue) -> None:
    add_items(queue, 3)
    pool = queue.db.async_pool
    assert pool is not None

    async def claim_drop_and_decide() -> tuple[dict, dict | None]:
        claim = await queue.workflow.claim_next_async(reviewer(1))
        assert claim is not None and len(pool._idle) == 1
        # The server ends the pooled connection (a restart, an idle timeout): the decision on it
        # fails and is declined (nothing written), and the broken connection is not reused.
        ((conn, _since),) = pool._idle
        with queue.db.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": conn.info.backend_pid})
            admin.commit()
        declined = await queue.workflow.decide_async(claim["item"]["id"], reviewer(1), decision_for(claim))
        assert pool._idle == []
        return claim, declined

    first, declined = asyncio.run(claim_drop_and_decide())
    assert declined is None and _count(queue, DECISIONS) == 0
    queue.workflow.decide(first["item"]["id"], reviewer(1), decision_for(first))

    async def on_a_new_loop() -> dict | None:  # the pool starts afresh on another event loop
        claim = await queue.workflow.claim_next_async(reviewer(1))
        assert claim is not None
        return await queue.workflow.decide_async(claim["item"]["id"], reviewer(1), decision_for(claim))

    assert asyncio.run(on_a_new_loop()) is not None and len(pool._idle) == 1
    queue.db.dispose()
    assert pool._idle == []
