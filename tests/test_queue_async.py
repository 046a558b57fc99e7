"""Queue operations awaited from an event loop (``ReviewQueue.run``; ``ReviewQueue.claim_next`` and
``decide``, which the HTTP API calls and which on PostgreSQL send their statements from the loop,
``onloop.py``), on SQLite and PostgreSQL: the same answers, rows and errors as a direct call, no item
claimed twice when awaited and threaded reviewers drain a queue together, and a dropped PostgreSQL
connection retried.

Test 13 (event replay equals state) runs after each test as the ``queue`` fixture's teardown.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from queue_support import (  # noqa: F401  (fixtures "db_url", "queue")
    TRIAGE,
    add_items,
    db_url_fixture,
    queue_fixture,
    reviewer,
)
from sqlalchemy import func, select, text

from moderation.queue import Conflict, DecisionIn, Forbidden, Invalid, ReviewQueue
from moderation.queue.core import DECISIONS, EVENTS, IDEMPOTENCY, OUTBOX


def decision_for(claim: dict) -> DecisionIn:
    return DecisionIn(
        outcome="rejected",
        claim_token=claim["claim_token"],
        version=claim["version"],
        listing_revision=claim["item"]["listing_revision"],
        reason_codes=["absolute_claim"],
    )


def _count(q: ReviewQueue, table: object) -> int:
    with q.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_awaited_answers_and_rows_match_a_direct_call(queue: ReviewQueue) -> None:
    first, second = add_items(queue, 2)
    wf = queue.workflow
    direct = wf.claim_next(reviewer(1))
    awaited = asyncio.run(queue.claim_next(reviewer(2)))
    assert direct is not None and awaited is not None
    assert {direct["item"]["id"], awaited["item"]["id"]} == {first, second}
    assert awaited.keys() == direct.keys() and awaited["item"].keys() == direct["item"].keys()
    assert awaited["item"]["status"] == "claimed" and "claim_token" not in awaited["item"]

    direct_answer = wf.decide(direct["item"]["id"], reviewer(1), decision_for(direct), "k-direct")
    answer = asyncio.run(queue.decide(awaited["item"]["id"], reviewer(2), decision_for(awaited), "k-awaited"))
    assert answer.keys() == direct_answer.keys() and answer["item"]["status"] == "decided"
    # The stored idempotent answer is the answer given, however it was called.
    assert wf.decide(awaited["item"]["id"], reviewer(2), decision_for(awaited), "k-awaited") == answer
    assert (
        asyncio.run(queue.decide(direct["item"]["id"], reviewer(1), decision_for(direct), "k-direct"))
        == direct_answer
    )
    assert (
        asyncio.run(queue.run(wf.decide, direct["item"]["id"], reviewer(1), decision_for(direct), "k-direct"))
        == direct_answer
    )
    assert _count(queue, DECISIONS) == 2 and _count(queue, OUTBOX) == 2 and _count(queue, IDEMPOTENCY) == 2
    with queue.db.read() as conn:
        types = Counter(conn.execute(select(EVENTS.c.type)).scalars())
    assert types == {"created": 2, "claimed": 2, "decided": 2}


def test_awaited_errors_are_the_direct_errors(queue: ReviewQueue) -> None:
    add_items(queue, 2)
    wf = queue.workflow
    claim = wf.claim_next(reviewer(1))
    assert claim is not None
    item_id = claim["item"]["id"]
    stale = decision_for(claim).model_copy(update={"version": 0})
    with pytest.raises(Conflict) as conflict:
        asyncio.run(queue.run(wf.decide, item_id, reviewer(1), stale))
    assert conflict.value.code == "stale_version"
    with pytest.raises(Conflict) as conflict:  # the same answer awaited
        asyncio.run(queue.decide(item_id, reviewer(1), stale))
    assert conflict.value.code == "stale_version"
    with pytest.raises(Conflict) as conflict:
        asyncio.run(queue.run(wf.decide, item_id, reviewer(2), decision_for(claim)))
    assert conflict.value.code == "lease_lost"
    assert _count(queue, DECISIONS) == 0
    answer = asyncio.run(queue.decide(item_id, reviewer(1), decision_for(claim), "key-1"))
    assert asyncio.run(queue.decide(item_id, reviewer(1), decision_for(claim), "key-1")) == answer
    assert asyncio.run(queue.run(wf.decide, item_id, reviewer(1), decision_for(claim), "key-1")) == answer
    other = wf.claim_next(reviewer(1))
    assert other is not None
    with pytest.raises(Invalid) as reused:  # the key again, for another item
        asyncio.run(queue.decide(other["item"]["id"], reviewer(1), decision_for(other), "key-1"))
    assert reused.value.code == "idempotency_key_reused"
    assert _count(queue, DECISIONS) == 1 and _count(queue, IDEMPOTENCY) == 1
    with pytest.raises(Forbidden):
        asyncio.run(queue.run(wf.claim_next, TRIAGE))
    with pytest.raises(Forbidden):
        asyncio.run(queue.claim_next(TRIAGE))


def test_awaited_and_threaded_claims_never_share_an_item(queue: ReviewQueue) -> None:
    """No item claimed twice (semantics test 1) through ``run``: 24 awaiting reviewers on one event loop plus 4 threads calling
    the workflow directly drain 60 items together."""
    add_items(queue, 60)
    wf = queue.workflow

    async def awaiting(n: int) -> list[int]:
        taken = []
        fast = n % 2 == 0  # half through ReviewQueue.claim_next/decide, half through run
        while claim := await (
            queue.claim_next(reviewer(n)) if fast else queue.run(wf.claim_next, reviewer(n))
        ):
            taken.append(claim["item"]["id"])
            if fast:
                await queue.decide(claim["item"]["id"], reviewer(n), decision_for(claim))
            else:
                await queue.run(wf.decide, claim["item"]["id"], reviewer(n), decision_for(claim))
        return taken

    def direct(n: int) -> list[int]:
        taken = []
        while (claim := wf.claim_next(reviewer(n))) is not None:
            taken.append(claim["item"]["id"])
            wf.decide(claim["item"]["id"], reviewer(n), decision_for(claim))
        return taken

    async def everyone() -> list[list[int]]:
        threads = [asyncio.to_thread(direct, 100 + n) for n in range(4)]
        return await asyncio.gather(*[awaiting(n) for n in range(24)], *threads)

    taken = [i for part in asyncio.run(everyone()) for i in part]
    assert len(taken) == len(set(taken)) == 60
    assert _count(queue, DECISIONS) == 60


def test_a_dropped_connection_is_retried(queue: ReviewQueue) -> None:
    """PostgreSQL ends the pooled connection (a restart, an idle timeout): the next awaited decision
    retries once on a fresh connection and succeeds; nothing is written twice."""
    if queue.db.is_sqlite:
        pytest.skip("no server connection to drop on SQLite")
    add_items(queue, 1)
    claim = asyncio.run(queue.run(queue.workflow.claim_next, reviewer(1)))
    assert claim is not None
    with queue.db.engine.connect() as pooled:  # the one connection this test's pool holds
        pid = pooled.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
    admin = ReviewQueue(queue.db.url, upgrade=False)
    with admin.db.engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
    admin.close()
    answer = asyncio.run(
        queue.run(queue.workflow.decide, claim["item"]["id"], reviewer(1), decision_for(claim))
    )
    assert answer["item"]["status"] == "decided" and _count(queue, DECISIONS) == 1


def test_awaited_path_retries_a_dropped_connection(queue: ReviewQueue) -> None:
    """PostgreSQL ends the event loop's pooled connection (``onloop.py``): the decision sent on it fails
    before anything is written, runs once more on a fresh connection and succeeds; the broken
    connection is not reused."""
    on_loop = queue.db.on_loop
    if on_loop is None:
        pytest.skip("the event loop's own connections are PostgreSQL only")
    add_items(queue, 2)

    def pooled() -> int:  # the loop's idle connections (the pool is replaced when it starts afresh)
        return on_loop.engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined,no-any-return]

    backend_pid = select(func.pg_backend_pid().label("pid"))

    async def claim_drop_and_decide() -> dict:
        claim = await queue.claim_next(reviewer(1))
        assert claim is not None and pooled() == 1
        async with on_loop.statement() as tx:
            dropped = (await tx.rows(backend_pid))[0]["pid"]
        with queue.db.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
            admin.commit()
        answer = await queue.decide(claim["item"]["id"], reviewer(1), decision_for(claim))
        async with on_loop.statement() as tx:
            assert (await tx.rows(backend_pid))[0]["pid"] != dropped
        return answer

    assert asyncio.run(claim_drop_and_decide())["item"]["status"] == "decided"
    assert _count(queue, DECISIONS) == 1
    claim = asyncio.run(queue.claim_next(reviewer(1)))  # on a new loop the pool starts afresh
    assert claim is not None and pooled() == 1
    queue.close()
    assert pooled() == 0
