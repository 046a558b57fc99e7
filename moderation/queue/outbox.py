"""Delivering the outbox: consumers lease records, deliver them, and acknowledge them.

Delivery is **at least once**. ``lease`` hands out up to ``limit`` deliverable records in id order and
marks them leased for ``lease_seconds``; concurrent consumers never get the same record while its
lease runs (PostgreSQL: ``FOR UPDATE SKIP LOCKED`` in the claiming UPDATE; SQLite: the same UPDATE in
a ``BEGIN IMMEDIATE`` transaction). ``ack`` marks records delivered. A record whose lease ran out
without an acknowledgement is leased again (``attempts`` counts the leases), so a consumer that
crashed after delivering but before acknowledging delivers it twice: receivers deduplicate by ``id``.

Deliverable means: not delivered, not cancelled, ``available_at`` passed, not under a running lease,
and no earlier undelivered record for the same listing — so a listing's records reach the seller in
the order they were written, one at a time (a withdrawal never overtakes the notification it
retracts).

Undo and revert: a decision's ``seller_notification`` becomes available only when its undo window
has passed. Taking the decision back (``withdraw``, called in the undo/revert transaction) cancels the
notification if no consumer has ever leased it — the seller never hears of it — and writes a
``decision_withdrawn`` record that is cancelled too. If the notification was leased (it may have
been delivered), the withdrawal is a live record, delivered after the notification.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)

from moderation.queue.core import DECISIONS, ITEMS, OUTBOX, iso, json_object, json_value
from moderation.queue.db import Database, dicts, retrying, utcnow
from moderation.queue.errors import Conflict, Forbidden, Invalid, NotFound
from moderation.queue.roles import Actor

O = OUTBOX  # noqa: E741
NOTIFICATION = "seller_notification"
WITHDRAWN = "decision_withdrawn"


def _undone(t: Any = O) -> tuple[Any, ...]:
    """Not delivered and not cancelled."""
    return t.c.sent_at.is_(None), t.c.cancelled_at.is_(None)


def _unleased(now: datetime) -> Any:
    """Never leased, or its lease ran out."""
    return or_(O.c.lease_expires_at.is_(None), O.c.lease_expires_at < now)


_UNDONE = _undone()
#: ``records(status=…)`` filters; ``pending`` is everything still to deliver (waiting, ready or leased).
STATUSES = ("pending", "delivered", "cancelled", "all")
MAX_LEASE = 500
MAX_ACK = 1000


def record_json(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One outbox row as JSON, with its delivery ``state``:
    ``waiting`` (not yet available), ``ready``, ``leased``, ``delivered`` or ``cancelled``."""
    if row["sent_at"] is not None:
        state = "delivered"
    elif row["cancelled_at"] is not None:
        state = "cancelled"
    elif row["lease_expires_at"] is not None and row["lease_expires_at"] >= now:
        state = "leased"
    elif row["available_at"] > now:
        state = "waiting"
    else:
        state = "ready"
    return {
        "id": row["id"],
        "kind": row["kind"],
        "listing_id": row["listing_id"],
        "item_id": row["item_id"],
        "decision_id": row["decision_id"],
        "payload": row["payload"],
        "state": state,
        "created_at": iso(row["created_at"]),
        "available_at": iso(row["available_at"]),
        "attempts": row["attempts"],
        "lease_expires_at": iso(row["lease_expires_at"]),
        "sent_at": iso(row["sent_at"]),
        "cancelled_at": iso(row["cancelled_at"]),
    }


def notification(u: Any, d: Any, pg: bool) -> Any:
    """A decision's outbox row, ``INSERT … SELECT`` from the decided item ``u`` and the decision ``d``
    (``workflow._decision_rows``): what the seller is told, held back until it can no longer be undone."""
    payload = json_object(
        pg,
        listing_id=u.c.listing_id,
        listing_revision=u.c.listing_revision,
        outcome=bindparam("b_outcome", type_=String()),
        reason_codes=json_value(pg, "b_codes"),
        reasons=json_value(pg, "b_reasons"),
        message=bindparam("b_seller_message", type_=String()),
    )
    available_at = bindparam("b_available_at", type_=O.c.created_at.type)
    return _insert_record(
        u, d, NOTIFICATION, payload, u.join(d, d.c.item_id == u.c.id), available_at=available_at
    )


def _insert_record(u: Any, d: Any, kind: str, payload: Any, joined: Any, **later: Any) -> Any:
    """``INSERT INTO outbox … SELECT`` a ``kind`` record of the item ``u`` and the decision ``d`` from
    ``joined``, written at ``b_now`` and never leased yet; ``later``: ``available_at`` (else at once)
    and ``cancelled_at``."""
    now = bindparam("b_now", type_=O.c.created_at.type)
    record = {
        "item_id": u.c.id,
        "decision_id": d.c.id,
        "listing_id": u.c.listing_id,
        "kind": literal_column(f"'{kind}'"),
        "payload": payload,
        "created_at": now,
        "available_at": now,
        "attempts": literal_column("0"),
        **later,
    }
    return insert(O).from_select(list(record), select(*record.values()).select_from(joined))


def withdrawal(u: Any, pg: bool) -> tuple[list[Any], Any, Any, Any]:
    """What an undo or revert (``workflow._reopen_rows``) writes besides the item and its event, from
    the reopened item ``u``: the decision of the previous attempt marked undone, its notification
    cancelled if no consumer ever leased it, and the ``decision_withdrawn`` record (cancelled too
    when the notification was). Returns the statements to run after the reopening UPDATE (on
    PostgreSQL only the record's INSERT: the others are CTEs it reads), ``u`` joined with the undone
    decision, the notification and the cancel, the decision's id and ``cancelled``/``retracted``.
    The cancel is conditional on ``leased_at IS NULL``, so it and a concurrent lease cannot both
    succeed."""
    now = bindparam("b_now", type_=O.c.created_at.type)
    reason = bindparam("b_reason", type_=String())
    undone = (
        update(DECISIONS)
        .where(
            DECISIONS.c.item_id == u.c.id,
            DECISIONS.c.attempt == u.c.attempt - 1,
            DECISIONS.c.undone_at.is_(None),
        )
        .values(
            undone_at=now,
            undone_by=bindparam("b_actor", type_=Integer()),
            undo_kind=bindparam("b_kind", type_=String()),
            undo_reason=func.nullif(reason, ""),
        )
        .returning(DECISIONS.c.id)
    )
    if pg:
        d: Any = undone.cte("dd")
    else:
        attempt = select(ITEMS.c.attempt).where(ITEMS.c.id == bindparam("b_item")).scalar_subquery()
        d = (
            select(DECISIONS.c.id)
            .where(DECISIONS.c.item_id == bindparam("b_item"), DECISIONS.c.attempt == attempt - 1)
            .where(DECISIONS.c.undone_at == now)
            .subquery("dd")
        )
    notice = (O.c.decision_id == d.c.id, O.c.kind == NOTIFICATION)
    cancel = (
        update(O).where(*notice, *_UNDONE, O.c.leased_at.is_(None)).values(cancelled_at=now).returning(O.c.id)
    )
    c = cancel.cte("c") if pg else select(O.c.id).where(*notice, O.c.cancelled_at == now).subquery("c")
    n = select(O.c.id).where(*notice).subquery("n")
    joined = u.outerjoin(d, true()).outerjoin(n, true()).outerjoin(c, true())
    cancelled = c.c.id.is_not(None)
    payload = json_object(
        pg,
        listing_id=u.c.listing_id,
        reason=func.coalesce(func.nullif(reason, ""), bindparam("b_type", type_=String())),
        notification_id=n.c.id,
    )
    record = _insert_record(u, d, WITHDRAWN, payload, joined, cancelled_at=case((cancelled, now)))
    state = case((cancelled, literal_column("'cancelled'")), else_=literal_column("'retracted'"))
    return ([record] if pg else [undone, cancel, record]), joined, d.c.id, state


@retrying
class OutboxDelivery:
    """Lease, acknowledge and list outbox records (``ReviewQueue.outbox``).

    ``actor`` is the consumer (a ``service`` or ``admin`` user); ``None`` is the local operator
    (``moderation outbox drain``, which has the database URL and so every right anyway)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @staticmethod
    def _require(actor: Actor | None) -> None:
        if actor is not None and not actor.can("outbox"):
            raise Forbidden("forbidden", f"role {actor.role} may not read the outbox")

    def lease(
        self, actor: Actor | None = None, *, limit: int = 100, lease_seconds: int = 60
    ) -> dict[str, Any]:
        """Take up to ``limit`` deliverable records (id order) for ``lease_seconds``; no other consumer
        gets them until the lease runs out. Deliver them, then ``ack`` their ids."""
        self._require(actor)
        if not 1 <= limit <= MAX_LEASE:
            raise Invalid("invalid_limit", f"limit must be 1 to {MAX_LEASE}")
        if not 1 <= lease_seconds <= 3600:
            raise Invalid("invalid_lease", "lease_seconds must be 1 to 3600")
        now = utcnow()
        until = now + timedelta(seconds=lease_seconds)
        earlier = O.alias("earlier")
        pick = (
            select(O.c.id)
            .where(
                *_UNDONE,
                O.c.available_at <= now,
                _unleased(now),
                ~exists().where(
                    earlier.c.listing_id == O.c.listing_id, earlier.c.id < O.c.id, *_undone(earlier)
                ),
            )
            .order_by(O.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has one writer (BEGIN IMMEDIATE)
            # A materialized CTE runs once; as ``id IN (subquery)`` PostgreSQL may re-run the LIMIT
            # subquery and lease more than ``limit`` rows.
            .cte("pick")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        claim = (
            update(O)
            .where(O.c.id == pick.c.id, *_UNDONE, _unleased(now))
            .values(
                leased_by=actor.id if actor else None,
                attempts=O.c.attempts + 1,
                lease_expires_at=until,
                leased_at=now,
            )
            .returning(*O.c)
        )
        with self.db.write() as conn:
            rows = sorted(dicts(conn, claim), key=lambda r: r["id"])
        return {"records": [record_json(r, now) for r in rows], "lease_expires_at": iso(until)}

    def ack(self, ids: list[int], actor: Actor | None = None) -> dict[str, Any]:
        """Mark leased records delivered. Idempotent: ids already acknowledged are reported as such.
        All or nothing: an unknown id (404) or a record never leased (409) changes nothing."""
        self._require(actor)
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted or len(wanted) > MAX_ACK:
            raise Invalid("invalid_ids", f"acknowledge 1 to {MAX_ACK} record ids")
        now = utcnow()
        with self.db.write() as conn:
            acked = update(O).where(O.c.id.in_(wanted), *_UNDONE, O.c.leased_at.is_not(None))
            done = set(conn.execute(acked.values(sent_at=now).returning(O.c.id)).scalars())
            rest = [i for i in wanted if i not in done]
            # the others: id → when delivered (None: never leased, or cancelled)
            sent = (
                dict(conn.execute(select(O.c.id, O.c.sent_at).where(O.c.id.in_(rest))).all()) if rest else {}
            )
            unknown = [i for i in rest if i not in sent]
            if unknown:  # raising rolls the whole acknowledgement back
                raise NotFound("unknown_outbox_record", "no outbox records with these ids", ids=unknown)
            not_leased = [i for i in rest if sent[i] is None]
            if not_leased:
                raise Conflict(
                    "not_leased",
                    "these records were never leased (or were cancelled); "
                    "lease records before acknowledging them",
                    ids=not_leased,
                )
        return {
            "acknowledged": [i for i in wanted if i in done],
            "already_acknowledged": [i for i in wanted if i not in done],
        }

    def records(
        self,
        actor: Actor | None = None,
        *,
        status: str = "pending",
        kind: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Outbox records in id order, without leasing them; ``next_after`` is the cursor of the next
        page (``None`` on the last). For inspection: delivery goes through ``lease``, which never
        misses a record whose transaction committed after a later id was already read."""
        self._require(actor)
        if status not in STATUSES:
            raise Invalid("invalid_status", f"status must be one of {', '.join(STATUSES)}")
        if not 1 <= limit <= 1000:
            raise Invalid("invalid_limit", "limit must be 1 to 1000")
        cond: list[Any] = [O.c.id > after]
        if status == "pending":
            cond += _UNDONE
        elif status == "delivered":
            cond.append(O.c.sent_at.is_not(None))
        elif status == "cancelled":
            cond.append(O.c.cancelled_at.is_not(None))
        if kind:
            cond.append(O.c.kind == kind)
        now = utcnow()
        with self.db.read() as conn:
            rows = dicts(conn, select(O).where(*cond).order_by(O.c.id).limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        return {
            "records": [record_json(r, now) for r in rows],
            "next_after": rows[-1]["id"] if more else None,
        }

    def counts(self) -> dict[str, int]:
        """How many records are in each delivery state right now."""
        now = utcnow()
        pending, free = and_(*_UNDONE), _unleased(now)
        queries = {
            "delivered": O.c.sent_at.is_not(None),
            "cancelled": O.c.cancelled_at.is_not(None),
            "leased": and_(pending, O.c.lease_expires_at >= now),
            "waiting": and_(pending, free, O.c.available_at > now),
            "ready": and_(pending, free, O.c.available_at <= now),
        }
        with self.db.read() as conn:
            return {
                name: int(conn.execute(select(func.count()).select_from(O).where(cond)).scalar_one())
                for name, cond in queries.items()
            }
