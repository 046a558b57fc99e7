"""How work enters the queue: check results (signals), listing edits and deletions, appeals.

One open item per listing is the partial unique index ``uq_items_open_listing``. Enqueueing first
tries to attach to the open item (an UPDATE); only if there is none does it INSERT, inside a
savepoint, and a unique violation (another signal won the race) sends it back to attach. On SQLite
``BEGIN IMMEDIATE`` serialises writers so the race cannot happen; on PostgreSQL the index decides it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from moderation.queue.core import (
    ITEMS,
    LISTINGS,
    RETURNING,
    RULES,
    SIGNALS,
    UNHELD,
    append_event,
    bumped,
    change,
    change_all,
    load_item,
    public_item,
    touch_event,
)
from moderation.queue.db import Database, retrying, utcnow
from moderation.queue.errors import Conflict, Forbidden, Invalid, NotFound
from moderation.queue.roles import Actor
from moderation.queue.safety import safe_id, storable, storable_json
from moderation.queue.states import DECIDED, OPEN_STATES, SEVERITY_ORDER, SUPERSEDED, priority_for
from moderation.schema import CheckResult, Listing

T = ITEMS
#: How much a new signal raises an open item's priority.
SIGNAL_BUMP = 5


def content_hash(listing: Listing) -> str:
    data = listing.model_dump(mode="json", exclude={"enqueue"})
    data.pop("enqueue", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


#: Check errors that still queue the listing for a person (flagged ``check_error``): the listing was
#: valid but its check did not finish. Other errors (an invalid listing) queue nothing.
QUEUE_ON_ERROR = frozenset({"too_costly", "internal_error"})


def storable_listing(listing: Listing) -> tuple[Listing, dict[str, Any], set[str]]:
    """The listing as stored (every text storable, ids within their column), its JSON snapshot, and
    the flags that say what changed (``sanitized``, ``long_id``). The snapshot keeps a rewritten
    id as ``original_id`` (storable form)."""
    data = listing.model_dump(mode="json")
    snapshot, changed = storable_json(data)
    flags = {"sanitized"} if changed else set()
    listing_id, original_id = safe_id(listing.id), storable(listing.id)
    seller_id = safe_id(listing.seller_id) if listing.seller_id is not None else None
    if listing_id != original_id or (
        listing.seller_id is not None and seller_id != storable(listing.seller_id)
    ):
        flags.add("long_id")
        if listing_id != original_id:
            snapshot["original_id"] = original_id
    if not flags:
        return listing, data, flags
    snapshot["id"], snapshot["seller_id"] = listing_id, seller_id
    stored = Listing.model_validate({**snapshot, "id": listing_id})
    return stored, snapshot, flags


def _as_queued(result: CheckResult) -> CheckResult:
    """A result whose check did not finish is queued as ``review`` at high severity, so it is looked
    at soon rather than sorted below every finding."""
    if result.error is None:
        return result
    return CheckResult.model_construct(
        id=result.id,
        verdict="review",
        risk=result.risk or 0.0,
        findings=[],
        classifier=result.classifier,
        images=[],
        error=result.error,
    )


def _new_item(
    conn: Connection, now: datetime, actor_id: int | None, event: dict[str, Any], **values: Any
) -> dict[str, Any]:
    """A new pending item (its first attempt, version and event number) with its ``created`` event
    (one statement on PostgreSQL)."""
    first = {"attempt": 1, "version": 1, "event_seq": 1, "created_at": now, "updated_at": now}
    new = insert(T).values(status="pending", escalated=False, **first, **values).returning(*RETURNING)
    item = change(conn, new, {}, "created", actor_id, event, now)
    assert item is not None
    return item


@retrying
class Intake:
    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(
        self,
        listing: Listing,
        result: CheckResult,
        actor: Actor | None = None,
        source: str = "check",
        flags: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Record the listing revision; queue a non-pass result (attach to the open item or create one).

        A changed listing supersedes its open item first, so a reviewer never decides on stale text.
        A listing whose check could not finish (``too_costly``, ``internal_error``) is queued for a
        person too, flagged ``check_error``: a seller must not keep a listing out of review by making
        it expensive or odd. The listing is stored in a safe form (``safety.py``) and flagged when
        that changed anything; ``listing_id`` in the answer is the id as stored.
        """
        if actor is not None and not actor.can("enqueue"):
            raise Forbidden("forbidden", f"role {actor.role} may not enqueue")
        actor_id = actor.id if actor else None
        now = utcnow()
        given = set(flags)  # e.g. ``sanitized`` by the API, which cleaned the listing before checking it
        listing, snapshot, flags = storable_listing(listing)
        flags |= given
        check, changed = storable_json(result.to_json_dict())
        if changed:
            flags.add("sanitized")
        if result.error is None:
            queued = result.verdict not in (None, "pass")
        else:
            queued = result.error.code in QUEUE_ON_ERROR
            if queued:
                flags.add("check_error")
            else:
                flags.clear()  # not queued (e.g. an invalid listing): nothing to flag
        if getattr(result, "truncated", False):
            flags.add("truncated")
        with self.db.write() as conn:
            revision, superseded = self._record_listing(conn, listing, snapshot, actor_id, now)
            out: dict[str, Any] = {
                "listing_id": listing.id,
                "listing_revision": revision,
                "superseded": superseded,
                "item_id": None,
                "action": "none",
            }
            if not queued:
                return out
            if flags:
                out["flags"] = sorted(flags)
            signal = {"listing": snapshot, "check": check}
            result = _as_queued(result)
            summary = self._summary(result)
            event = {"verdict": result.verdict, "source": source}
            for _ in range(5):
                item = self._attach(conn, listing.id, revision, summary, flags, actor_id, event, now)
                action = "attached"
                if item is None:
                    try:
                        with conn.begin_nested():
                            item = self._create(
                                conn, listing, revision, summary, flags, actor_id, source, now
                            )
                        action = "created"
                    except IntegrityError:
                        continue  # another signal created the open item first: attach to it
                self._add_signal(conn, item["id"], revision, result, signal, actor_id, source, now)
                out.update(item_id=item["id"], action=action)
                return out
            raise Conflict("contention", "could not queue the listing; retry")

    def _record_listing(
        self,
        conn: Connection,
        listing: Listing,
        snapshot: dict[str, Any],
        actor_id: int | None,
        now: datetime,
    ) -> tuple[int, list[int]]:
        digest = content_hash(listing)
        values = {
            "id": listing.id,
            "revision": 1,
            "content_hash": digest,
            "seller_id": listing.seller_id,
            "category": listing.category,
            "snapshot": snapshot,
            "deleted": False,
            "updated_at": now,
        }
        # New: inserted (revision 1). Changed or deleted: revision + 1, returned. Unchanged: no row.
        changed = (LISTINGS.c.content_hash != digest) | LISTINGS.c.deleted.is_(True)
        upsert = self.db.insert(LISTINGS).values(**values)
        bumped = conn.execute(
            upsert.on_conflict_do_update(
                index_elements=["id"],
                set_={**values, "id": listing.id, "revision": LISTINGS.c.revision + 1},
                where=changed,
            ).returning(LISTINGS.c.revision)
        ).first()
        if bumped is None:
            revision = conn.execute(
                select(LISTINGS.c.revision).where(LISTINGS.c.id == listing.id)
            ).scalar_one()
            return int(revision), []
        revision = int(bumped[0])
        if revision == 1:
            return 1, []
        return revision, self._supersede(conn, listing.id, revision, actor_id, now, "listing_changed")

    def _supersede(
        self,
        conn: Connection,
        listing_id: str,
        revision: int,
        actor_id: int | None,
        now: datetime,
        reason: str,
    ) -> list[int]:
        rows = change_all(
            conn,
            update(T)
            .where(T.c.listing_id == listing_id, T.c.status.in_(OPEN_STATES), T.c.listing_revision < revision)
            .values(**bumped(now, status=SUPERSEDED, **UNHELD))
            .returning(*RETURNING),
            {},
            "superseded",
            actor_id,
            {"reason": reason, "listing_revision": revision},
            now,
        )
        return [r["id"] for r in rows]

    @staticmethod
    def _summary(result: CheckResult) -> dict[str, Any]:
        severities = [f.severity for f in result.findings]
        top = max(severities, key=SEVERITY_ORDER.index) if severities else None
        if result.error is not None:  # a check that did not finish (``_as_queued``)
            top = "high"
        families = sorted({f.family for f in result.findings})
        risk = float(result.risk or 0.0)
        return {
            "verdict": result.verdict,
            "risk": risk,
            "max_severity": top,
            "families": "," + ",".join(families) + "," if families else "",
            "priority": priority_for(result.verdict, risk, top),
        }

    def _add_signal(
        self,
        conn: Connection,
        item_id: int,
        revision: int,
        result: CheckResult,
        signal: dict[str, Any],
        actor_id: int | None,
        source: str,
        now: datetime,
    ) -> None:
        conn.execute(
            insert(SIGNALS).values(
                item_id=item_id,
                listing_revision=revision,
                source=source,
                verdict=result.verdict,
                risk=float(result.risk or 0.0),
                result=signal,
                created_by=actor_id,
                created_at=now,
            )
        )
        fired = {f.rule: f.family for f in result.findings}
        if fired:  # the rules the item does not have yet
            conn.execute(
                self.db.insert(RULES).on_conflict_do_nothing(),
                [{"item_id": item_id, "rule": r, "family": fam} for r, fam in fired.items()],
            )

    def _attach(
        self,
        conn: Connection,
        listing_id: str,
        revision: int,
        s: dict[str, Any],
        flags: set[str],
        actor_id: int | None,
        event: dict[str, Any],
        now: datetime,
    ) -> dict[str, Any] | None:
        """Raise the open item of this listing revision (its priority, risk, signal count, flags)."""
        raised = case((T.c.priority > s["priority"], T.c.priority), else_=s["priority"]) + SIGNAL_BUMP
        new_flags: Any = T.c.flags
        for flag in sorted(flags):  # add each flag the item does not carry yet
            new_flags = case(
                (new_flags.like(f"%,{flag},%"), new_flags),
                else_=case((new_flags == "", ","), else_=new_flags) + f"{flag},",
            )
        row = conn.execute(
            update(T)
            .where(
                T.c.listing_id == listing_id, T.c.status.in_(OPEN_STATES), T.c.listing_revision == revision
            )
            .values(
                **bumped(
                    now,
                    priority=raised,
                    risk=case((T.c.risk > s["risk"], T.c.risk), else_=s["risk"]),
                    signal_count=T.c.signal_count + 1,
                    flags=new_flags,
                )
            )
            .returning(T.c.id, T.c.event_seq, T.c.priority)
        ).first()
        if row is None:
            return None
        # The event says the priority the UPDATE computed, so it follows the row, not ``change``.
        data = {"priority": row.priority, **event}
        append_event(conn, row.id, row.event_seq, "signal_attached", actor_id, data, now)
        return dict(row._mapping)

    def _create(
        self,
        conn: Connection,
        listing: Listing,
        revision: int,
        s: dict[str, Any],
        flags: set[str],
        actor_id: int | None,
        source: str,
        now: datetime,
    ) -> dict[str, Any]:
        """The listing's open item, with its ``created`` event."""
        return _new_item(
            conn,
            now,
            actor_id,
            {"priority": s["priority"], "listing_revision": revision, "kind": "check", "source": source},
            listing_id=listing.id,
            listing_revision=revision,
            kind="check",
            priority=s["priority"],
            verdict=s["verdict"],
            risk=s["risk"],
            max_severity=s["max_severity"],
            families=s["families"],
            category=listing.category,
            flags="," + ",".join(sorted(flags)) + "," if flags else "",
            seller_id=listing.seller_id,
            title=(listing.title or listing.description)[:200],
            signal_count=1,
        )

    def delete_listing(self, listing_id: str, actor: Actor) -> dict[str, Any]:
        """The seller removed the listing: bump its revision and supersede what is open."""
        if not actor.can("listing_edit"):
            raise Forbidden("forbidden", f"role {actor.role} may not edit listings")
        now = utcnow()
        listing_id = safe_id(listing_id)
        with self.db.write() as conn:
            row = conn.execute(
                update(LISTINGS)
                .where(LISTINGS.c.id == listing_id)
                .values(deleted=True, revision=LISTINGS.c.revision + 1, updated_at=now)
                .returning(LISTINGS.c.revision)
            ).first()
            if row is None:
                raise NotFound("listing_not_found", f"listing {listing_id} is unknown")
            superseded = self._supersede(conn, listing_id, int(row[0]), actor.id, now, "listing_deleted")
        return {"listing_id": listing_id, "listing_revision": int(row[0]), "superseded": superseded}

    def appeal(self, item_id: int, actor: Actor, reason: str) -> dict[str, Any]:
        """The seller contests a rejection: a new item that the original decider may not take."""
        if not actor.can("appeal"):
            raise Forbidden("forbidden", f"role {actor.role} may not file appeals")
        reason = reason.strip()
        if not reason or len(reason) > 5000:
            raise Invalid("invalid_reason", "an appeal needs a reason of 1 to 5000 characters")
        now = utcnow()
        with self.db.write() as conn:
            original = load_item(conn, item_id)
            if original["status"] != DECIDED or original["outcome"] == "approved":
                raise Conflict("not_appealable", "only a rejection or change request can be appealed")
            revision = conn.execute(
                select(LISTINGS.c.revision).where(LISTINGS.c.id == original["listing_id"])
            ).scalar_one()
            priority = original["priority"] + 20
            copied = ("verdict", "risk", "max_severity", "families", "category", "seller_id", "title")
            try:
                with conn.begin_nested():
                    event = {"priority": priority, "listing_revision": revision, "kind": "appeal"}
                    appeal = _new_item(
                        conn,
                        now,
                        actor.id,
                        {**event, "appeal_of": item_id, "reason": reason},
                        listing_id=original["listing_id"],
                        listing_revision=revision,
                        kind="appeal",
                        appeal_of=item_id,
                        appeal_reason=reason,
                        excluded_user=original["decided_by"],
                        priority=priority,
                        **{k: original[k] for k in copied},
                        signal_count=0,
                    )
            except IntegrityError:
                raise Conflict(
                    "appeal_exists", "this decision was already appealed or the listing has an open item"
                ) from None
            self._copy_findings(conn, item_id, appeal["id"], now, actor.id)
            touch_event(
                conn, item_id, "appealed", actor.id, {"appeal_item": appeal["id"], "reason": reason}, now
            )
            return public_item(appeal)

    @staticmethod
    def _copy_findings(conn: Connection, from_id: int, to_id: int, now: datetime, actor_id: int) -> None:
        """The appealed item's latest signal and its rules, copied to the appeal in SQL."""
        latest = select(SIGNALS).where(SIGNALS.c.item_id == from_id).order_by(SIGNALS.c.id.desc()).limit(1)
        last = latest.subquery()
        copied = ["listing_revision", "verdict", "risk", "result"]
        conn.execute(
            insert(SIGNALS).from_select(
                ["item_id", "source", "created_by", "created_at", *copied],
                select(
                    literal(to_id),
                    literal("appeal"),
                    literal(actor_id),
                    literal(now, SIGNALS.c.created_at.type),
                    *(last.c[k] for k in copied),
                ),
            )
        )
        conn.execute(
            insert(RULES).from_select(
                ["item_id", "rule", "family"],
                select(literal(to_id), RULES.c.rule, RULES.c.family).where(RULES.c.item_id == from_id),
            )
        )
