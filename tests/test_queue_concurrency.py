"""The queue's concurrency tests 1–12 (docs/queue-semantics.md: one winner per race, leases that expire,
decisions refused on a changed listing, …), each on SQLite and PostgreSQL with real threads.

Test 13 (replay equals state, gap-free event numbers, one live decision per decided item) runs after
every test here: it is the teardown of the ``queue`` fixture.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from queue_support import (
    SERVICE,
    add_items,
    db_url_fixture,  # noqa: F401  (fixture "db_url")
    lead,
    listing,
    queue_fixture,  # noqa: F401  (fixture "queue")
    result_for,
    reviewer,
    run_threads,
)
from sqlalchemy import func, select, update

from moderation.queue import Conflict, DecisionIn, Forbidden, Invalid, Judgement, ReviewQueue
from moderation.queue.core import DECISIONS, EVENTS, ITEMS, SIGNALS
from moderation.queue.db import utcnow

BULK = Judgement(outcome="rejected", reason_codes=["absolute_claim"])


def decision_for(claim: dict, outcome: str = "rejected", **kw: object) -> DecisionIn:
    return DecisionIn(
        outcome=outcome,
        claim_token=claim["claim_token"],
        version=claim["version"],
        listing_revision=claim["item"]["listing_revision"],
        reason_codes=[] if outcome == "approved" else ["absolute_claim"],
        **kw,
    )  # type: ignore[arg-type]


def count(q: ReviewQueue, stmt: object) -> int:
    with q.db.read() as conn:
        return int(conn.execute(stmt).scalar_one())  # type: ignore[call-overload]


def expire_lease(q: ReviewQueue, item_id: int) -> None:
    with q.db.write() as conn:
        conn.execute(
            update(ITEMS)
            .where(ITEMS.c.id == item_id)
            .values(lease_expires_at=utcnow() - timedelta(minutes=1))
        )


def test_01_two_claimers_one_item(queue: ReviewQueue) -> None:
    add_items(queue, 1)
    results = run_threads(2, lambda i: queue.workflow.claim_next(reviewer(i)))
    assert not any(isinstance(r, Exception) for r in results), results
    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and results.count(None) == 1


@pytest.mark.slow
def test_02_sixteen_workers_drain_500(queue: ReviewQueue) -> None:
    ids = add_items(queue, 500)

    def work(i: int) -> list[int]:
        me, taken = reviewer(i), []
        for _ in range(1000):  # bounded
            claim = queue.workflow.claim_next(me)
            if claim is None:
                return taken
            taken.append(claim["item"]["id"])
            queue.workflow.decide(claim["item"]["id"], me, decision_for(claim, "approved"))
        return taken

    results = run_threads(16, work)
    assert not any(isinstance(r, Exception) for r in results), [
        r for r in results if isinstance(r, Exception)
    ]
    claimed = [i for r in results for i in r]
    assert len(claimed) == len(set(claimed)) == 500
    assert set(claimed) == set(ids)
    with queue.db.read() as conn:
        per_item = Counter(
            dict(
                conn.execute(
                    select(EVENTS.c.item_id, func.count())
                    .where(EVENTS.c.type == "claimed")
                    .group_by(EVENTS.c.item_id)
                ).all()
            )
        )
    assert set(per_item.values()) == {1} and len(per_item) == 500
    assert count(queue, select(func.count()).select_from(DECISIONS)) == 500


def test_03_targeted_claim_races_claim_next(queue: ReviewQueue) -> None:
    for round_ in range(6):
        (item_id,) = add_items(queue, 1, start=round_)

        def race(i: int, item_id: int = item_id) -> object:
            if i == 0:
                return queue.workflow.claim(item_id, reviewer(1))
            return queue.workflow.claim_next(reviewer(2))

        targeted, nxt = run_threads(2, race)
        won = [r for r in (targeted, nxt) if isinstance(r, dict)]
        assert len(won) == 1, (targeted, nxt)
        assert nxt is None or isinstance(targeted, Conflict)
        holder = won[0]
        me = reviewer(1) if holder is targeted else reviewer(2)
        queue.workflow.decide(item_id, me, decision_for(holder, "approved"))
    assert count(queue, select(func.count()).select_from(EVENTS).where(EVENTS.c.type == "claimed")) == 6


def test_04_lease_expiry_hands_item_over(queue: ReviewQueue) -> None:
    (item_id,) = add_items(queue, 1)
    first = queue.workflow.claim(item_id, reviewer(1))
    with pytest.raises(Conflict):
        queue.workflow.claim(item_id, reviewer(2))
    expire_lease(queue, item_id)
    second = queue.workflow.claim_next(reviewer(2))
    assert second is not None and second["item"]["id"] == item_id
    for call in (
        lambda: queue.workflow.heartbeat(item_id, reviewer(1), first["claim_token"]),
        lambda: queue.workflow.decide(item_id, reviewer(1), decision_for(first)),
        lambda: queue.workflow.release(item_id, reviewer(1), first["claim_token"]),
    ):
        with pytest.raises(Conflict) as err:
            call()
        assert err.value.status == 409 and err.value.code == "lease_lost"
    queue.workflow.heartbeat(item_id, reviewer(2), second["claim_token"])
    queue.workflow.decide(item_id, reviewer(2), decision_for(second))


def test_05_eight_simultaneous_decisions(queue: ReviewQueue) -> None:
    (item_id,) = add_items(queue, 1)
    claim = queue.workflow.claim(item_id, reviewer(1))
    results = run_threads(8, lambda i: queue.workflow.decide(item_id, reviewer(1), decision_for(claim)))
    ok = [r for r in results if isinstance(r, dict)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(ok) == 1 and len(conflicts) == 7, results
    assert {c.status for c in conflicts} == {409}
    assert (
        count(queue, select(func.count()).select_from(DECISIONS).where(DECISIONS.c.item_id == item_id)) == 1
    )


def test_06_idempotent_retry(queue: ReviewQueue) -> None:
    (item_id,) = add_items(queue, 1)
    claim = queue.workflow.claim(item_id, reviewer(1))
    body = decision_for(claim, seller_message="请删除“最低价”")
    results = run_threads(
        8, lambda i: queue.workflow.decide(item_id, reviewer(1), body, idempotency_key="key-1")
    )
    assert all(isinstance(r, dict) for r in results), results
    assert all(r == results[0] for r in results)
    again = queue.workflow.decide(item_id, reviewer(1), body, idempotency_key="key-1")
    assert again == results[0]
    assert (
        count(queue, select(func.count()).select_from(DECISIONS).where(DECISIONS.c.item_id == item_id)) == 1
    )
    other = decision_for(claim, "changes_requested")
    with pytest.raises(Invalid) as err:
        queue.workflow.decide(item_id, reviewer(1), other, idempotency_key="key-1")
    assert err.value.status == 422


def test_07_stale_version_on_lead_edit(queue: ReviewQueue) -> None:
    (item_id,) = add_items(queue, 1)
    version = queue.workflow.find_item(item_id)["version"]
    results = run_threads(2, lambda i: queue.workflow.set_priority(item_id, lead(i), 90 + i, version))
    ok = [r for r in results if isinstance(r, dict)]
    stale = [r for r in results if isinstance(r, Conflict)]
    assert len(ok) == 1 and len(stale) == 1 and stale[0].code == "stale_version", results
    assert queue.workflow.find_item(item_id)["priority"] == ok[0]["priority"]


def test_08_listing_edited_mid_review(queue: ReviewQueue) -> None:
    (item_id,) = add_items(queue, 1)
    claim = queue.workflow.claim(item_id, reviewer(1))
    edited = listing(0, title="全网最低价 保温杯 新款")
    out = queue.intake.enqueue(edited, result_for(edited), SERVICE)
    assert out["superseded"] == [item_id] and out["item_id"] != item_id and out["listing_revision"] == 2
    with pytest.raises(Conflict) as err:
        queue.workflow.decide(item_id, reviewer(1), decision_for(claim))
    assert err.value.code == "listing_changed"
    assert queue.workflow.find_item(item_id)["status"] == "superseded"

    # The same race with real threads: the decision and the edit land in either order, never both.
    (racing_id,) = add_items(queue, 1, start=50)
    claim = queue.workflow.claim(racing_id, reviewer(2))
    changed = listing(50, title="史上最低价 保温杯")

    def race(i: int) -> object:
        if i == 0:
            return queue.workflow.decide(racing_id, reviewer(2), decision_for(claim))
        return queue.intake.enqueue(changed, result_for(changed), SERVICE)

    decided, edit = run_threads(2, race)
    status = queue.workflow.find_item(racing_id)["status"]
    if isinstance(decided, dict):
        assert status == "decided" and edit["superseded"] == []
    else:
        assert isinstance(decided, Conflict) and status == "superseded" and edit["superseded"] == [racing_id]


def test_09_concurrent_signals_one_open_item(queue: ReviewQueue) -> None:
    item = listing(7)
    results = run_threads(
        8, lambda i: queue.intake.enqueue(item, result_for(item, risk=0.5 + i / 20), SERVICE)
    )
    assert not any(isinstance(r, Exception) for r in results), results
    item_ids = {r["item_id"] for r in results}
    assert len(item_ids) == 1
    assert sorted(r["action"] for r in results) == ["attached"] * 7 + ["created"]
    (item_id,) = item_ids
    open_items = count(
        queue,
        select(func.count())
        .select_from(ITEMS)
        .where(ITEMS.c.listing_id == "sku-7", ITEMS.c.status.in_(("pending", "claimed", "escalated"))),
    )
    assert open_items == 1
    assert count(queue, select(func.count()).select_from(SIGNALS).where(SIGNALS.c.item_id == item_id)) == 8
    row = queue.workflow.find_item(item_id)
    assert row["signal_count"] == 8 and row["priority"] > 40


def test_10_escalated_items_need_a_senior(queue: ReviewQueue) -> None:
    (item_id,) = add_items(queue, 1)
    claim = queue.workflow.claim(item_id, reviewer(1))
    queue.workflow.escalate(item_id, reviewer(1), "需要组长判断", claim_token=claim["claim_token"])
    with pytest.raises(Forbidden):
        queue.workflow.claim(item_id, reviewer(2))
    assert queue.workflow.claim_next(reviewer(2)) is None
    results = run_threads(2, lambda i: queue.workflow.claim(item_id, lead(i)))
    ok = [r for r in results if isinstance(r, dict)]
    assert len(ok) == 1 and isinstance(next(r for r in results if not isinstance(r, dict)), Conflict)
    winner = lead(results.index(ok[0]))
    queue.workflow.release(item_id, winner, ok[0]["claim_token"])
    assert queue.workflow.find_item(item_id)["status"] == "escalated"  # release keeps it senior-only
    again = queue.workflow.claim_next(winner)
    assert again is not None
    queue.workflow.decide(item_id, winner, decision_for(again))


def test_11_undo_window_and_undo_racing_claim(queue: ReviewQueue) -> None:
    ids = add_items(queue, 6)
    # inside the window: the decider may undo; the item reopens with the next attempt
    claim = queue.workflow.claim(ids[0], reviewer(1))
    queue.workflow.decide(ids[0], reviewer(1), decision_for(claim))
    with pytest.raises(Forbidden):
        queue.workflow.undo(ids[0], reviewer(2))
    undone = queue.workflow.undo(ids[0], reviewer(1), reclaim=True)
    assert undone["attempt"] == 2 and undone["item"]["status"] == "claimed"
    queue.workflow.decide(
        ids[0],
        reviewer(1),
        DecisionIn(
            outcome="approved",
            claim_token=undone["claim_token"],
            version=undone["version"],
            listing_revision=undone["item"]["listing_revision"],
        ),
    )
    # outside the window: refused; a lead reverts instead
    with queue.db.write() as conn:
        conn.execute(
            update(ITEMS).where(ITEMS.c.id == ids[0]).values(decided_at=utcnow() - timedelta(hours=1))
        )
    with pytest.raises(Conflict) as err:
        queue.workflow.undo(ids[0], reviewer(1))
    assert err.value.code == "undo_window_passed"
    with pytest.raises(Forbidden):
        queue.workflow.revert(ids[0], reviewer(1), "误判")
    assert queue.workflow.revert(ids[0], lead(1), "误判，应驳回")["item"]["status"] == "pending"
    # undo racing a new claim: the other reviewer gets the item only after it reopened
    for item_id in ids[1:]:
        claim = queue.workflow.claim(item_id, reviewer(1))
        queue.workflow.decide(item_id, reviewer(1), decision_for(claim))

        def race(i: int, item_id: int = item_id) -> object:
            if i == 0:
                return queue.workflow.undo(item_id, reviewer(1))
            return queue.workflow.claim_next(reviewer(2))

        undo, other = run_threads(2, race)
        assert isinstance(undo, dict), undo
        row = queue.workflow.find_item(item_id)
        if other is not None and other["item"]["id"] == item_id:
            assert row["status"] == "claimed" and row["claimed_by"] == reviewer(2).id
            queue.workflow.release(item_id, reviewer(2), other["claim_token"])
        elif other is not None:  # took an item reopened in an earlier round
            queue.workflow.release(other["item"]["id"], reviewer(2), other["claim_token"])
        assert queue.workflow.find_item(item_id)["status"] == "pending"


def test_12_bulk_decide_with_held_items(queue: ReviewQueue) -> None:
    ids = add_items(queue, 12)
    held = {ids[1]: None, ids[4]: None, ids[7]: None}
    for item_id in held:
        held[item_id] = queue.workflow.claim(item_id, reviewer(1))
    preview = queue.workflow.bulk_decide(lead(1), ids, BULK, dry_run=True)
    assert [p["ok"] for p in preview] == [i not in held for i in ids]

    def race(i: int) -> object:
        if i == 0:
            return queue.workflow.bulk_decide(
                lead(1), ids, BULK.model_copy(update={"seller_message": "请修改标题"})
            )
        return [
            queue.workflow.decide(item_id, reviewer(1), decision_for(claim, "approved"))
            for item_id, claim in held.items()
        ]

    bulk, mine = run_threads(2, race)
    assert isinstance(bulk, list) and isinstance(mine, list), (bulk, mine)
    by_id = {r["item_id"]: r for r in bulk}
    for item_id in ids:
        if item_id in held:
            assert not by_id[item_id]["ok"] and by_id[item_id]["status"] == 409
            assert by_id[item_id]["code"] in ("held", "already_decided")
        else:
            assert by_id[item_id]["ok"]
    with queue.db.read() as conn:
        outcomes = {r.item_id: r.outcome for r in conn.execute(select(DECISIONS))}
    assert len(outcomes) == 12
    assert all(outcomes[i] == ("approved" if i in held else "rejected") for i in ids)
