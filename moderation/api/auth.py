"""Who is calling: a Bearer API token (services) or a console session cookie (people).

Cookie-authenticated requests that change state must carry the session's CSRF token in the
``X-CSRF-Token`` header (or a ``csrf_token`` form field): a cookie is sent by the browser on its own,
a header or form field from another origin is not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from moderation.api.accounts import Accounts, SessionInfo, same_secret
from moderation.queue.roles import Actor

SESSION_COOKIE = "msession"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def accounts(request: Request) -> Accounts:
    return request.app.state.accounts  # type: ignore[no-any-return]


async def current_actor(request: Request) -> Actor:
    """The authenticated actor, or 401; CSRF-checked for cookie sessions on unsafe methods.

    Async with a short credential cache: most requests authenticate without a thread hop or a
    database read; a cache miss reads the database in the thread pool.
    """
    header = request.headers.get("authorization", "")
    store = accounts(request)
    if store.epoch_stale():  # revocations in other processes show within ``credential_poll_s``
        await store.refresh_epoch_async()
    if header:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                401, "use 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
            )
        hit, value = store.cached("token:", token)
        actor = value if hit else await run_in_threadpool(store.actor_for_token, token)
        if not isinstance(actor, Actor):
            raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
        return actor
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        hit, value = store.cached("session:", sid)
        info = value if hit else await run_in_threadpool(store.session, sid)
        if isinstance(info, SessionInfo):
            if request.method not in SAFE_METHODS and not same_secret(
                request.headers.get("x-csrf-token"), info.csrf_token
            ):
                raise HTTPException(403, "missing or wrong CSRF token")
            request.state.csrf_token = info.csrf_token
            return info.actor
    raise HTTPException(401, "authentication required", headers={"WWW-Authenticate": "Bearer"})


def require(permission: str) -> Callable[..., Awaitable[Actor]]:
    """A dependency that authenticates and then checks the role holds ``permission`` (else 403)."""

    async def dependency(actor: Actor = Depends(current_actor)) -> Actor:  # noqa: B008
        if not actor.can(permission):
            raise HTTPException(403, f"role {actor.role} may not {permission}")
        return actor

    dependency.__name__ = f"require_{permission}"
    return dependency
