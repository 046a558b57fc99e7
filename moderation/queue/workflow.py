"""The review workflow: claim, heartbeat, release/skip, decide, escalate, comment, undo, revert,
assign, priority and bulk decide.

Each operation is one transaction around one conditional UPDATE (with its event: one statement on
PostgreSQL, ``core.change``). When the UPDATE matches no row the operation failed, and only then does
one read say why (404, 403 or which 409) — the read never decides anything, so there is no
check-then-act race. The code is the same whether it is called directly (threads, the CLI, tests) or
awaited on an event loop through ``Database.run``.
"""

from __future__ import annotations

import functools
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    Connection,
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
    update,
)
from sqlalchemy.exc import IntegrityError

from moderation.queue.core import (
    DECISIONS,
    IDEMPOTENCY,
    ITEMS,
    LISTINGS,
    RETURNING,
    SKIPS,
    UNHELD,
    apply,
    bumped,
    change,
    from_json,
    insert_events,
    iso,
    json_bool,
    json_object,
    json_value,
    load_item,
    public_item,
    request_hash,
    touch_event,
)
from moderation.queue.db import (
    Database,
    Executor,
    Statements,
    SyncStatements,
    retry_on_disconnect,
    retrying,
    run_now,
    utcnow,
)
from moderation.queue.errors import Conflict, Forbidden, Invalid, NotFound, QueueError
from moderation.queue.marks import MARKS_INSERT, finding_marks, public_mark
from moderation.queue.outbox import notification, withdrawal
from moderation.queue.roles import Actor
from moderation.queue.safety import DbInt, Text, like_pattern
from moderation.queue.states import (
    CLAIMED,
    DECIDED,
    ESCALATED,
    OPEN_STATES,
    PENDING,
    REASON_CODES,
    STATES,
    SUPERSEDED,
)

T = ITEMS


Outcome = Literal["approved", "rejected", "changes_requested"]


class Judgement(BaseModel, extra="forbid"):
    """What a decision says about an item (a bulk decision is only this)."""

    outcome: Outcome
    reason_codes: list[Annotated[Text, Field(max_length=40)]] = Field(default_factory=list, max_length=9)
    seller_message: Text = Field(default="", max_length=2000)
    internal_note: Text = Field(default="", max_length=5000)


class FindingMarkIn(BaseModel, extra="forbid"):
    """One finding the reviewer judged not a violation (its index in the item's findings)."""

    index: int = Field(ge=0, le=999)
    rule: Text | None = Field(default=None, max_length=120)
    mark: Literal["not_violation"] = "not_violation"
    note: Text = Field(default="", max_length=500)


class DecisionIn(Judgement):
    """A reviewer's decision, from the HTTP body to the database: ``version`` and ``listing_revision``
    pin what they looked at; ``finding_marks`` are findings marked "not a violation" (marks.py)."""

    claim_token: Text = Field(min_length=1, max_length=64)
    version: DbInt
    listing_revision: DbInt
    finding_marks: list[FindingMarkIn] = Field(default_factory=list, max_length=100)


def validate_outcome(body: Judgement) -> None:
    unknown = [c for c in body.reason_codes if c not in REASON_CODES]
    if unknown:
        raise Invalid("invalid_reason_code", f"unknown reason codes: {', '.join(unknown)}")
    if body.outcome != "approved" and not body.reason_codes:
        raise Invalid("reason_required", "a rejection or change request needs at least one reason code")


@retrying
class Workflow:
    """Service functions over one database. Times come from ``utcnow`` so tests move rows, not clocks.
    A transition whose success is one statement runs in ``Database.single_statement`` (on PostgreSQL
    autocommitted: no BEGIN and COMMIT round trips); the read that explains a failure runs after it.
    Every public method runs once more when its connection was lost before anything committed
    (``retrying``); ``claim_next`` and ``decide`` through ``claim_next_on`` and ``decide_on``, which are
    written once and run on either kind of connection (``db.Statements``), and ``bulk_decide`` retries
    each item's transaction."""

    NO_RETRY = frozenset({"bulk_decide", "claim_next", "decide"})

    def __init__(self, db: Database, *, lease_seconds: int = 120, undo_seconds: int = 120) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.undo_window = timedelta(seconds=undo_seconds)

    # -- claiming ---------------------------------------------------------------------------------

    def _claim_params(self, user_id: int, now: datetime, token: str) -> dict[str, Any]:
        """Values for ``_CLAIM_VALUES`` and ``_claimable`` (``user_id`` is who will hold the item)."""
        return {"b_actor": user_id, "b_now": now, "b_token": token, "b_lease_until": now + self.lease}

    def _lease_data(self, now: datetime) -> dict[str, Any]:
        """The ``claimed`` and ``assigned`` events' data."""
        return {"lease_expires_at": iso(now + self.lease)}

    def claim_next(self, actor: Actor, **filters: str | None) -> dict[str, Any] | None:
        """Claim the highest-priority, oldest claimable item; ``None`` when there is none. Filters:
        ``family``, ``category``, ``severity``, ``kind``."""
        return run_now(self.claim_next_on(self.db.now, actor, **filters))

    @retry_on_disconnect
    async def claim_next_on(
        self,
        on: Executor,
        actor: Actor,
        family: str | None = None,
        category: str | None = None,
        severity: str | None = None,
        kind: str | None = None,
    ) -> dict[str, Any] | None:
        """``claim_next`` through ``on`` (``db.Immediate`` or ``onloop.OnLoop``): one autocommitted
        statement on PostgreSQL."""
        self._require(actor, "claim")
        now = utcnow()
        params = {
            **self._claim_params(actor.id, now, secrets.token_hex(16)),
            "b_category": category,
            "b_family": f"%,{like_pattern(family or '')},%",
            "b_severity": severity,
            "b_kind": kind,
        }
        statement = _claim_next(
            actor.can("claim_escalated"), bool(family), bool(category), bool(severity), bool(kind)
        )
        async with on.statement() as tx:
            item = await apply(tx, statement, params, "claimed", actor.id, self._lease_data(now), now)
        return None if item is None else self._claim_answer(item)

    @staticmethod
    def _claim_answer(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "item": public_item(item),
            "claim_token": item["claim_token"],
            "lease_expires_at": iso(item["lease_expires_at"]),
            "version": item["version"],
        }

    def claim(self, item_id: int, actor: Actor) -> dict[str, Any]:
        """Claim one given item (a targeted claim); renews the lease if the actor already holds it."""
        self._require(actor, "claim")
        now = utcnow()
        params = {**self._claim_params(actor.id, now, secrets.token_hex(16)), "b_item": item_id}
        with self.db.single_statement() as conn:
            item = change(
                conn,
                _claim(actor.can("claim_escalated")),
                params,
                "claimed",
                actor.id,
                self._lease_data(now),
                now,
            )
            if item is not None:
                return self._claim_answer(item)
            renewed = conn.execute(_RENEW, params).first()
            if renewed is not None:
                return self._claim_answer(dict(renewed._mapping))
            item = load_item(conn, item_id)
        raise self._why_not_claimable(item, actor, now)

    def _why_not_claimable(self, item: dict[str, Any], actor: Actor, now: datetime) -> QueueError:
        if item["excluded_user"] == actor.id:
            return Forbidden("appeal_conflict", "the original decider may not review the appeal")
        if item["escalated"] and not actor.can("claim_escalated"):
            return Forbidden("escalated", "only a lead may claim an escalated item")
        if item["status"] == CLAIMED:
            return Conflict("held", "another reviewer holds this item", held_by=item["claimed_by"])
        return self._closed(item) or Conflict("not_claimable", "the item cannot be claimed now")

    @staticmethod
    def _closed(item: dict[str, Any]) -> QueueError | None:
        if item["status"] == DECIDED:
            return Conflict("already_decided", "the item is already decided")
        if item["status"] == SUPERSEDED:
            return Conflict("listing_changed", "the listing changed; this item was superseded")
        return None

    @staticmethod
    def _holder_params(item_id: int, actor: Actor, token: str, now: datetime) -> dict[str, Any]:
        """Values for ``_HOLDER`` (the actor still holds the item under this claim token)."""
        return {"b_item": item_id, "b_actor": actor.id, "b_token": token, "b_now": now}

    def _lease_error(self, conn: Connection, item_id: int) -> QueueError:
        return self._closed(load_item(conn, item_id)) or Conflict(
            "lease_lost", "you no longer hold this item (lease expired or taken over)"
        )

    def heartbeat(self, item_id: int, actor: Actor, token: str) -> dict[str, Any]:
        """Extend the holder's lease; 409 once it expired or someone else took the item."""
        now = utcnow()
        params = {**self._holder_params(item_id, actor, token, now), "b_lease_until": now + self.lease}
        with self.db.single_statement() as conn:
            row = conn.execute(_HEARTBEAT, params).first()
            if row is None:
                raise self._lease_error(conn, item_id)
            return {"item_id": item_id, "lease_expires_at": iso(row[0]), "version": row[1]}

    def release(self, item_id: int, actor: Actor, token: str, *, skip: bool = False) -> dict[str, Any]:
        """Give the item back (``skip`` also keeps claim-next from handing it to this actor again)."""
        now, event = utcnow(), "skipped" if skip else "released"
        with self.db.write() if skip else self.db.single_statement() as conn:
            item = change(
                conn, _RELEASE, self._holder_params(item_id, actor, token, now), event, actor.id, {}, now
            )
            if item is None:
                raise self._lease_error(conn, item_id)
            if skip:
                conn.execute(
                    self.db.insert(SKIPS)
                    .values(item_id=item_id, user_id=actor.id, created_at=now)
                    .on_conflict_do_nothing()
                )
            return public_item(item)

    # -- deciding ---------------------------------------------------------------------------------

    def decide(
        self, item_id: int, actor: Actor, body: DecisionIn, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Record a decision for the claimed item; with an idempotency key a retry gets the same answer."""
        return run_now(self.decide_on(self.db.now, item_id, actor, body, idempotency_key))

    @retry_on_disconnect
    async def decide_on(
        self,
        on: Executor,
        item_id: int,
        actor: Actor,
        body: DecisionIn,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """``decide`` through ``on`` (``db.Immediate`` or ``onloop.OnLoop``). Without finding marks one
        autocommitted statement on PostgreSQL, the idempotency key's row included."""
        self._require(actor, "decide")
        validate_outcome(body)
        key = None
        if idempotency_key:
            fingerprint = request_hash({"item_id": item_id, **body.model_dump()})
            key = {"b_key": idempotency_key, "b_hash": fingerprint}
        # No read of the idempotency key first: a first submission (the common case) just writes. A
        # retry fails the conditional UPDATE (already decided / lease lost), a key reused for another
        # item fails the key's primary key and rolls everything back; both then look up the stored
        # answer below (same body → the same answer, other body → 422).
        try:
            async with on.write() if body.finding_marks else on.statement() as tx:
                return await self._decide_in(tx, item_id, actor, body, key)
        except (Conflict, IntegrityError) as exc:
            # A concurrent retry with the same key may have won; then its answer is ours too.
            if key:
                async with on.read() as tx:
                    stored = await tx.row(_STORED_ANSWER, {"b_actor": actor.id, "b_key": key["b_key"]})
                if stored is not None:
                    if stored["request_hash"] != key["b_hash"]:
                        raise Invalid(
                            "idempotency_key_reused", "this Idempotency-Key was used with a different request"
                        ) from None
                    return self._stored_answer(stored["response"])
            if isinstance(exc, IntegrityError):
                raise Conflict("already_decided", "a concurrent decision for this item won") from exc
            raise

    async def _decide_in(
        self, tx: Statements, item_id: int, actor: Actor, body: Judgement, key: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A ``DecisionIn`` decides the holder's item; a bare ``Judgement`` is a lead's bulk decision.
        The deciding UPDATE, the decision, its event, the outbox row and the idempotency key's row
        (``_decision_rows``: one statement on PostgreSQL), and the finding marks."""
        now = utcnow()
        decision = body if isinstance(body, DecisionIn) else None
        marks = await finding_marks(tx, item_id, decision.finding_marks) if decision else []
        undo_until = iso(now + self.undo_window)
        params: dict[str, Any] = {
            "b_item": item_id,
            "b_actor": actor.id,
            "b_now": now,
            "b_outcome": body.outcome,
            "b_codes": body.reason_codes,
            "b_reasons": [REASON_CODES[c] for c in body.reason_codes],
            "b_seller_message": body.seller_message,
            "b_internal_note": body.internal_note,
            "b_marks": [public_mark(m) for m in marks],
            "b_available_at": now + self.undo_window,
            "b_undo_until": undo_until,
            **(key or {}),
        }
        if decision:
            params.update(
                b_token=decision.claim_token, b_version=decision.version, b_revision=decision.listing_revision
            )
        first, *rest = _decision_rows(tx.pg, decision is None, bool(marks), key is not None)
        item = await tx.row(first, params)
        if item is None:
            raise await self._why_not_decided(tx, item_id, actor, body)
        if rest:  # SQLite: the rows one by one, each reading the decided item
            decision_row = await tx.row(rest[0], params)
            assert decision_row is not None
            item["decision_id"] = decision_row["id"]
            for statement in rest[1:]:
                await tx.row(statement, params)
        if marks:
            extra = {"decision_id": item["decision_id"], "marked_by": actor.id, "created_at": now}
            await tx.many(MARKS_INSERT, [{**m, **extra} for m in marks])
        return self._answer(item, undo_until)

    @staticmethod
    def _answer(row: dict[str, Any], undo_until: str | None) -> dict[str, Any]:
        """The answer to a decision, from the decided item's row and its ``decision_id``."""
        item = dict(row)
        decision_id = item.pop("decision_id")
        return {
            "item": public_item(item),
            "decision_id": decision_id,
            "outcome": item["outcome"],
            "attempt": item["attempt"],
            "undo_until": undo_until,
        }

    def _stored_answer(self, response: dict[str, Any]) -> dict[str, Any]:
        """The answer kept with an idempotency key: built from the decided row stored as JSON by the
        deciding statement (``_decision_rows``); keys stored before that hold the answer itself."""
        if "row" not in response:
            return response
        dialect = self.db.engine.dialect
        row = {c.name: from_json(c, response["row"][c.name], dialect) for c in T.c}
        return self._answer({**row, "decision_id": response["decision_id"]}, response["undo_until"])

    async def _why_not_decided(
        self, tx: Statements, item_id: int, actor: Actor, body: Judgement
    ) -> QueueError:
        """One read: the item and its listing's current revision."""
        item = await tx.row(_ITEM_AND_LISTING, {"b_item": item_id})
        if item is None:
            raise NotFound("item_not_found", f"item {item_id} does not exist")
        if (
            item["status"] == SUPERSEDED
            or item["gone"]
            or item["current_revision"] not in (None, item["listing_revision"])
        ):
            return Conflict("listing_changed", "the listing changed since this item was queued")
        if item["status"] == DECIDED:
            return Conflict("already_decided", "the item is already decided")
        if not isinstance(body, DecisionIn):
            return Conflict("held", "another reviewer holds this item", held_by=item["claimed_by"])
        if body.listing_revision != item["listing_revision"]:
            return Conflict(
                "listing_changed",
                "you reviewed another revision of the listing",
                listing_revision=item["listing_revision"],
            )
        if (
            item["status"] != CLAIMED
            or item["claim_token"] != body.claim_token
            or item["claimed_by"] != actor.id
            or item["lease_expires_at"] < utcnow()
        ):
            return Conflict("lease_lost", "you no longer hold this item (lease expired or taken over)")
        if item["version"] != body.version:
            return Conflict("stale_version", "the item changed since you loaded it", version=item["version"])
        return Conflict("conflict", "the item changed concurrently")

    def bulk_decide(
        self, actor: Actor, item_ids: list[int], body: Judgement, *, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Decide many items, each in its own transaction: per-item results, nothing half-applied."""
        self._require(actor, "bulk")
        validate_outcome(body)
        if len(item_ids) > 500:
            raise Invalid("too_many_items", "at most 500 items per bulk decision")
        results: list[dict[str, Any]] = []
        for item_id in dict.fromkeys(item_ids):
            try:
                if dry_run:
                    results.append(self._preview(item_id, actor))
                    continue
                out = self._bulk_one(item_id, actor, body)
                results.append({"item_id": item_id, "ok": True, "decision_id": out["decision_id"]})
            except QueueError as exc:
                results.append({"item_id": item_id, "ok": False, "status": exc.status, **exc.detail()})
        return results

    @retry_on_disconnect
    def _bulk_one(self, item_id: int, actor: Actor, body: Judgement) -> dict[str, Any]:
        with self.db.single_statement() as conn:
            return run_now(self._decide_in(SyncStatements(conn), item_id, actor, body))

    def _preview(self, item_id: int, actor: Actor) -> dict[str, Any]:
        now = utcnow()
        with self.db.read() as conn:
            item = load_item(conn, item_id)
        free = item["status"] in (PENDING, ESCALATED) or (
            item["status"] == CLAIMED and (item["lease_expires_at"] < now or item["claimed_by"] == actor.id)
        )
        out = {"item_id": item_id, "ok": free, "status_now": item["status"], "title": item["title"]}
        if not free:
            out["code"] = "held" if item["status"] == CLAIMED else f"not_open:{item['status']}"
        return out

    # -- other transitions ------------------------------------------------------------------------

    def escalate(
        self,
        item_id: int,
        actor: Actor,
        note: str = "",
        *,
        claim_token: str | None = None,
        version: int | None = None,
    ) -> dict[str, Any]:
        """Send to a lead: from pending, or from the holder (with the claim token), or by a lead."""
        self._require(actor, "escalate")
        now = utcnow()
        may = [T.c.status == PENDING, and_(T.c.status == CLAIMED, T.c.lease_expires_at < now)]
        if claim_token:
            may.append(
                and_(T.c.status == CLAIMED, T.c.claim_token == claim_token, T.c.claimed_by == actor.id)
            )
        if actor.can("assign"):
            may.append(T.c.status == CLAIMED)
        where = [T.c.id == item_id, or_(*may)]
        if version is not None:
            where.append(T.c.version == version)
        escalate = (
            update(T)
            .where(*where)
            .values(**bumped(now, status=ESCALATED, escalated=True, claimed_at=None, **UNHELD))
            .returning(*RETURNING)
        )
        with self.db.single_statement() as conn:
            item = change(conn, escalate, {}, "escalated", actor.id, {"note": note}, now)
            if item is None:
                item = load_item(conn, item_id)
                if version is not None and item["version"] != version:
                    raise Conflict("stale_version", "the item changed since you loaded it")
                if item["status"] == ESCALATED:
                    raise Conflict("already_escalated", "the item is already escalated")
                if item["status"] == CLAIMED:
                    raise Conflict("held", "another reviewer holds this item")
                raise Conflict("not_open", f"the item is {item['status']}")
            return public_item(item)

    def comment(self, item_id: int, actor: Actor, text: str) -> dict[str, Any]:
        self._require(actor, "comment")
        text = text.strip()
        if not text or len(text) > 5000:
            raise Invalid("invalid_comment", "a comment needs 1 to 5000 characters")
        now = utcnow()
        # A transaction, not autocommitted: a comment's statement is not conditional, so a retry after
        # a lost connection must know it did not commit.
        with self.db.write() as conn:
            seq = touch_event(conn, item_id, "commented", actor.id, {"text": text}, now)
        return {"item_id": item_id, "seq": seq}

    def undo(self, item_id: int, actor: Actor, *, reclaim: bool = False) -> dict[str, Any]:
        """The decider takes back their decision inside the undo window; the item reopens."""
        self._require(actor, "undo")
        return self._reopen(item_id, actor, "undone", "", reclaim=reclaim)

    def revert(self, item_id: int, actor: Actor, reason: str) -> dict[str, Any]:
        """A lead overturns a decision at any time, with a reason."""
        self._require(actor, "revert")
        if not reason.strip():
            raise Invalid("reason_required", "a revert needs a reason")
        return self._reopen(item_id, actor, "reverted", reason.strip(), reclaim=False)

    def _reopen(
        self, item_id: int, actor: Actor, type_: str, reason: str, *, reclaim: bool
    ) -> dict[str, Any]:
        """Undo or revert: the reopening UPDATE, the decision marked undone, the seller's notification
        withdrawn (``outbox.withdrawal``) and the event (``_reopen_rows``: one statement on PostgreSQL)."""
        now = utcnow()
        params = {
            **self._claim_params(actor.id, now, secrets.token_hex(16)),
            "b_item": item_id,
            "b_undo_since": now - self.undo_window,
            "b_kind": "undo" if type_ == "undone" else "revert",
            "b_reason": reason,
            "b_type": type_,
        }
        first, *rest = _reopen_rows(not self.db.is_sqlite, type_ == "undone", reclaim)
        with self.db.single_statement() as conn:
            row = conn.execute(first, params).first()
            if row is None:
                item = load_item(conn, item_id)
                if item["status"] != DECIDED:
                    raise Conflict("not_decided", f"the item is {item['status']}, not decided")
                if item["decided_by"] != actor.id:
                    raise Forbidden("not_your_decision", "only the reviewer who decided may undo; ask a lead")
                raise Conflict("undo_window_passed", "the undo window has passed; ask a lead to revert")
            for statement in rest:  # SQLite: the rows one by one, each reading the reopened item
                conn.execute(statement, params)
            item = dict(row._mapping)
        out: dict[str, Any] = {"item": public_item(item), "attempt": item["attempt"]}
        if reclaim:
            out.update(claim_token=item["claim_token"], version=item["version"])
        return out

    def set_priority(self, item_id: int, actor: Actor, priority: int, version: int) -> dict[str, Any]:
        """A lead's edit, guarded by the version they saw: of two racing edits one wins, one gets 409."""
        self._require(actor, "priority")
        now = utcnow()
        edit = (
            update(T)
            .where(T.c.id == item_id, T.c.version == version, T.c.status.in_(OPEN_STATES))
            .values(**bumped(now, priority=priority))
            .returning(*RETURNING)
        )
        with self.db.single_statement() as conn:
            item = change(conn, edit, {}, "priority_changed", actor.id, {"priority": priority}, now)
            if item is None:
                item = load_item(conn, item_id)
                if item["version"] != version:
                    raise Conflict(
                        "stale_version", "the item changed since you loaded it", version=item["version"]
                    )
                raise Conflict("not_open", f"the item is {item['status']}")
            return public_item(item)

    def assign(self, item_id: int, actor: Actor, user: Actor, *, force: bool = False) -> dict[str, Any]:
        """A lead hands an item to a reviewer (``force`` also takes it from its current holder). Only
        to someone whose role may act on the item as it is: an escalated item (or one that was
        escalated) only to a lead or admin, an appeal never to its original decider."""
        self._require(actor, "assign")
        if not user.can("claim"):
            raise Invalid("not_a_reviewer", "the assignee cannot review items")
        now = utcnow()
        params = {**self._claim_params(user.id, now, secrets.token_hex(16)), "b_item": item_id}
        data = {"user": user.id, **self._lease_data(now)}
        with self.db.single_statement() as conn:
            give = _claim(user.can("claim_escalated"), force)
            item = change(conn, give, params, "assigned", actor.id, data, now)
            if item is None:
                raise self._why_not_claimable(load_item(conn, item_id), user, now)
            return public_item(item)

    # -- helpers ----------------------------------------------------------------------------------

    @staticmethod
    def _require(actor: Actor, permission: str) -> None:
        if not actor.can(permission):
            raise Forbidden("forbidden", f"role {actor.role} may not {permission}")

    def find_item(self, item_id: int) -> dict[str, Any]:
        with self.db.read() as conn:
            return load_item(conn, item_id)


# -- prebuilt statements --------------------------------------------------------------------------
# Built once, executed with a parameter dict: SQLAlchemy then reuses the compiled SQL, where building
# ``update(…).where(…).values(…)`` per call cost more CPU than running the statement. Bind names carry a
# ``b_`` prefix because names equal to a column's are reserved in an UPDATE's SET clause.

_DATETIME = T.c.updated_at.type
_NOW = bindparam("b_now", type_=_DATETIME)
_OUTCOME = bindparam("b_outcome", type_=String())
#: States in a WHERE clause are written into the SQL text, not bound: PostgreSQL then plans with them
#: (a parameter hides them, and the partial index over the open states, and LIMIT 1, from the planner).
_S = {state: literal_column(f"'{state}'", String()) for state in STATES}
_ACTOR = bindparam("b_actor", type_=Integer())
_ITEM = bindparam("b_item", type_=Integer())
_TOKEN = bindparam("b_token", type_=String())
_LEASE_UNTIL = bindparam("b_lease_until", type_=_DATETIME)

#: What a claim (or an assignment) writes; ``b_actor`` is the new holder.
_HELD = {"claimed_by": _ACTOR, "claim_token": _TOKEN, "claimed_at": _NOW, "lease_expires_at": _LEASE_UNTIL}
_CLAIM_VALUES = bumped(_NOW, status=CLAIMED, **_HELD)
#: Where a released or reopened item goes back to.
_BACK = case((T.c.escalated.is_(True), ESCALATED), else_=PENDING)
#: The actor still holds the item under this claim token and the lease has not run out.
_HOLDER = (
    T.c.id == _ITEM,
    T.c.status == _S[CLAIMED],
    T.c.claim_token == _TOKEN,
    T.c.claimed_by == _ACTOR,
    T.c.lease_expires_at >= _NOW,
)


@functools.cache
def _claimable(senior: bool, force: bool = False) -> Any:
    """Rows ``b_actor`` may claim at ``b_now``: open, not held (or lease expired), not barred.
    ``senior``: the actor may claim escalated items (lead, admin); others not even one claimed since
    (an item once escalated is never pending again: ``_BACK``). ``force``: held or not (assign)."""
    free_states = [_S[PENDING], _S[ESCALATED]] if senior else [_S[PENDING]]
    held = T.c.status == _S[CLAIMED]
    if not force:
        held = and_(held, T.c.lease_expires_at < _NOW)
    if not senior:
        held = and_(held, T.c.escalated.is_(False))
    return and_(
        or_(T.c.status.in_(free_states), held),
        or_(T.c.excluded_user.is_(None), T.c.excluded_user != _ACTOR),
    )


@functools.cache
def _claim(senior: bool, force: bool = False) -> Any:
    """A targeted claim of ``b_item`` (``force``: a lead's assignment that takes it from its holder)."""
    return (
        update(T)
        .where(T.c.id == _ITEM, _claimable(senior, force))
        .values(**_CLAIM_VALUES)
        .returning(*RETURNING)
    )


@functools.cache
def _claim_next(senior: bool, family: bool, category: bool, severity: bool, kind: bool) -> Any:
    """``Workflow.claim_next`` for one combination of filters: the first claimable item in claim order
    (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one writer, in ``BEGIN IMMEDIATE``)."""
    cond = [_claimable(senior), ~exists().where(SKIPS.c.item_id == T.c.id, SKIPS.c.user_id == _ACTOR)]
    if family:
        cond.append(T.c.families.like(bindparam("b_family", type_=String()), escape="\\"))
    if category:
        cond.append(T.c.category == bindparam("b_category", type_=String()))
    if severity:
        cond.append(T.c.max_severity == bindparam("b_severity", type_=String()))
    if kind:
        cond.append(T.c.kind == bindparam("b_kind", type_=String()))
    pick = (
        select(T.c.id)
        .where(*cond)
        .order_by(T.c.priority.desc(), T.c.created_at, T.c.id)
        .limit(literal_column("1"))
        .with_for_update(skip_locked=True)
    )
    return (
        update(T)
        .where(T.c.id == pick.scalar_subquery(), _claimable(senior))
        .values(**_CLAIM_VALUES)
        .returning(*RETURNING)
    )


#: The holder renews their lease by claiming again (``Workflow.claim``), keeping their claim token.
_RENEW = (
    update(T)
    .where(T.c.id == _ITEM, T.c.status == _S[CLAIMED], T.c.claimed_by == _ACTOR, T.c.lease_expires_at >= _NOW)
    .values(lease_expires_at=_LEASE_UNTIL)
    .returning(*RETURNING)
)
_HEARTBEAT = (
    update(T)
    .where(*_HOLDER)
    .values(lease_expires_at=_LEASE_UNTIL)
    .returning(T.c.lease_expires_at, T.c.version)
)
_RELEASE = (
    update(T)
    .where(*_HOLDER)
    .values(**bumped(_NOW, status=_BACK, claimed_at=None, **UNHELD))
    .returning(*RETURNING)
)


@functools.cache
def _decide(bulk: bool) -> Any:
    """The deciding UPDATE of ``Workflow._decide_in``: the holder's claim, version and listing revision
    (``bulk``: a lead takes any open item not held by someone else), and the listing unchanged."""
    current_revision = (
        select(LISTINGS.c.revision)
        .where(LISTINGS.c.id == T.c.listing_id, LISTINGS.c.deleted.is_(False))
        .scalar_subquery()
    )
    if bulk:
        held_ok = or_(
            T.c.status.in_([_S[PENDING], _S[ESCALATED]]),
            and_(T.c.status == _S[CLAIMED], or_(T.c.lease_expires_at < _NOW, T.c.claimed_by == _ACTOR)),
        )
        where: list[Any] = [T.c.id == _ITEM, held_ok]
    else:
        where = [
            *_HOLDER,
            T.c.version == bindparam("b_version", type_=Integer()),
            T.c.listing_revision == bindparam("b_revision", type_=Integer()),
        ]
    return (
        update(T)
        .where(*where, T.c.listing_revision == current_revision)
        .values(
            **bumped(_NOW, status=DECIDED, outcome=_OUTCOME, decided_by=_ACTOR, decided_at=_NOW, **UNHELD)
        )
        .returning(*RETURNING)
    )


def _changed(statement: Any, pg: bool) -> Any:
    """The item row an UPDATE changed, as ``u`` for the ``INSERT … SELECT``s that follow: on PostgreSQL
    the UPDATE itself as a CTE, on SQLite (which runs them one by one) the row read back."""
    return statement.cte("u") if pg else select(T).where(T.c.id == _ITEM).subquery("u")


@functools.cache
def _decision_rows(pg: bool, bulk: bool, marks: bool, keyed: bool) -> tuple[Any, ...]:
    """What a decision writes: the deciding UPDATE (``_decide``), then its ``decisions`` row, its
    ``decided`` event, its outbox row (``outbox.notification``) and (``keyed``) the idempotency key's
    row, each an ``INSERT … SELECT`` from the decided item ``u`` and the decision ``d``. PostgreSQL:
    one statement, the UPDATE and the INSERTs as data-modifying CTEs, selecting the item and
    ``decision_id``. SQLite: the UPDATE, then the INSERTs in turn (the decision's returns its id),
    ``u`` and ``d`` read back in the same transaction. The key's row keeps the decided row as JSON
    (``Workflow._stored_answer`` rebuilds the answer from it)."""
    decide = _decide(bulk)
    u = _changed(decide, pg)
    row = {
        "item_id": u.c.id,
        "attempt": u.c.attempt,
        "outcome": _OUTCOME,
        "reason_codes": bindparam("b_codes", type_=DECISIONS.c.reason_codes.type),
        "seller_message": bindparam("b_seller_message", type_=String()),
        "internal_note": bindparam("b_internal_note", type_=String()),
        "listing_revision": u.c.listing_revision,
        "decided_by": _ACTOR,
        "claimed_at": u.c.claimed_at,
        "created_at": _NOW,
        "bulk": literal_column(str(bulk).lower()),
    }
    decision = (
        insert(DECISIONS)
        .from_select(list(row), select(*row.values()))
        .returning(DECISIONS.c.id, DECISIONS.c.item_id)
    )
    if pg:
        d: Any = decision.cte("d")
    else:
        d = (
            select(DECISIONS.c.id, DECISIONS.c.item_id)
            .where(
                DECISIONS.c.item_id == _ITEM,
                DECISIONS.c.attempt == select(T.c.attempt).where(T.c.id == _ITEM).scalar_subquery(),
            )
            .subquery("d")
        )
    fields = {
        "outcome": _OUTCOME,
        "reason_codes": json_value(pg, "b_codes"),
        "decision_id": d.c.id,
        "attempt": u.c.attempt,
        "bulk": json_bool(pg, bulk),
    }
    if marks:
        fields["finding_marks"] = json_value(pg, "b_marks")
    decided = u.join(d, d.c.item_id == u.c.id)
    event = insert_events(u, literal_column("'decided'"), _ACTOR, json_object(pg, **fields), _NOW, decided)
    rows = [event, notification(u, d, pg)]
    if keyed:
        response = json_object(
            pg,
            # PostgreSQL: the row as it is, the same JSON as naming each column; psycopg re-parses a
            # statement's text on every execution past 4 KiB, and naming them took this one past it.
            row=func.row_to_json(u.table_valued())
            if pg
            else json_object(pg, **{c.name: u.c[c.name] for c in T.c}),
            decision_id=d.c.id,
            undo_until=bindparam("b_undo_until", type_=String()),
        )
        key = select(
            _ACTOR,
            bindparam("b_key", type_=String()),
            bindparam("b_hash", type_=String()),
            literal_column("200"),
            response,
            _NOW,
        ).select_from(decided)
        rows.append(
            insert(IDEMPOTENCY).from_select(
                ["user_id", "key", "request_hash", "status_code", "response", "created_at"], key
            )
        )
    if not pg:
        return decide, decision, *rows
    return (
        select(*u.c, d.c.id.label("decision_id"))
        .select_from(decided)
        .add_cte(*(row.cte(name) for row, name in zip(rows, "eok", strict=False))),
    )


#: The answer stored with an idempotency key (``Workflow.decide_on``).
_STORED_ANSWER = select(IDEMPOTENCY.c.request_hash, IDEMPOTENCY.c.response).where(
    IDEMPOTENCY.c.user_id == _ACTOR, IDEMPOTENCY.c.key == bindparam("b_key", type_=String())
)
#: Why a decision failed (``Workflow._why_not_decided``): the item and its listing's revision.
_ITEM_AND_LISTING = (
    select(T, LISTINGS.c.revision.label("current_revision"), LISTINGS.c.deleted.label("gone"))
    .outerjoin(LISTINGS, LISTINGS.c.id == T.c.listing_id)
    .where(T.c.id == _ITEM)
)


@functools.cache
def _reopen_rows(pg: bool, undo: bool, reclaim: bool) -> tuple[Any, ...]:
    """What an undo (``undo``: by the decider ``b_actor``, inside the window) or a revert writes: the
    UPDATE that reopens the decided item (``reclaim``: claimed again by ``b_actor``), then
    ``outbox.withdrawal`` (the decision marked undone, its notification cancelled or retracted) and
    the event, each reading the reopened item ``u``. PostgreSQL: one statement of CTEs selecting the
    item; SQLite: the UPDATE, then the rest in turn, reading ``u`` back in the same transaction."""
    where = [T.c.id == _ITEM, T.c.status == _S[DECIDED]]
    if undo:
        where += [T.c.decided_by == _ACTOR, T.c.decided_at >= bindparam("b_undo_since", type_=_DATETIME)]
    reopen = (
        update(T)
        .where(*where)
        .values(
            **bumped(
                _NOW,
                status=CLAIMED if reclaim else _BACK,
                outcome=None,
                decided_by=None,
                decided_at=None,
                attempt=T.c.attempt + 1,
                **(_HELD if reclaim else dict.fromkeys(_HELD)),
            )
        )
        .returning(*RETURNING)
    )
    u = _changed(reopen, pg)
    writes, joined, decision_id, notice = withdrawal(u, pg)
    data = json_object(
        pg,
        attempt=u.c.attempt,
        reclaimed=json_bool(pg, reclaim),
        reason=bindparam("b_reason", type_=String()),
        decision_id=decision_id,
        seller_notification=notice,
    )
    event = insert_events(u, bindparam("b_type", type_=String()), _ACTOR, data, _NOW, joined)
    if not pg:
        return reopen, *writes, event
    return (select(*u.c).add_cte(*(w.cte(f"w{i}") for i, w in enumerate(writes)), event.cte("e")),)
