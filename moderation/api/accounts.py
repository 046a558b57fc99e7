"""Users, API tokens and console sessions.

Secrets are never stored: passwords as argon2id hashes, API tokens and session ids as SHA-256 of 32
random bytes (they are high-entropy, so a fast hash is enough and lookups stay one indexed read).
A token's first characters (``TOKEN_PREFIX`` plus four) are kept to tell tokens apart in listings.

Verified credentials are cached per process for ``CREDENTIAL_CACHE_SECONDS``. Revoking a token,
disabling a user or logging out through an ``Accounts`` evicts the entry in that process at once;
other processes (uvicorn workers, other hosts) keep trusting a credential they verified until their
entry expires, at most ``CREDENTIAL_CACHE_SECONDS`` later. ``moderation users revoke`` from the shell
is such another process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from moderation.queue.core import iso
from moderation.queue.db import Database, utcnow
from moderation.queue.errors import Conflict, Invalid, NotFound
from moderation.queue.models import ApiToken, SavedView, Session, User
from moderation.queue.roles import ROLES, Actor

USERS = User.__table__
TOKENS = ApiToken.__table__
SESSIONS = Session.__table__
VIEWS = SavedView.__table__

SESSION_HOURS = 12
#: Seconds a verified credential is trusted without another database read. Logout, revoking a token
#: and disabling a user clear the entries of the process that does it at once; other processes
#: notice within this many seconds.
CREDENTIAL_CACHE_SECONDS = 10.0
TOKEN_PREFIX = "mod_"
#: Characters of a token kept in clear (``mod_`` + 4 random ones) to recognise it in a listing.
SHOWN_PREFIX = len(TOKEN_PREFIX) + 4
#: ``api_tokens.last_used_at`` is written when it is older than this (not a write per request).
LAST_USED_RESOLUTION = timedelta(minutes=5)
log = logging.getLogger(__name__)
_hasher = PasswordHasher()
#: Verified against when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class SessionInfo:
    actor: Actor
    csrf_token: str


class Accounts:
    def __init__(self, db: Database, *, cache_seconds: float = CREDENTIAL_CACHE_SECONDS) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Actor | SessionInfo | None]] = {}
        self._cache_lock = threading.Lock()
        # Bumped by every eviction: a lookup that started before it must not cache what it read
        # (it may have read a token just before its revocation committed).
        self._generation = 0

    def cached(self, kind: str, secret: str) -> tuple[bool, Actor | SessionInfo | None]:
        """(hit, value) for a token or session id verified in the last few seconds."""
        key = kind + sha256(secret)
        entry = self._cache.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def _remember(self, kind: str, secret: str, value: Actor | SessionInfo | None, generation: int) -> None:
        if self.cache_seconds <= 0:
            return
        with self._cache_lock:
            if generation != self._generation:
                return  # something was revoked while we read; do not cache a possibly stale answer
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[kind + sha256(secret)] = (time.monotonic() + self.cache_seconds, value)

    def _forget(self, *keys: str) -> None:
        """Evict cache entries (``kind + sha256(secret)``), or all of them when no key is given."""
        with self._cache_lock:
            self._generation += 1
            if not keys:
                self._cache.clear()
            for key in keys:
                self._cache.pop(key, None)

    def forget_all(self) -> None:
        self._forget()

    def create_user(self, username: str, role: str, password: str | None = None,
                    display_name: str = "") -> Actor:
        username = username.strip()
        if role not in ROLES:
            raise Invalid("invalid_role", f"role must be one of {', '.join(ROLES)}")
        if not username or len(username) > 100:
            raise Invalid("invalid_username", "a username needs 1 to 100 characters")
        if password is not None and len(password) < 8:
            raise Invalid("weak_password", "a password needs at least 8 characters")
        try:
            with self.db.write() as conn:
                user_id = conn.execute(insert(USERS).values(
                    username=username, display_name=display_name or username, role=role,
                    password_hash=_hasher.hash(password) if password else None, active=True,
                    created_at=utcnow()).returning(USERS.c.id)).scalar_one()
        except IntegrityError:
            raise Conflict("user_exists", f"user {username} already exists") from None
        return Actor(id=int(user_id), username=username, role=role)

    def get_user(self, username: str) -> Actor:
        with self.db.read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.username == username)).first()
        if row is None:
            raise NotFound("user_not_found", f"no user {username}")
        return Actor(id=row.id, username=row.username, role=row.role)

    def get_user_by_id(self, user_id: int) -> Actor:
        with self.db.read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.id == user_id)).first()
        if row is None:
            raise NotFound("user_not_found", f"no user {user_id}")
        return Actor(id=row.id, username=row.username, role=row.role)

    def list_users(self) -> list[dict[str, object]]:
        with self.db.read() as conn:
            rows = conn.execute(select(USERS.c.id, USERS.c.username, USERS.c.role, USERS.c.active)
                                .order_by(USERS.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def set_active(self, username: str, active: bool) -> dict[str, object]:
        """Disable (or enable again) a user: a disabled user's tokens and sessions stop working (in
        this process at once, elsewhere within the cache time) and their sessions are deleted."""
        with self.db.write() as conn:
            row = conn.execute(update(USERS).where(USERS.c.username == username).values(active=active)
                               .returning(USERS.c.id, USERS.c.username, USERS.c.role, USERS.c.active)).first()
            if row is None:
                raise NotFound("user_not_found", f"no user {username}")
            if not active:
                conn.execute(delete(SESSIONS).where(SESSIONS.c.user_id == row.id))
        self.forget_all()
        return dict(row._mapping)

    # -- API tokens -------------------------------------------------------------------------------

    def create_token(self, user_id: int, name: str = "") -> str:
        """A new API token; returned once, only its hash (and its first characters) are kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.write() as conn:
            conn.execute(insert(TOKENS).values(user_id=user_id, name=name, token_hash=sha256(token),
                                               prefix=token[:SHOWN_PREFIX], created_at=utcnow()))
        return token

    def list_tokens(self, username: str | None = None, *, include_revoked: bool = True,
                    token_id: int | None = None) -> list[dict[str, Any]]:
        """Tokens (of one user, or all) without secrets: id, user, name, prefix, created, last used,
        revoked. ``NotFound`` for an unknown user."""
        cond: list[Any] = [] if token_id is None else [TOKENS.c.id == token_id]
        with self.db.read() as conn:
            if username is not None:
                user_id = conn.execute(select(USERS.c.id).where(USERS.c.username == username)).scalar()
                if user_id is None:
                    raise NotFound("user_not_found", f"no user {username}")
                cond.append(TOKENS.c.user_id == user_id)
            if not include_revoked:
                cond.append(TOKENS.c.revoked_at.is_(None))
            rows = conn.execute(
                select(TOKENS.c.id, USERS.c.username, TOKENS.c.name, TOKENS.c.prefix, TOKENS.c.created_at,
                       TOKENS.c.last_used_at, TOKENS.c.revoked_at)
                .join(USERS, USERS.c.id == TOKENS.c.user_id).where(*cond).order_by(TOKENS.c.id)).all()
        return [_token_json(dict(r._mapping)) for r in rows]

    def revoke_token(self, token_id: int, username: str | None = None) -> dict[str, Any]:
        """Revoke a token by id (``username``: it must be that user's). Idempotent: revoking a revoked
        token returns it unchanged. The token stops working in this process at once."""
        now = utcnow()
        owner = [] if username is None else [
            TOKENS.c.user_id == select(USERS.c.id).where(USERS.c.username == username).scalar_subquery()]
        with self.db.write() as conn:
            row = conn.execute(
                update(TOKENS).where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None), *owner)
                .values(revoked_at=now).returning(TOKENS.c.token_hash)).first()
            if row is None and conn.execute(select(TOKENS.c.id).where(TOKENS.c.id == token_id, *owner)).first() is None:
                whose = f" of user {username}" if username is not None else ""
                raise NotFound("token_not_found", f"no token {token_id}{whose}")
        if row is not None:
            self._forget("token:" + row.token_hash)
        return self.list_tokens(token_id=token_id)[0]

    def actor_for_token(self, token: str) -> Actor | None:
        with self._cache_lock:
            generation = self._generation
        actor = self._lookup_token(token)
        self._remember("token:", token, actor, generation)
        return actor

    def _lookup_token(self, token: str) -> Actor | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(USERS.c.id, USERS.c.username, USERS.c.role, TOKENS.c.id.label("token_id"),
                       TOKENS.c.last_used_at).join(TOKENS, TOKENS.c.user_id == USERS.c.id)
                .where(TOKENS.c.token_hash == sha256(token), TOKENS.c.revoked_at.is_(None),
                       USERS.c.active.is_(True))).first()
        if row is None:
            return None
        self._touch(row.token_id, row.last_used_at)
        return Actor(id=row.id, username=row.username, role=row.role)

    def _touch(self, token_id: int, last_used: datetime | None) -> None:
        """Record that a token was used, at most every ``LAST_USED_RESOLUTION``; bookkeeping only, so a
        failure (a busy SQLite file) is logged and the request goes on."""
        now = utcnow()
        if last_used is not None and now - last_used < LAST_USED_RESOLUTION:
            return
        try:
            with self.db.write() as conn:
                conn.execute(update(TOKENS).where(TOKENS.c.id == token_id).values(last_used_at=now))
        except OperationalError:
            log.warning("could not record the use of API token %s", token_id, exc_info=True)

    def authenticate(self, username: str, password: str) -> Actor | None:
        with self.db.read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.username == username, USERS.c.active.is_(True))).first()
        stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if row is None or not row.password_hash:
            return None
        return Actor(id=row.id, username=row.username, role=row.role)

    def create_session(self, actor: Actor) -> tuple[str, str]:
        """A console session: (cookie value, CSRF token)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.expires_at < now))
            conn.execute(insert(SESSIONS).values(id_hash=sha256(sid), user_id=actor.id, csrf_token=csrf,
                                                 created_at=now, expires_at=now + timedelta(hours=SESSION_HOURS)))
        return sid, csrf

    def session(self, sid: str) -> SessionInfo | None:
        with self._cache_lock:
            generation = self._generation
        with self.db.read() as conn:
            row = conn.execute(
                select(USERS.c.id, USERS.c.username, USERS.c.role, SESSIONS.c.csrf_token)
                .join(SESSIONS, SESSIONS.c.user_id == USERS.c.id)
                .where(SESSIONS.c.id_hash == sha256(sid), SESSIONS.c.expires_at > utcnow(),
                       USERS.c.active.is_(True))).first()
        info = None if row is None else SessionInfo(Actor(id=row.id, username=row.username, role=row.role),
                                                    row.csrf_token)
        if info is not None:
            self._remember("session:", sid, info, generation)
        return info

    def end_session(self, sid: str) -> None:
        self._forget("session:" + sha256(sid))
        with self.db.write() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.id_hash == sha256(sid)))

    # -- saved views ------------------------------------------------------------------------------

    def views(self, user_id: int) -> list[dict[str, object]]:
        with self.db.read() as conn:
            rows = conn.execute(select(VIEWS.c.id, VIEWS.c.name, VIEWS.c.query)
                                .where(VIEWS.c.user_id == user_id).order_by(VIEWS.c.name)).all()
        return [dict(r._mapping) for r in rows]

    def save_view(self, user_id: int, name: str, query: str) -> None:
        name = name.strip()
        if not name or len(name) > 60 or len(query) > 1000:
            raise Invalid("invalid_view", "a view needs a name of 1 to 60 characters")
        with self.db.write() as conn:
            conn.execute(delete(VIEWS).where(VIEWS.c.user_id == user_id, VIEWS.c.name == name))
            conn.execute(insert(VIEWS).values(user_id=user_id, name=name, query=query, created_at=utcnow()))

    def delete_view(self, user_id: int, view_id: int) -> None:
        with self.db.write() as conn:
            conn.execute(delete(VIEWS).where(VIEWS.c.user_id == user_id, VIEWS.c.id == view_id))


def _token_json(row: dict[str, Any]) -> dict[str, Any]:
    prefix = row["prefix"]
    return {"id": row["id"], "username": row["username"], "name": row["name"],
            "prefix": f"{prefix}…" if prefix else None, "created_at": iso(row["created_at"]),
            "last_used_at": iso(row["last_used_at"]), "revoked_at": iso(row["revoked_at"])}


def same_secret(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
