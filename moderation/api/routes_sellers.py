"""Sellers as a whole (issue 17): ``GET /v1/sellers/{id}`` (held?, warnings, actions), ``GET
/v1/sellers?held=true`` (what the publishing side keeps offline), ``POST /v1/sellers/{id}/actions``
(leads and admins: ``hold``, ``release``, ``warn``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from moderation.api.auth import require
from moderation.queue.roles import Actor
from moderation.queue.safety import refuse_unstorable
from moderation.queue.sellers import Sellers

router = APIRouter(prefix="/v1/sellers", tags=["sellers"])
Text = Annotated[str, AfterValidator(refuse_unstorable)]
SellerId = Annotated[Text, Path(min_length=1, max_length=200)]


class SellerActionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["hold", "release", "warn"]
    note: Text = Field(default="", max_length=2000)


class ActionOut(BaseModel):
    id: int
    kind: str
    note: str
    raised_items: int
    actor: int
    actor_name: str | None
    created_at: str


class SellerOut(BaseModel):
    """A seller as a whole (``Sellers.info``): held since when, warnings, open items, actions."""

    seller_id: str
    held: bool
    held_since: str | None
    warnings: int
    open_items: int
    actions: list[ActionOut]


class HeldSeller(BaseModel):
    seller_id: str
    held_since: str
    note: str


class HeldOut(BaseModel):
    sellers: list[HeldSeller]


class ActedOut(BaseModel):
    id: int
    seller_id: str
    kind: str
    raised_items: int
    created_at: str
    seller: SellerOut


def _sellers(request: Request) -> Sellers:
    queue = request.app.state.queue
    sellers = getattr(queue, "sellers", None)
    return sellers if sellers is not None else Sellers(queue.db)


@router.get("", response_model=HeldOut)
def held_sellers(
    request: Request, _: Annotated[Actor, Depends(require("view"))], held: bool = True
) -> dict[str, Any]:
    """Sellers on hold (their listings stay offline until released)."""
    return {"sellers": _sellers(request).held() if held else []}


@router.get("/{seller_id}", response_model=SellerOut)
def seller(
    seller_id: SellerId, request: Request, _: Annotated[Actor, Depends(require("view"))]
) -> dict[str, Any]:
    """Whether the seller is held, since when, their warnings and every action on them (newest first)."""
    return _sellers(request).info(seller_id)


@router.post("/{seller_id}/actions", status_code=201, response_model=ActedOut)
def act(
    seller_id: SellerId,
    body: SellerActionIn,
    request: Request,
    actor: Annotated[Actor, Depends(require("bulk"))],
) -> dict[str, Any]:
    """``hold``: record it and move the seller's open items to the top of the queue (one transaction);
    ``release``: end the hold; ``warn``: record a warning (``note`` is its text, required)."""
    return _sellers(request).act(seller_id, actor, body.kind, body.note)
