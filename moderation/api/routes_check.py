"""``POST /v1/check`` (the contract of docs/contracts.md), listings, users and tokens, health."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from moderation.api.auth import current_actor, require
from moderation.api.checkpool import Saturated
from moderation.api.isolation import Stopped
from moderation.api.settings import Settings
from moderation.queue import Invalid, ReviewQueue
from moderation.queue.roles import ROLES, Actor
from moderation.queue.safety import INT_MAX, refuse_unstorable, storable_json
from moderation.schema import CheckResult, Listing

router = APIRouter()
Text = Annotated[str, AfterValidator(refuse_unstorable)]
Username = Annotated[Text, Path(min_length=1, max_length=100)]


class CheckRequest(Listing):
    """A Listing plus ``enqueue``: put a non-pass result into the review queue; and ``ocr``: also read
    the text in the listing's images (docs/ocr.md; absent: the server's setting, ``MODERATION_OCR``)."""

    enqueue: bool = False
    ocr: bool | None = None
    #: Also answer ``rewrite``: the listing with every span its rule can fix rewritten, the edits (in
    #: original offsets) and what still fires after checking it again (moderation/rules/rewrite.py).
    rewrite: bool = False


def _render(result: CheckResult) -> tuple[CheckResult, bytes]:
    """The result as the contract's JSON bytes (in the check thread: a big result is costly to encode)."""
    return result, json.dumps(result.to_json_dict(), ensure_ascii=False, separators=(",", ":")).encode()


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Text = Field(min_length=1, max_length=100)
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")
    password: Text | None = Field(default=None, min_length=8, max_length=200)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Text = Field(default="", max_length=100)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: StrictBool


@router.get("/health", tags=["meta"])
def health() -> dict[str, str]:
    """Liveness; the only endpoint without a credential."""
    return {"status": "ok"}


SATURATED = {
    "description": "Every check worker is busy (see ``Retry-After``)",
    "content": {"application/json": {"example": {"detail": {"code": "saturated", "message": "…"}}}},
}


@router.post("/v1/check", tags=["check"], response_model=None, responses={503: SATURATED})
async def check(
    body: CheckRequest, request: Request, actor: Annotated[Actor, Depends(require("check"))]
) -> Response:
    """Check one listing; with ``"enqueue": true`` a non-pass result goes into the review queue
    (one open item per listing; a changed listing supersedes its open item).

    The check runs in the server's bounded check pool, never on the event loop; when every worker is
    busy and the wait list is full the answer is 503 with ``Retry-After``. A listing that needs more
    than the CPU budget gets a Check result with ``error.code = "too_costly"`` (200, like every
    per-listing error; with ``enqueue`` it is queued for a person, flagged ``check_error``). NUL and
    unpaired surrogates are replaced by U+FFFD before checking; ``sanitized`` lists the fields."""
    if body.enqueue and not actor.can("enqueue"):
        raise HTTPException(403, f"role {actor.role} may not enqueue")
    state = request.app.state
    checker = state.checker
    if checker is None:  # first request of a lazily built app: loading the model must not block the loop
        checker = await run_in_threadpool(state.get_checker)
    settings: Settings = state.settings
    size = len(body.title) + len(body.description) + sum(len(v) for v in body.attributes.values())
    heavy = size > settings.heavy_chars
    isolated = state.heavy_processes if heavy else None

    def job() -> tuple[Listing, list[str], CheckResult, bytes, dict[str, Any] | None]:
        # In a check thread: cleaning a 2 MB listing and encoding its answer cost milliseconds. A
        # heavy listing's rules run in a separate process when the server isolates them.
        data, changed = _sanitized(body.model_dump(exclude={"enqueue", "ocr", "rewrite"}))
        listing = Listing.model_validate(data) if changed else Listing.model_construct(**data)
        result = checker.check_here(
            listing,
            settings.check_budget_s,
            isolated.find if isolated else None,
            **({"ocr": body.ocr} if body.ocr is not None else {}),
        )
        rewritten = None
        if body.rewrite and result.error is None and not heavy:
            from moderation.rules.rewrite import rewrite_listing

            rewritten = rewrite_listing(checker, listing, result).to_json()
        return (listing, changed, *_render(result), rewritten)

    try:
        listing, changed_fields, result, rendered, rewritten = await asyncio.wrap_future(
            state.check_pool.submit(job, heavy=heavy)
        )
    except (Saturated, Stopped) as exc:
        raise HTTPException(
            503,
            {"code": "saturated", "message": str(exc)},
            headers={"Retry-After": str(settings.retry_after_s)},
        ) from None
    extra: dict[str, Any] = {}
    if rewritten is not None:
        extra["rewrite"] = rewritten
    if changed_fields:
        extra["sanitized"] = changed_fields
    if body.enqueue:
        queue: ReviewQueue = state.queue
        extra["queue"] = await run_in_threadpool(
            partial(
                queue.intake.enqueue, listing, result, actor, flags=("sanitized",) if changed_fields else ()
            )
        )
    if extra:  # splice the extra keys into the rendered object: no second encoding of the findings
        rendered = rendered[:-1] + b"," + json.dumps(extra, ensure_ascii=False)[1:].encode()
    return Response(rendered, media_type="application/json")


def _sanitized(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The listing's fields with unstorable characters replaced, and the names of the fields changed."""
    changed = []
    out = dict(data)
    for name, value in data.items():
        clean, did = storable_json(value)
        if did:
            changed.append(name)
            out[name] = clean
    return out, changed


@router.delete("/v1/listings/{listing_id}", tags=["queue"])
def delete_listing(
    listing_id: Annotated[str, Path(min_length=1, max_length=10_000)],
    request: Request,
    actor: Annotated[Actor, Depends(require("listing_edit"))],
) -> dict[str, Any]:
    """The listing was removed: its open item is superseded. The id is mapped as ``enqueue`` stores it
    (unstorable characters replaced, a long id hashed), so every id a check accepted can be deleted."""
    return request.app.state.queue.intake.delete_listing(listing_id, actor)  # type: ignore[no-any-return]


@router.get("/v1/me", tags=["meta"])
def me(actor: Annotated[Actor, Depends(current_actor)]) -> dict[str, Any]:
    return {"id": actor.id, "username": actor.username, "role": actor.role}


@router.get("/v1/users", tags=["admin"])
def list_users(request: Request, _: Annotated[Actor, Depends(require("users"))]) -> dict[str, Any]:
    return {"users": request.app.state.accounts.list_users()}


@router.post("/v1/users", tags=["admin"], status_code=201)
def create_user(
    body: UserIn, request: Request, _: Annotated[Actor, Depends(require("users"))]
) -> dict[str, Any]:
    user = request.app.state.accounts.create_user(body.username, body.role, body.password)
    return {"id": user.id, "username": user.username, "role": user.role}


@router.post("/v1/users/{username}/tokens", tags=["admin"], status_code=201)
def create_token(
    username: Username, body: TokenIn, request: Request, _: Annotated[Actor, Depends(require("users"))]
) -> dict[str, Any]:
    """A new API token for the user; shown once, stored only as a hash."""
    user = request.app.state.accounts.get_user(username)
    return {"token": request.app.state.accounts.create_token(user.id, body.name), "username": user.username}


@router.get("/v1/users/{username}/tokens", tags=["admin"])
def list_tokens(
    username: Username,
    request: Request,
    _: Annotated[Actor, Depends(require("users"))],
    include_revoked: bool = True,
) -> dict[str, Any]:
    """The user's tokens without secrets: id, name, prefix (first characters), created, last used
    (to within minutes), revoked."""
    return {"tokens": request.app.state.accounts.list_tokens(username, include_revoked=include_revoked)}


@router.delete("/v1/users/{username}/tokens/{token_id}", tags=["admin"])
def revoke_token(
    username: Username,
    token_id: Annotated[int, Path(ge=1, le=INT_MAX)],
    request: Request,
    _: Annotated[Actor, Depends(require("users"))],
) -> dict[str, Any]:
    """Revoke one of the user's tokens (idempotent). It stops working at once in the process that
    answered and within a second everywhere else (the credential epoch)."""
    return {"token": request.app.state.accounts.revoke_token(token_id, username)}


@router.patch("/v1/users/{username}", tags=["admin"])
def patch_user(
    username: Username, body: UserPatch, request: Request, actor: Annotated[Actor, Depends(require("users"))]
) -> dict[str, Any]:
    """``{"active": false}`` disables the user (tokens and sessions stop working, sessions are
    deleted); ``{"active": true}`` enables them again. An admin cannot disable themselves."""
    if not body.active and username == actor.username:
        raise Invalid("cannot_disable_self", "an admin cannot disable their own account")
    return {"user": request.app.state.accounts.set_active(username, body.active)}
