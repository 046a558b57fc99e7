"""``POST /v1/check`` (the contract of ../shared/CONTRACTS.md), listings, users and tokens, health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from starlette.concurrency import run_in_threadpool

from moderation.api.auth import current_actor, require
from moderation.queue import Invalid, ReviewQueue
from moderation.queue.roles import ROLES, Actor
from moderation.schema import Listing

router = APIRouter()
#: Listings with more text than this have their rules run in the thread pool; smaller ones (almost all)
#: on the event loop, because a sub-millisecond rules pass costs less than the hand-off to a worker
#: thread. The classifier score always comes from the checker's one BatchScorer thread.
INLINE_CHECK_CHARS = 4000


class CheckRequest(Listing):
    """A Listing plus ``enqueue``: put a non-pass result into the review queue."""

    enqueue: bool = False

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # JSON may escape lone surrogates (\\ud800); they are not text and no database stores them.
        def walk(value: Any) -> None:
            if isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError("text contains an unpaired surrogate (invalid Unicode)") from None
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(k)
                    walk(v)
            elif isinstance(value, list):
                for v in value:
                    walk(v)

        walk(data)
        return data


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=100)
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")
    password: str | None = Field(default=None, min_length=8, max_length=200)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=100)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: StrictBool


@router.get("/health", tags=["meta"])
def health() -> dict[str, str]:
    """Liveness; the only endpoint without a credential."""
    return {"status": "ok"}


@router.post("/v1/check", tags=["check"])
async def check(body: CheckRequest, request: Request,
                actor: Annotated[Actor, Depends(require("check"))]) -> dict[str, Any]:
    """Check one listing; with ``"enqueue": true`` a non-pass result goes into the review queue
    (one open item per listing; a changed listing supersedes its open item)."""
    if body.enqueue and not actor.can("enqueue"):
        raise HTTPException(403, f"role {actor.role} may not enqueue")
    listing = Listing.model_validate(body.model_dump(exclude={"enqueue"}))
    checker = request.app.state.checker
    if checker is None:  # first request of a lazily built app: loading the model must not block the loop
        checker = await run_in_threadpool(request.app.state.get_checker)
    long_text = sum(len(t) for _, t in listing.text_fields()) > INLINE_CHECK_CHARS
    result = await checker.check_async(listing, offload=long_text)
    out = result.to_json_dict()
    if body.enqueue:
        queue: ReviewQueue = request.app.state.queue
        out["queue"] = await run_in_threadpool(queue.intake.enqueue, listing, result, actor)
    return out


@router.delete("/v1/listings/{listing_id}", tags=["queue"])
def delete_listing(listing_id: str, request: Request,
                   actor: Annotated[Actor, Depends(require("listing_edit"))]) -> dict[str, Any]:
    """The listing was removed: its open item is superseded."""
    return request.app.state.queue.intake.delete_listing(listing_id, actor)  # type: ignore[no-any-return]


@router.get("/v1/me", tags=["meta"])
def me(actor: Annotated[Actor, Depends(current_actor)]) -> dict[str, Any]:
    return {"id": actor.id, "username": actor.username, "role": actor.role}


@router.get("/v1/users", tags=["admin"])
def list_users(request: Request, _: Annotated[Actor, Depends(require("users"))]) -> dict[str, Any]:
    return {"users": request.app.state.accounts.list_users()}


@router.post("/v1/users", tags=["admin"], status_code=201)
def create_user(body: UserIn, request: Request, _: Annotated[Actor, Depends(require("users"))]) -> dict[str, Any]:
    user = request.app.state.accounts.create_user(body.username, body.role, body.password)
    return {"id": user.id, "username": user.username, "role": user.role}


@router.post("/v1/users/{username}/tokens", tags=["admin"], status_code=201)
def create_token(username: str, body: TokenIn, request: Request,
                 _: Annotated[Actor, Depends(require("users"))]) -> dict[str, Any]:
    """A new API token for the user; shown once, stored only as a hash."""
    user = request.app.state.accounts.get_user(username)
    return {"token": request.app.state.accounts.create_token(user.id, body.name), "username": user.username}


@router.get("/v1/users/{username}/tokens", tags=["admin"])
def list_tokens(username: str, request: Request, _: Annotated[Actor, Depends(require("users"))],
                include_revoked: bool = True) -> dict[str, Any]:
    """The user's tokens without secrets: id, name, prefix (first characters), created, last used
    (to within minutes), revoked."""
    return {"tokens": request.app.state.accounts.list_tokens(username, include_revoked=include_revoked)}


@router.delete("/v1/users/{username}/tokens/{token_id}", tags=["admin"])
def revoke_token(username: str, token_id: int, request: Request,
                 _: Annotated[Actor, Depends(require("users"))]) -> dict[str, Any]:
    """Revoke one of the user's tokens (idempotent). It stops working at once in the process that
    answered; other worker processes trust a token they verified for up to 10 s more."""
    return {"token": request.app.state.accounts.revoke_token(token_id, username)}


@router.patch("/v1/users/{username}", tags=["admin"])
def patch_user(username: str, body: UserPatch, request: Request,
               actor: Annotated[Actor, Depends(require("users"))]) -> dict[str, Any]:
    """``{"active": false}`` disables the user (tokens and sessions stop working, sessions are
    deleted); ``{"active": true}`` enables them again. An admin cannot disable themselves."""
    if not body.active and username == actor.username:
        raise Invalid("cannot_disable_self", "an admin cannot disable their own account")
    return {"user": request.app.state.accounts.set_active(username, body.active)}
