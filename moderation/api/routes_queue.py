"""Review-queue endpoints (``/v1/queue``). Thin: validate, check the role, call the service.

Status codes: 401 without a credential, 403 for a role that may not, 404 unknown item, 409 for a lost
lease / stale version / changed listing / already decided / held by another, 422 for bad input
(including an Idempotency-Key reused with another body).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from moderation.api.auth import require
from moderation.queue import Invalid, ItemFilter, ReviewQueue
from moderation.queue.roles import Actor
from moderation.queue.safety import INT_MAX, DbInt, Text
from moderation.queue.states import OUTCOME_LABELS, REASON_CODES
from moderation.queue.workflow import DecisionIn, Judgement
from moderation.schema import Severity

router = APIRouter(prefix="/v1/queue", tags=["queue"])
#: Every value a client sends must fit where it goes: text without NUL or unpaired surrogates (no
#: database stores them; ``Text``), integers in the columns' range (signed 32-bit; ``DbInt``), floats
#: finite and bounded. The decision body is the queue's own model (``DecisionIn``).
DbId = Annotated[int, Field(ge=1, le=INT_MAX)]
ItemId = Annotated[int, Path(ge=1, le=INT_MAX)]
#: Ages beyond ~114 years select nothing new (and larger ones overflow date arithmetic).
MAX_AGE_HOURS = 1_000_000.0


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClaimNextIn(Strict):
    family: Text | None = Field(default=None, max_length=80)
    category: Text | None = Field(default=None, max_length=40)
    severity: Severity | None = None
    kind: Literal["check", "appeal"] | None = None


class TokenIn(Strict):
    claim_token: Text = Field(min_length=1, max_length=64)


class ReleaseIn(TokenIn):
    skip: bool = False


class EscalateIn(Strict):
    note: Text = Field(default="", max_length=2000)
    claim_token: Text | None = Field(default=None, max_length=64)
    version: DbInt | None = None


class CommentIn(Strict):
    text: Text = Field(min_length=1, max_length=5000)


class UndoIn(Strict):
    reclaim: bool = False


class RevertIn(Strict):
    reason: Text = Field(min_length=1, max_length=2000)


class PatchIn(Strict):
    version: DbInt
    priority: int = Field(ge=0, le=1000)


class AssignIn(Strict):
    username: Text = Field(min_length=1, max_length=100)
    force: bool = False


class AppealIn(Strict):
    reason: Text = Field(min_length=1, max_length=5000)


class BulkIn(Judgement):
    item_ids: list[DbId] = Field(min_length=1, max_length=500)
    dry_run: bool = False


# -- answers (``response_model``: the OpenAPI schema says what each write returns, and FastAPI checks
# the service's answer against it). Times are ISO 8601 strings as the service writes them.


class ItemOut(BaseModel):
    """An item as the queue returns it (``core.public_item``): its row without the claim token."""

    id: int
    listing_id: str
    listing_revision: int
    kind: str
    appeal_of: int | None
    appeal_reason: str | None
    excluded_user: int | None
    status: str
    outcome: str | None
    escalated: bool
    priority: int
    verdict: str | None
    risk: float
    max_severity: str | None
    families: list[str]
    flags: list[str]
    category: str
    seller_id: str | None
    title: str
    claimed_by: int | None
    claimed_at: str | None
    lease_expires_at: str | None
    decided_by: int | None
    decided_at: str | None
    attempt: int
    version: int
    event_seq: int
    signal_count: int
    created_at: str
    updated_at: str


class ClaimOut(BaseModel):
    """A claim; claim-next answers ``{"item": null, "claim_token": null}`` when nothing is claimable."""

    item: ItemOut | None
    claim_token: str | None
    lease_expires_at: str | None = None
    version: int | None = None


class LeaseOut(BaseModel):
    item_id: int
    lease_expires_at: str
    version: int


class DecisionOut(BaseModel):
    item: ItemOut
    decision_id: int
    outcome: str
    attempt: int
    undo_until: str | None


class CommentOut(BaseModel):
    item_id: int
    seq: int


class ReopenOut(BaseModel):
    """An undone or reverted decision; with ``reclaim`` the decider holds the item again."""

    item: ItemOut
    attempt: int
    claim_token: str | None = None
    version: int | None = None


class BulkResult(BaseModel):
    """One item of a bulk decision: ``decision_id`` when decided, the error's ``status``, ``code`` and
    ``message`` (and its details) when not; a dry run says ``status_now`` and ``title``."""

    model_config = ConfigDict(extra="allow")
    item_id: int
    ok: bool
    decision_id: int | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    status_now: str | None = None
    title: str | None = None


class BulkOut(BaseModel):
    results: list[BulkResult]
    ok: int
    failed: int
    dry_run: bool


class ListedItem(ItemOut):
    """An item in a list (``Views.list_items``): who holds it now, its age and its SLA deadline."""

    held_by: str | None
    held_by_id: int | None
    age_seconds: int
    sla_deadline: str
    sla_breached: bool


class ItemsOut(BaseModel):
    items: list[ListedItem]
    next_cursor: str | None


class EventOut(BaseModel):
    id: int
    item_id: int
    seq: int
    type: str
    actor: int | None
    data: dict[str, Any]
    created_at: str


class EventsOut(BaseModel):
    events: list[EventOut]
    next_after: int | None


class SignalOut(BaseModel):
    """A check result that queued the item (the latest one's JSON is the detail's ``check``)."""

    id: int
    source: str
    verdict: str | None
    risk: float
    listing_revision: int
    created_at: str


class FindingMarkOut(BaseModel):
    """A finding the reviewer marked "not a violation" (``marks.public_mark``)."""

    index: int
    rule: str
    family: str
    field: str
    start: int
    end: int
    text: str
    mark: str
    note: str


class DecisionRecord(BaseModel):
    """A decision on the listing (on any of its items), undone ones included."""

    id: int
    item_id: int
    attempt: int
    outcome: str
    reason_codes: list[str]
    seller_message: str
    internal_note: str
    listing_revision: int
    decided_by: int
    claimed_at: str | None
    created_at: str
    bulk: bool
    undone_at: str | None
    undone_by: int | None
    undo_kind: str | None
    undo_reason: str | None
    decided_by_name: str | None
    finding_marks: list[FindingMarkOut]


class ItemEventOut(BaseModel):
    """One of the item's events, with the name of who acted."""

    seq: int
    type: str
    actor: int | None
    data: dict[str, Any]
    created_at: str
    actor_name: str | None


class SellerItemOut(BaseModel):
    """Another item of the same seller (newest first, at most 20)."""

    id: int
    listing_id: str
    title: str
    status: str
    outcome: str | None
    created_at: str


class ItemDetailOut(ListedItem):
    """Everything a reviewer needs on one page (``Views.detail``): ``listing`` and ``check`` are the
    listing snapshot and the contract Check result of the latest signal; ``claim_token`` only for the
    holder; ``seller_counts`` the seller's items by outcome (``open``: not decided)."""

    claim_token: str | None
    listing: dict[str, Any]
    check: dict[str, Any]
    current_listing_revision: int | None
    listing_deleted: bool
    signals: list[SignalOut]
    decisions: list[DecisionRecord]
    events: list[ItemEventOut]
    seller_history: list[SellerItemOut]
    seller_counts: dict[str, int]
    decided_by_name: str | None


class HoldsOut(BaseModel):
    """Item id → the holder's username."""

    holds: dict[str, str]


class ReasonCode(BaseModel):
    code: str
    label: str
    key: int


class ReasonCodesOut(BaseModel):
    reason_codes: list[ReasonCode]
    outcomes: dict[str, str]


class ThroughputOut(BaseModel):
    decisions: int
    per_hour: float
    by_outcome: dict[str, int]
    by_reviewer: dict[str, int]


class HandlingOut(BaseModel):
    """Claim to decision, in seconds (``None`` without decisions)."""

    p50: float | None
    p95: float | None


class QueueAgeOut(BaseModel):
    open: int
    age_p50_seconds: float | None
    age_p95_seconds: float | None


class SlaOut(BaseModel):
    open: int
    decided_late: int
    hours: dict[str, int]


class RatesOut(BaseModel):
    """Shares of the window's decisions, touched items or decided appeals (``None``: there were none)."""

    escalation: float | None
    undo: float | None
    revert: float | None
    appeal_overturn: float | None


class AppealsOut(BaseModel):
    decided: int
    overturned: int


class RulePrecisionOut(BaseModel):
    """Of the decided items the rule fired on: rejected or sent back (``confirmed``), or approved."""

    rule: str
    family: str
    confirmed: int
    overruled: int
    decided: int
    precision: float | None


class StatsOut(BaseModel):
    """The queue's figures over the last ``window_hours`` (``stats.compute_stats``)."""

    window_hours: float
    throughput: ThroughputOut
    handling_seconds: HandlingOut
    queue: QueueAgeOut
    sla_breaches: SlaOut
    rates: RatesOut
    appeals: AppealsOut
    rule_precision: list[RulePrecisionOut]


async def q(request: Request) -> ReviewQueue:
    """Async on purpose: FastAPI runs a plain ``def`` dependency in the thread pool, a hand-off per
    request that cost more than everything this function does."""
    return request.app.state.queue  # type: ignore[no-any-return]


Q = Annotated[ReviewQueue, Depends(q)]


@router.get("/reason-codes", response_model=ReasonCodesOut)
def reason_codes(_: Annotated[Actor, Depends(require("view"))]) -> dict[str, Any]:
    """Reason codes in the order of the console's 1–9 keys, and outcome labels."""
    return {
        "reason_codes": [
            {"code": c, "label": label, "key": i + 1} for i, (c, label) in enumerate(REASON_CODES.items())
        ],
        "outcomes": OUTCOME_LABELS,
    }


@router.get("/items", response_model=ItemsOut)
def list_items(
    queue: Q,
    _: Annotated[Actor, Depends(require("view"))],
    status: Annotated[Text | None, Query(max_length=20)] = None,
    family: Annotated[Text | None, Query(max_length=80)] = None,
    severity: Severity | None = None,
    category: Annotated[Text | None, Query(max_length=40)] = None,
    seller: Annotated[Text | None, Query(max_length=200)] = None,
    kind: Literal["check", "appeal"] | None = None,
    flag: Annotated[Text | None, Query(max_length=40)] = None,
    min_risk: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    min_age_hours: Annotated[float | None, Query(ge=0, le=MAX_AGE_HOURS, allow_inf_nan=False)] = None,
    max_age_hours: Annotated[float | None, Query(ge=0, le=MAX_AGE_HOURS, allow_inf_nan=False)] = None,
    sort: Literal["priority", "oldest"] = "priority",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[Text | None, Query(max_length=500)] = None,
    q: Annotated[Text | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Filtered items, priority or oldest first, with a keyset ``next_cursor`` (signed: a cursor
    this server did not issue is 422). ``flag``: items carrying that flag (``sanitized``,
    ``long_id``, ``check_error``, ``truncated``). ``q``: words in the title, or a listing or seller id."""
    f = ItemFilter(
        status=status,
        family=family,
        severity=severity,
        category=category,
        seller=seller,
        kind=kind,
        flag=flag,
        min_risk=min_risk,
        min_age_hours=min_age_hours,
        max_age_hours=max_age_hours,
        sort=sort,
        q=q,
    )
    return queue.views.list_items(f, limit=limit, cursor=cursor)


@router.get("/items/{item_id}", response_model=ItemDetailOut)
def item_detail(
    item_id: ItemId, queue: Q, actor: Annotated[Actor, Depends(require("view"))]
) -> dict[str, Any]:
    """Listing snapshot, findings, classifier score, images, seller history, decisions, events."""
    return queue.views.detail(item_id, actor)


@router.post("/claim-next", response_model=ClaimOut, response_model_exclude_unset=True)
async def claim_next(
    queue: Q, actor: Annotated[Actor, Depends(require("claim"))], body: ClaimNextIn | None = None
) -> dict[str, Any]:
    """Claim the next item; ``{"item": null}`` when nothing is claimable. Async: a hot path, awaited on
    the event loop where the backend allows (``ReviewQueue.claim_next``)."""
    f = body or ClaimNextIn()
    claim = await queue.claim_next(
        actor, family=f.family, category=f.category, severity=f.severity, kind=f.kind
    )
    return claim or {"item": None, "claim_token": None}


@router.post("/items/{item_id}/claim", response_model=ClaimOut)
def claim(item_id: ItemId, queue: Q, actor: Annotated[Actor, Depends(require("claim"))]) -> dict[str, Any]:
    return queue.workflow.claim(item_id, actor)


@router.post("/items/{item_id}/heartbeat", response_model=LeaseOut)
def heartbeat(
    item_id: ItemId, body: TokenIn, queue: Q, actor: Annotated[Actor, Depends(require("claim"))]
) -> dict[str, Any]:
    return queue.workflow.heartbeat(item_id, actor, body.claim_token)


@router.post("/items/{item_id}/release", response_model=ItemOut)
def release(
    item_id: ItemId, body: ReleaseIn, queue: Q, actor: Annotated[Actor, Depends(require("claim"))]
) -> dict[str, Any]:
    """Give the item back; ``skip`` also keeps claim-next from offering it to you again."""
    return queue.workflow.release(item_id, actor, body.claim_token, skip=body.skip)


@router.post("/items/{item_id}/decision", response_model=DecisionOut)
async def decide(
    item_id: ItemId,
    body: DecisionIn,
    queue: Q,
    actor: Annotated[Actor, Depends(require("decide"))],
    idempotency_key: Annotated[Text | None, Header(max_length=200)] = None,
) -> dict[str, Any]:
    """Decide the claimed item. With ``Idempotency-Key``: same key and body → same answer;
    same key, other body → 422. Awaited like claim-next (``ReviewQueue.decide``)."""
    return await queue.decide(item_id, actor, body, idempotency_key)


@router.post("/items/{item_id}/escalate", response_model=ItemOut)
def escalate(
    item_id: ItemId, body: EscalateIn, queue: Q, actor: Annotated[Actor, Depends(require("escalate"))]
) -> dict[str, Any]:
    return queue.workflow.escalate(
        item_id, actor, body.note, claim_token=body.claim_token, version=body.version
    )


@router.post("/items/{item_id}/comments", response_model=CommentOut)
def comment(
    item_id: ItemId, body: CommentIn, queue: Q, actor: Annotated[Actor, Depends(require("comment"))]
) -> dict[str, Any]:
    return queue.workflow.comment(item_id, actor, body.text)


@router.post("/items/{item_id}/undo", response_model=ReopenOut, response_model_exclude_unset=True)
def undo(
    item_id: ItemId, queue: Q, actor: Annotated[Actor, Depends(require("undo"))], body: UndoIn | None = None
) -> dict[str, Any]:
    """The decider takes a decision back within the undo window (``reclaim`` keeps the item)."""
    return queue.workflow.undo(item_id, actor, reclaim=(body or UndoIn()).reclaim)


@router.post("/items/{item_id}/revert", response_model=ReopenOut, response_model_exclude_unset=True)
def revert(
    item_id: ItemId, body: RevertIn, queue: Q, actor: Annotated[Actor, Depends(require("revert"))]
) -> dict[str, Any]:
    return queue.workflow.revert(item_id, actor, body.reason)


@router.patch("/items/{item_id}", response_model=ItemOut)
def patch_item(
    item_id: ItemId, body: PatchIn, queue: Q, actor: Annotated[Actor, Depends(require("priority"))]
) -> dict[str, Any]:
    """A lead's edit (priority), guarded by the item version they saw."""
    return queue.workflow.set_priority(item_id, actor, body.priority, body.version)


@router.post("/items/{item_id}/assign", response_model=ItemOut)
def assign(
    item_id: ItemId,
    body: AssignIn,
    request: Request,
    queue: Q,
    actor: Annotated[Actor, Depends(require("assign"))],
) -> dict[str, Any]:
    """Hand the item to ``username`` (``force``: take it from its holder). Not to a disabled user, nor to
    one whose role may not act on the item (an escalated item needs a lead or admin): 422 / 403."""
    accounts = request.app.state.accounts
    user = accounts.get_user(body.username)
    if not accounts.is_active(user.id):
        raise Invalid("user_disabled", f"user {user.username} is disabled")
    return queue.workflow.assign(item_id, actor, user, force=body.force)


@router.post("/items/{item_id}/appeal", response_model=ItemOut)
def appeal(
    item_id: ItemId, body: AppealIn, queue: Q, actor: Annotated[Actor, Depends(require("appeal"))]
) -> dict[str, Any]:
    """A seller's appeal: a new item the original decider may not take."""
    return queue.intake.appeal(item_id, actor, body.reason)


@router.post("/bulk-decide", response_model=BulkOut, response_model_exclude_unset=True)
def bulk_decide(body: BulkIn, queue: Q, actor: Annotated[Actor, Depends(require("bulk"))]) -> dict[str, Any]:
    """One transaction per item; per-item results. ``dry_run`` previews without writing."""
    results = queue.workflow.bulk_decide(actor, body.item_ids, body, dry_run=body.dry_run)
    return {
        "results": results,
        "ok": sum(1 for r in results if r["ok"]),
        "failed": sum(1 for r in results if not r["ok"]),
        "dry_run": body.dry_run,
    }


@router.get("/holds", response_model=HoldsOut)
def holds(queue: Q, _: Annotated[Actor, Depends(require("view"))]) -> dict[str, Any]:
    """Items held right now and by whom (the console's live markers)."""
    return {"holds": {str(k): v for k, v in queue.views.holds().items()}}


@router.get("/events", response_model=EventsOut)
def events(
    queue: Q,
    _: Annotated[Actor, Depends(require("events"))],
    item_id: Annotated[int | None, Query(ge=1, le=INT_MAX)] = None,
    after: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    return queue.views.events(item_id=item_id, after_id=after, limit=limit)


@router.get("/stats", response_model=StatsOut)
def stats(
    queue: Q,
    _: Annotated[Actor, Depends(require("stats"))],
    hours: Annotated[float, Query(gt=0, le=24 * 366, allow_inf_nan=False)] = 24.0,
) -> dict[str, Any]:
    """Throughput, handling time, queue age, SLA breaches, escalation/undo/overturn rates, rule precision."""
    return queue.stats(hours)
