"""Users, API tokens and console sessions.

Secrets are never stored: passwords as argon2id hashes, API tokens and session ids as SHA-256 of 32
random bytes (they are high-entropy, so a fast hash is enough and lookups stay one indexed read).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from moderation.queue.db import Database, utcnow
from moderation.queue.errors import Conflict, Invalid, NotFound
from moderation.queue.models import ApiToken, SavedView, Session, User
from moderation.queue.roles import ROLES, Actor

USERS = User.__table__
TOKENS = ApiToken.__table__
SESSIONS = Session.__table__
VIEWS = SavedView.__table__

SESSION_HOURS = 12
#: Seconds a verified credential is trusted without another database read. Logout clears its own
#: entry at once; revoking a token or disabling a user takes effect within this many seconds.
CREDENTIAL_CACHE_SECONDS = 10.0
TOKEN_PREFIX = "mod_"
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

    def cached(self, kind: str, secret: str) -> tuple[bool, Actor | SessionInfo | None]:
        """(hit, value) for a token or session id verified in the last few seconds."""
        key = kind + sha256(secret)
        entry = self._cache.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def _remember(self, kind: str, secret: str, value: Actor | SessionInfo | None) -> None:
        if self.cache_seconds <= 0:
            return
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[kind + sha256(secret)] = (time.monotonic() + self.cache_seconds, value)

    def forget_all(self) -> None:
        with self._cache_lock:
            self._cache.clear()

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

    def create_token(self, user_id: int, name: str = "") -> str:
        """A new API token; returned once, only its hash is kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.write() as conn:
            conn.execute(insert(TOKENS).values(user_id=user_id, name=name, token_hash=sha256(token),
                                               created_at=utcnow()))
        return token

    def actor_for_token(self, token: str) -> Actor | None:
        with self.db.read() as conn:
            row = conn.execute(
                select(USERS.c.id, USERS.c.username, USERS.c.role).join(TOKENS, TOKENS.c.user_id == USERS.c.id)
                .where(TOKENS.c.token_hash == sha256(token), TOKENS.c.revoked_at.is_(None),
                       USERS.c.active.is_(True))).first()
        actor = None if row is None else Actor(id=row.id, username=row.username, role=row.role)
        self._remember("token:", token, actor)
        return actor

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
        with self.db.read() as conn:
            row = conn.execute(
                select(USERS.c.id, USERS.c.username, USERS.c.role, SESSIONS.c.csrf_token)
                .join(SESSIONS, SESSIONS.c.user_id == USERS.c.id)
                .where(SESSIONS.c.id_hash == sha256(sid), SESSIONS.c.expires_at > utcnow(),
                       USERS.c.active.is_(True))).first()
        info = None if row is None else SessionInfo(Actor(id=row.id, username=row.username, role=row.role),
                                                    row.csrf_token)
        if info is not None:
            self._remember("session:", sid, info)
        return info

    def end_session(self, sid: str) -> None:
        with self._cache_lock:
            self._cache.pop("session:" + sha256(sid), None)
        with self.db.write() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.id_hash == sha256(sid)))

    def deactivate(self, username: str) -> None:
        with self.db.write() as conn:
            conn.execute(update(USERS).where(USERS.c.username == username).values(active=False))
        self.forget_all()

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


def same_secret(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
