"""The queue's tables (SQLModel). One SQL database holds queue state, decisions, events and the outbox.

Every "only one" rule of the queue is a constraint here, never a SELECT-then-INSERT in code:
one open item per listing (partial unique index), one decision per item attempt, gap-free event
numbers per item (unique ``(item_id, seq)`` plus the counter on the item), one appeal per decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

#: Statuses in which an item counts as open (the partial unique index uses the same list).
OPEN_SQL = "status IN ('pending', 'claimed', 'escalated')"


def _partial(where: str) -> dict[str, Any]:
    """The condition of a partial index, on both backends."""
    return {"sqlite_where": text(where), "postgresql_where": text(where)}


class ListingRow(SQLModel, table=True):
    """The latest known revision of a listing; ``revision`` grows when its content changes."""

    __tablename__ = "listings"

    id: str = Field(primary_key=True, max_length=200)
    revision: int = 1
    content_hash: str = Field(max_length=64)
    seller_id: str | None = Field(default=None, max_length=200, index=True)
    category: str = Field(default="general", max_length=40)
    snapshot: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    deleted: bool = False
    updated_at: datetime


class Item(SQLModel, table=True):
    """A unit of review work: one listing revision (or one appeal) and its current-state projection."""

    __tablename__ = "items"
    __table_args__ = (
        Index("uq_items_open_listing", "listing_id", unique=True, **_partial(OPEN_SQL)),
        Index("uq_items_appeal_of", "appeal_of", unique=True, **_partial("appeal_of IS NOT NULL")),
        Index("ix_items_claimable", "status", "priority", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    listing_id: str = Field(max_length=200, index=True)
    listing_revision: int
    kind: str = Field(default="check", max_length=20)  # check | appeal
    appeal_of: int | None = Field(default=None, foreign_key="items.id")
    appeal_reason: str | None = None
    excluded_user: int | None = None  # an appeal's original decider may not take it
    status: str = Field(default="pending", max_length=20)
    outcome: str | None = Field(default=None, max_length=30)
    escalated: bool = False
    priority: int = 0
    verdict: str | None = Field(default=None, max_length=10)
    risk: float = 0.0
    max_severity: str | None = Field(default=None, max_length=10)
    families: str = Field(default="")  # ",fam1,fam2," for LIKE filters
    #: ",flag1,flag2," — why a reviewer should look closer: the listing was stored in a safe form
    #: (``sanitized``: unstorable characters replaced; ``long_id``: id or seller id over the column
    #: length, stored as a prefix plus a hash), or it could not be checked (``check_error``), or its
    #: findings were capped (``truncated``).
    flags: str = Field(default="", max_length=200)
    category: str = Field(default="general", max_length=40)
    seller_id: str | None = Field(default=None, max_length=200, index=True)
    title: str = ""
    claimed_by: int | None = None
    claim_token: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    decided_by: int | None = None
    decided_at: datetime | None = None
    attempt: int = 1
    version: int = 1
    event_seq: int = 0
    signal_count: int = 0
    created_at: datetime = Field(index=True)
    updated_at: datetime


#: Claim-next's pick walks the open items in claim order and stops at the first it may take (FOR UPDATE
#: SKIP LOCKED), instead of collecting and sorting every claimable row per claim, so its cost does not
#: grow with the queue (figures: docs/queue.md).
#: ``ix_items_claimable`` cannot serve that order (``priority`` descending, ``created_at`` ascending).
_ITEMS = Item.__table__  # type: ignore[attr-defined]
Index(
    "ix_items_claim_order",
    _ITEMS.c.priority.desc(),
    _ITEMS.c.created_at,
    _ITEMS.c.id,
    **_partial(OPEN_SQL),
)


class Signal(SQLModel, table=True):
    """One check result that put (or kept) a listing in the queue."""

    __tablename__ = "signals"

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    listing_revision: int
    source: str = Field(default="check", max_length=40)
    verdict: str | None = Field(default=None, max_length=10)
    risk: float = 0.0
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_by: int | None = None
    created_at: datetime


class ItemRule(SQLModel, table=True):
    """Which rules fired on an item; with the decision outcome this gives reviewer-judged precision."""

    __tablename__ = "item_rules"

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    rule: str = Field(primary_key=True, max_length=120)
    family: str = Field(default="", max_length=80)


class Decision(SQLModel, table=True):
    """A reviewer's judgement of one attempt of an item. Undo/revert mark it, never delete it."""

    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("item_id", "attempt", name="uq_decisions_item_attempt"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    attempt: int
    outcome: str = Field(max_length=30)
    reason_codes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    seller_message: str = ""
    internal_note: str = ""
    listing_revision: int
    decided_by: int
    claimed_at: datetime | None = None
    created_at: datetime
    bulk: bool = False
    undone_at: datetime | None = None
    undone_by: int | None = None
    undo_kind: str | None = Field(default=None, max_length=10)  # undo | revert
    undo_reason: str | None = None


class Event(SQLModel, table=True):
    """Append-only log; ``seq`` is gap-free per item because it comes from the item's counter."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("item_id", "seq", name="uq_events_item_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id")
    seq: int
    type: str = Field(max_length=30)
    actor: int | None = None
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(index=True)


#: Outbox rows still to deliver (neither delivered nor cancelled); two partial indexes cover them.
UNDELIVERED_SQL = "sent_at IS NULL AND cancelled_at IS NULL"


class Outbox(SQLModel, table=True):
    """Side effects for sellers, written in the transaction of the decision (``seller_notification``)
    or the undo/revert (``decision_withdrawn``) that causes them. Consumers lease, deliver and
    acknowledge them in id order, one record per listing at a time (moderation/queue/outbox.py).

    ``available_at``: a decision's notification waits out the undo window; an undo cancels it
    (``cancelled_at``) if it was never leased, so the seller hears nothing of an undone decision."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_undelivered", "id", **_partial(UNDELIVERED_SQL)),
        Index("ix_outbox_listing_undelivered", "listing_id", "id", **_partial(UNDELIVERED_SQL)),
    )

    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    decision_id: int | None = Field(default=None, index=True)
    listing_id: str = Field(max_length=200)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime
    available_at: datetime  # not handed to a consumer before this
    attempts: int = 0  # leases so far
    leased_by: int | None = None
    leased_at: datetime | None = None  # last lease; a record ever leased is never cancelled
    lease_expires_at: datetime | None = None
    sent_at: datetime | None = None  # acknowledged as delivered
    cancelled_at: datetime | None = None  # never to be delivered (its decision was undone in time)


class Skip(SQLModel, table=True):
    """A reviewer skipped an item; claim-next does not hand it back to them."""

    __tablename__ = "skips"

    item_id: int = Field(foreign_key="items.id", primary_key=True)
    user_id: int = Field(primary_key=True)
    created_at: datetime


class IdempotencyKey(SQLModel, table=True):
    """The stored answer to a request made with an ``Idempotency-Key`` header."""

    __tablename__ = "idempotency_keys"

    user_id: int = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=200)
    request_hash: str = Field(max_length=64)
    status_code: int
    response: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    display_name: str = Field(default="", max_length=100)
    role: str = Field(max_length=20)
    password_hash: str | None = None
    active: bool = True
    created_at: datetime


class ApiToken(SQLModel, table=True):
    """A service credential; only the SHA-256 of the random token and its first characters are stored."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str = Field(default="", max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str | None = Field(default=None, max_length=16)  # the first characters, to recognise it
    created_at: datetime
    last_used_at: datetime | None = None  # updated at most every few minutes (accounts.py)
    revoked_at: datetime | None = None


class Session(SQLModel, table=True):
    """A console login; the cookie holds a random id, the table its SHA-256 and the CSRF token."""

    __tablename__ = "sessions"

    id_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime
    expires_at: datetime


class SavedView(SQLModel, table=True):
    """A named set of queue filters of one reviewer."""

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_saved_views_user_name"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id")
    name: str = Field(max_length=60)
    query: str = Field(max_length=1000)
    created_at: datetime


class ServerState(SQLModel, table=True):
    """Small shared values of the service: the key that signs list cursors (``value``) and counters
    such as the credential epoch (``number``), which every worker process polls."""

    __tablename__ = "server_state"

    name: str = Field(primary_key=True, max_length=40)
    value: str = Field(default="", max_length=200)
    number: int = 0
    updated_at: datetime


class LoginThrottle(SQLModel, table=True):
    """Failed console logins per account (``user:<name>``) and per address (``addr:<ip>``) in the
    current window, and until when further attempts are refused without checking a password."""

    __tablename__ = "login_throttle"

    key: str = Field(primary_key=True, max_length=200)
    failures: int = 0
    window_start: datetime
    locked_until: datetime | None = None
    refused: int = 0  # attempts refused while locked (not written to auth_events one by one)
    updated_at: datetime


class AuthEvent(SQLModel, table=True):
    """Audit log of sign-ins: ``login_ok``, ``login_failed``, ``login_locked`` (a lock starts),
    ``login_busy`` (refused: too many password checks at once)."""

    __tablename__ = "auth_events"

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=30)
    username: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(index=True)


class FindingMark(SQLModel, table=True):
    """A reviewer's "not a violation" mark on one finding, written with the decision it belongs to
    (issue 17): rule precision as reviewers judge it, and training data for the classifier. The span is
    copied from the finding the reviewer saw, so the mark stands on its own."""

    __tablename__ = "finding_marks"
    __table_args__ = (
        UniqueConstraint("decision_id", "finding_index", name="uq_finding_marks_decision_index"),
    )

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decisions.id", index=True)
    item_id: int = Field(foreign_key="items.id", index=True)
    finding_index: int
    rule: str = Field(max_length=120, index=True)
    family: str = Field(default="", max_length=80)
    field_name: str = Field(default="", max_length=200)
    start: int = 0
    end: int = 0
    text: str = ""
    mark: str = Field(default="not_violation", max_length=30)
    note: str = ""
    marked_by: int
    created_at: datetime


class SellerAction(SQLModel, table=True):
    """An action on a seller as a whole (issue 17): ``hold`` (their listings stay offline until a
    ``release``; their open items go to the top of the queue) or ``warn`` (a recorded warning)."""

    __tablename__ = "seller_actions"

    id: int | None = Field(default=None, primary_key=True)
    seller_id: str = Field(max_length=200, index=True)
    kind: str = Field(max_length=20)  # hold | release | warn
    note: str = ""
    items: int = 0  # open items whose priority the action raised
    actor: int
    created_at: datetime = Field(index=True)
