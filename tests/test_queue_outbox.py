"""Outbox delivery on SQLite and PostgreSQL: the undo-window hold, lease and acknowledge, undo and
revert (cancel or retract), per-listing order, lease expiry, and concurrent consumers with real
threads (no record leased twice, none lost). Times are moved in SQL, never slept."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from queue_support import (  # noqa: F401  (fixtures "db_url", "queue")
    SERVICE,
    add_items,
    db_url_fixture,
    lead,
    listing,
    queue_fixture,
    result_for,
    reviewer,
    run_threads,
)
from sqlalchemy import select, update

from moderation.queue import Conflict, DecisionIn, Forbidden, Invalid, NotFound, ReviewQueue
from moderation.queue.core import ITEMS, OUTBOX
from moderation.queue.db import utcnow
from moderation.queue.roles import Actor


def _decide(queue: ReviewQueue, item_id: int, who: Actor | None = None, outcome: str = "rejected") -> int:
    who = who or reviewer()
    claim = queue.workflow.claim(item_id, who)
    codes = [] if outcome == "approved" else ["absolute_claim"]
    out = queue.workflow.decide(
        item_id,
        who,
        DecisionIn(
            outcome=outcome,
            claim_token=claim["claim_token"],
            version=claim["version"],
            listing_revision=claim["item"]["listing_revision"],
            reason_codes=codes,
            seller_message="请修改",
        ),
    )
    return int(out["decision_id"])


def _window_passes(queue: ReviewQueue) -> None:
    """Every record's hold ends now (as if the undo window had passed)."""
    with queue.db.write() as conn:
        conn.execute(update(OUTBOX).values(available_at=utcnow() - timedelta(seconds=1)))


def _expire_decisions(queue: ReviewQueue) -> None:
    """The undo window passes for every decision (the reviewer can no longer undo)."""
    with queue.db.write() as conn:
        conn.execute(
            update(ITEMS)
            .where(ITEMS.c.decided_at.is_not(None))
            .values(decided_at=ITEMS.c.decided_at - timedelta(seconds=600))
        )


def _states(queue: ReviewQueue) -> list[tuple[str, str, str]]:
    return [(r["listing_id"], r["kind"], r["state"]) for r in queue.outbox.records(status="all")["records"]]


def test_notification_waits_out_the_undo_window_then_lease_and_ack(queue: ReviewQueue) -> None:
    [item_id] = add_items(queue, 1)
    decision_id = _decide(queue, item_id)
    assert queue.outbox.lease()["records"] == []  # inside the undo window
    [pending] = queue.outbox.records()["records"]
    assert pending["state"] == "waiting" and pending["decision_id"] == decision_id
    assert pending["payload"] == {
        "listing_id": "sku-0",
        "listing_revision": 1,
        "outcome": "rejected",
        "reason_codes": ["absolute_claim"],
        "reasons": ["绝对化用语"],
        "message": "请修改",
    }
    with pytest.raises(Conflict) as never_leased:
        queue.outbox.ack([pending["id"]])
    assert never_leased.value.code == "not_leased"

    _window_passes(queue)
    leased = queue.outbox.lease(SERVICE, limit=10)
    [record] = leased["records"]
    assert record["id"] == pending["id"] and record["state"] == "leased" and record["attempts"] == 1
    assert queue.outbox.lease(SERVICE)["records"] == []  # nobody else gets it while the lease runs

    with pytest.raises(NotFound) as unknown:
        queue.outbox.ack([record["id"], 999_999])
    assert unknown.value.code == "unknown_outbox_record" and unknown.value.extra["ids"] == [999_999]
    assert queue.outbox.records()["records"][0]["state"] == "leased"  # nothing was marked

    assert queue.outbox.ack([record["id"]], SERVICE) == {
        "acknowledged": [record["id"]],
        "already_acknowledged": [],
    }
    assert queue.outbox.ack([record["id"]], SERVICE) == {
        "acknowledged": [],
        "already_acknowledged": [record["id"]],
    }
    assert queue.outbox.records()["records"] == []
    [done] = queue.outbox.records(status="delivered")["records"]
    assert done["state"] == "delivered" and done["sent_at"]
    assert queue.outbox.counts() == {"delivered": 1, "cancelled": 0, "leased": 0, "waiting": 0, "ready": 0}


def test_undo_inside_the_window_cancels_the_notification(queue: ReviewQueue) -> None:
    [item_id] = add_items(queue, 1)
    first = _decide(queue, item_id)
    reopened = queue.workflow.undo(item_id, reviewer(), reclaim=True)
    second = queue.workflow.decide(
        item_id,
        reviewer(),
        DecisionIn(
            outcome="approved",
            claim_token=reopened["claim_token"],
            version=reopened["version"],
            listing_revision=1,
        ),
    )["decision_id"]
    _window_passes(queue)
    records = queue.outbox.records(status="all")["records"]
    assert [(r["kind"], r["decision_id"], r["state"]) for r in records] == [
        ("seller_notification", first, "cancelled"),
        ("decision_withdrawn", first, "cancelled"),  # nothing to retract: the seller never heard
        ("seller_notification", second, "ready"),
    ]
    assert records[1]["payload"]["notification_id"] == records[0]["id"]
    [record] = queue.outbox.lease()["records"]
    assert record["decision_id"] == second and record["payload"]["outcome"] == "approved"
    with pytest.raises(Conflict):  # a cancelled record is never leased, so never acknowledged
        queue.outbox.ack([records[0]["id"]])
    undo_event = next(e for e in queue.views.events(item_id=item_id)["events"] if e["type"] == "undone")
    assert undo_event["data"]["seller_notification"] == "cancelled"


def test_revert_after_delivery_retracts_and_waits_for_an_unacknowledged_notification(
    queue: ReviewQueue,
) -> None:
    a, b, c = add_items(queue, 3)
    for item_id in (a, b, c):
        _decide(queue, item_id)
    _expire_decisions(queue)
    _window_passes(queue)
    leased = {r["item_id"]: r for r in queue.outbox.lease(limit=2)["records"]}
    assert set(leased) == {a, b}  # id order
    queue.outbox.ack([leased[a]["id"]])

    queue.workflow.revert(a, lead(), "误判")  # delivered → a live withdrawal
    queue.workflow.revert(b, lead(), "误判")  # leased, not acknowledged: may have been delivered
    queue.workflow.revert(c, lead(), "误判")  # never leased → cancelled, nothing sent
    assert _states(queue) == [
        ("sku-0", "seller_notification", "delivered"),
        ("sku-1", "seller_notification", "leased"),
        ("sku-2", "seller_notification", "cancelled"),
        ("sku-0", "decision_withdrawn", "ready"),
        ("sku-1", "decision_withdrawn", "ready"),
        ("sku-2", "decision_withdrawn", "cancelled"),
    ]
    # sku-1's withdrawal must not overtake its notification, which is still out for delivery.
    [withdrawal] = queue.outbox.lease(limit=10)["records"]
    assert (withdrawal["listing_id"], withdrawal["kind"]) == ("sku-0", "decision_withdrawn")
    assert withdrawal["payload"] == {
        "listing_id": "sku-0",
        "reason": "误判",
        "notification_id": leased[a]["id"],
    }
    queue.outbox.ack([leased[b]["id"], withdrawal["id"]])
    [last] = queue.outbox.lease(limit=10)["records"]
    assert (last["listing_id"], last["kind"]) == ("sku-1", "decision_withdrawn")
    reverts = [
        e["data"]["seller_notification"] for e in queue.views.events()["events"] if e["type"] == "reverted"
    ]
    assert reverts == ["retracted", "retracted", "cancelled"]


def test_a_listing_s_records_go_out_in_order_one_at_a_time(queue: ReviewQueue) -> None:
    item = listing(7)
    first = queue.intake.enqueue(item, result_for(item), SERVICE)["item_id"]
    _decide(queue, first)
    edited = listing(7, title="全网最低价 销量第一 保温杯 升级版")
    second = queue.intake.enqueue(edited, result_for(edited), SERVICE)["item_id"]
    assert second != first
    _decide(queue, second, outcome="approved")
    _window_passes(queue)
    [head] = queue.outbox.lease(limit=10)["records"]
    assert head["item_id"] == first
    assert queue.outbox.lease(limit=10)["records"] == []  # the next waits for the head's acknowledgement
    queue.outbox.ack([head["id"]])
    [tail] = queue.outbox.lease(limit=10)["records"]
    assert tail["item_id"] == second and tail["payload"]["listing_revision"] == 2


def test_an_expired_lease_is_leased_again(queue: ReviewQueue) -> None:
    [item_id] = add_items(queue, 1)
    _decide(queue, item_id)
    _window_passes(queue)
    [first] = queue.outbox.lease(lease_seconds=30)["records"]
    with queue.db.write() as conn:
        conn.execute(update(OUTBOX).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
    assert queue.outbox.records()["records"][0]["state"] == "ready"
    [again] = queue.outbox.lease()["records"]
    assert again["id"] == first["id"] and again["attempts"] == 2
    # The first consumer delivered after all and acknowledges late: accepted; the second's ack repeats.
    assert queue.outbox.ack([first["id"]])["acknowledged"] == [first["id"]]
    assert queue.outbox.ack([again["id"]])["already_acknowledged"] == [again["id"]]


def test_roles_and_input_checks(queue: ReviewQueue) -> None:
    with pytest.raises(Forbidden):
        queue.outbox.lease(reviewer())
    with pytest.raises(Forbidden):
        queue.outbox.records(lead())
    queue.outbox.records(Actor(id=1, username="admin", role="admin"))
    with pytest.raises(Invalid):
        queue.outbox.lease(limit=0)
    with pytest.raises(Invalid):
        queue.outbox.ack([])
    with pytest.raises(Invalid):
        queue.outbox.records(status="sent")


def test_pages_with_a_cursor(queue: ReviewQueue) -> None:
    for item_id in add_items(queue, 5):
        _decide(queue, item_id)
    seen, after = [], 0
    while True:
        page = queue.outbox.records(after=after, limit=2)
        seen += [r["id"] for r in page["records"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    with queue.db.read() as conn:
        assert seen == sorted(conn.execute(select(OUTBOX.c.id)).scalars())
    assert len(seen) == 5


def test_concurrent_consumers_never_share_a_record(queue: ReviewQueue) -> None:
    """Eight consumers lease in batches of 7 at the same time until the outbox is empty: every
    record is leased exactly once and acknowledged once."""
    ids = add_items(queue, 60)
    for item_id in ids:
        _decide(queue, item_id)
    _window_passes(queue)

    def consume(_: int) -> list[int]:
        got: list[int] = []
        while True:
            records = queue.outbox.lease(SERVICE, limit=7)["records"]
            if not records:
                return got
            got += [r["id"] for r in records]
            queue.outbox.ack([r["id"] for r in records], SERVICE)

    results = run_threads(8, consume)
    assert not [r for r in results if isinstance(r, Exception)], results
    counts = Counter(i for r in results for i in r)
    assert len(counts) == 60 and set(counts.values()) == {1}
    with queue.db.read() as conn:
        rows = conn.execute(select(OUTBOX.c.attempts, OUTBOX.c.sent_at)).all()
    assert all(r.attempts == 1 and r.sent_at is not None for r in rows)


def test_undo_racing_a_lease_stays_consistent(queue: ReviewQueue) -> None:
    """A notification whose hold has ended (but whose decision can still be undone) while a consumer
    leases and the reviewer undoes at the same moment: either the consumer got it and a live
    withdrawal follows, or it was cancelled and the consumer got nothing — never both, never neither."""
    for round_ in range(6):
        [item_id] = add_items(queue, 1, start=100 + round_)
        decision_id = _decide(queue, item_id)
        _window_passes(queue)
        leased, undone = run_threads(
            2,
            lambda i, item_id=item_id: (
                queue.outbox.lease(SERVICE, limit=10)["records"]
                if i == 0
                else queue.workflow.undo(item_id, reviewer())
            ),
        )
        assert not isinstance(leased, Exception) and not isinstance(undone, Exception), (leased, undone)
        with queue.db.read() as conn:
            rows = {
                r.kind: r for r in conn.execute(select(OUTBOX).where(OUTBOX.c.decision_id == decision_id))
            }
        notice, withdrawal = rows["seller_notification"], rows["decision_withdrawn"]
        if [r["id"] for r in leased] == [notice.id]:
            assert notice.cancelled_at is None and withdrawal.cancelled_at is None
            queue.outbox.ack([notice.id])
            [follow] = queue.outbox.lease(SERVICE)["records"]
            assert follow["id"] == withdrawal.id
            queue.outbox.ack([follow["id"]])
        else:
            assert leased == [] and notice.leased_at is None
            assert notice.cancelled_at is not None and withdrawal.cancelled_at is not None
        assert queue.outbox.lease(SERVICE)["records"] == []
