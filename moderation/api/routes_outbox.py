"""Outbox delivery (``/v1/outbox``): the integration that notifies sellers leases records, delivers
them and acknowledges them. At least once: a record leased but not acknowledged before its lease
runs out is leased again, so receivers deduplicate by record ``id``. Roles: service and admin.
Semantics (undo window, cancelled notifications, per-listing order): moderation/queue/outbox.py."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from moderation.api.auth import require
from moderation.queue.outbox import MAX_ACK, MAX_LEASE, OutboxDelivery
from moderation.queue.roles import Actor
from moderation.queue.safety import INT_MAX, refuse_unstorable

router = APIRouter(prefix="/v1/outbox", tags=["outbox"])


class LeaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=100, ge=1, le=MAX_LEASE)
    lease_seconds: int = Field(default=60, ge=1, le=3600)


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[int, Field(ge=1, le=INT_MAX)]] = Field(min_length=1, max_length=MAX_ACK)


class RecordOut(BaseModel):
    """One outbox record (``outbox.record_json``); times are ISO 8601 strings."""

    id: int
    kind: str
    listing_id: str
    item_id: int
    decision_id: int | None
    payload: dict[str, Any]
    state: Literal["waiting", "ready", "leased", "delivered", "cancelled"]
    created_at: str
    available_at: str
    attempts: int
    lease_expires_at: str | None
    sent_at: str | None
    cancelled_at: str | None


class LeaseOut(BaseModel):
    records: list[RecordOut]
    lease_expires_at: str


class AckOut(BaseModel):
    acknowledged: list[int]
    already_acknowledged: list[int]


class RecordsOut(BaseModel):
    records: list[RecordOut]
    next_after: int | None


async def outbox(request: Request) -> OutboxDelivery:
    """Async so FastAPI does not hand it to the thread pool (see ``routes_queue.q``)."""
    return request.app.state.queue.outbox  # type: ignore[no-any-return]


Box = Annotated[OutboxDelivery, Depends(outbox)]
Consumer = Annotated[Actor, Depends(require("outbox"))]


@router.get("", response_model=RecordsOut)
def list_records(
    box: Box,
    actor: Consumer,
    status: Literal["pending", "delivered", "cancelled", "all"] = "pending",
    kind: Annotated[str | None, Query(max_length=40), AfterValidator(refuse_unstorable)] = None,
    after: Annotated[int, Query(ge=0, le=INT_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Records in id order without leasing them (``pending``: not yet delivered nor cancelled, each
    with its ``state``: waiting, ready or leased); page with ``after=<next_after>``."""
    return box.records(actor, status=status, kind=kind, after=after, limit=limit)


@router.post("/lease", response_model=LeaseOut)
def lease(box: Box, actor: Consumer, body: LeaseIn | None = None) -> dict[str, Any]:
    """Lease up to ``limit`` deliverable records, oldest first; no other consumer gets them for
    ``lease_seconds``. An empty ``records`` list means nothing is deliverable now."""
    b = body or LeaseIn()
    return box.lease(actor, limit=b.limit, lease_seconds=b.lease_seconds)


@router.post("/ack", response_model=AckOut)
def ack(body: AckIn, box: Box, actor: Consumer) -> dict[str, Any]:
    """Mark leased records delivered. Idempotent (repeats land in ``already_acknowledged``); an
    unknown id is 404 and a record that was never leased 409, and then nothing is marked."""
    return box.ack(body.ids, actor)
