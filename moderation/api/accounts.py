"""Users, API tokens and console sessions.

Secrets are never stored: passwords as argon2id hashes, API tokens and session ids as SHA-256 of 32
random bytes (they are high-entropy, so a fast hash is enough and lookups stay one indexed read).
A token's first characters (``TOKEN_PREFIX`` plus four) are kept to tell tokens apart in listings.

Verified credentials are cached per process for ``CREDENTIAL_CACHE_SECONDS``. Revoking a token,
disabling a user or logging out evicts the entry in that process at once and bumps the credential
epoch (a counter in ``server_state``) in the same transaction; every process reads the epoch at most
every ``Settings.credential_poll_s`` (1 s) and drops its whole cache when it moved, so other worker
processes, other hosts and ``moderation users revoke`` from the shell take effect within that time.

Console logins are throttled per account and per address (``LoginThrottle``: after a few failures
each further one doubles a lock, during which attempts are refused without checking a password), at
most ``login_concurrency`` password checks run at once per process (each argon2id check takes 64 MiB;
more wait briefly, then are refused), and every login, failure and lock is in ``auth_events``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from moderation.api.checkpool import CheckPool, Saturated
from moderation.api.settings import Settings
from moderation.queue.core import iso, table
from moderation.queue.db import Database, retrying, utcnow
from moderation.queue.errors import Conflict, Invalid, NotFound, QueueError
from moderation.queue.models import ApiToken, AuthEvent, LoginThrottle, SavedView, ServerState, Session, User
from moderation.queue.roles import ROLES, Actor

USERS = table(User)
TOKENS = table(ApiToken)
SESSIONS = table(Session)
VIEWS = table(SavedView)
THROTTLE = table(LoginThrottle)
AUTH_EVENTS = table(AuthEvent)
STATE = table(ServerState)
EPOCH = "credential_epoch"

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


def make_hasher(profile: str = "strong") -> PasswordHasher:
    """``strong``: argon2id with RFC 9106's second recommended profile (t=3, 64 MiB, 4 lanes), the
    library default. ``cheap``: the smallest argon2id parameters, for test suites only."""
    if profile == "strong":
        return PasswordHasher()
    if profile == "cheap":
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    raise ValueError(f"unknown password hashing profile {profile!r} (strong or cheap)")


class LoginRefused(QueueError):
    """A login refused before its password was checked: ``throttled`` (429, a lock on the account or
    the address) or ``busy`` (503, too many password checks at once). ``retry_after`` in seconds."""

    def __init__(self, code: str, message: str, retry_after: int) -> None:
        super().__init__(code, message, retry_after=retry_after)
        self.status = 429 if code == "throttled" else 503
        self.retry_after = retry_after


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class SessionInfo:
    actor: Actor
    csrf_token: str


@retrying
class Accounts:
    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = CREDENTIAL_CACHE_SECONDS,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or Settings.from_env()
        self.cache_seconds = cache_seconds
        self.hasher = make_hasher(self.settings.password_hashing)
        self._dummy_hash: str | None = None
        self._cache: dict[str, tuple[float, Actor | SessionInfo | None]] = {}
        self._cache_lock = threading.Lock()
        # Bumped by every eviction: a lookup that started before it must not cache what it read
        # (it may have read a token just before its revocation committed).
        self._generation = 0
        # The credential epoch last read from the database, and when (monotonic).
        self._epoch: int | None = None
        self._epoch_read_at = float("-inf")
        # Password checks: at most ``login_concurrency`` at once (threads at nice 19), a few more wait.
        self._refusals: dict[str, int] = {}
        self._refusals_flushed = float("-inf")
        self._busy = 0
        self._busy_logged = float("-inf")
        self._refusals_lock = threading.Lock()
        self._hashers = CheckPool(
            max(1, self.settings.login_concurrency),
            max_waiting=self.settings.login_max_waiting,
            nice=19,
            name="password",
        )

    def cached(self, kind: str, secret: str) -> tuple[bool, Actor | SessionInfo | None]:
        """(hit, value) for a token or session id verified in the last few seconds. A miss when the
        credential epoch was not read within ``credential_poll_s`` (``epoch_stale``)."""
        if self.epoch_stale():
            return False, None
        key = kind + sha256(secret)
        entry = self._cache.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    # -- the credential epoch ---------------------------------------------------------------------

    def epoch_stale(self) -> bool:
        return time.monotonic() - self._epoch_read_at > self.settings.credential_poll_s

    def _saw_epoch(self, number: int | None, read_at: float) -> None:
        """Record an epoch read that started at ``read_at``; a changed epoch empties the cache."""
        number = number or 0
        with self._cache_lock:
            if self._epoch is not None and number != self._epoch:
                self._generation += 1
                self._cache.clear()
            self._epoch = number
            self._epoch_read_at = max(self._epoch_read_at, read_at)

    def refresh_epoch(self) -> None:
        """Read the credential epoch (one indexed row) and drop the cache if it moved."""
        started = time.monotonic()
        with self.db.read() as conn:
            number = conn.execute(select(STATE.c.number).where(STATE.c.name == EPOCH)).scalar()
        self._saw_epoch(number, started)

    async def refresh_epoch_async(self) -> None:
        """``refresh_epoch`` for the event loop: on PostgreSQL awaited in a worker thread
        (``Database.run``); on SQLite the read (a WAL snapshot, never waiting for writers) runs here."""
        if self.db.is_sqlite:
            self.refresh_epoch()
        else:
            await self.db.run(self.refresh_epoch)

    @staticmethod
    def bump_epoch(conn: Connection) -> None:
        """Move the credential epoch in ``conn``'s transaction: every process drops its cache."""
        now = utcnow()
        moved = conn.execute(
            update(STATE).where(STATE.c.name == EPOCH).values(number=STATE.c.number + 1, updated_at=now)
        )
        if moved.rowcount == 0:
            try:
                with conn.begin_nested():
                    conn.execute(insert(STATE).values(name=EPOCH, value="", number=1, updated_at=now))
            except IntegrityError:
                conn.execute(
                    update(STATE)
                    .where(STATE.c.name == EPOCH)
                    .values(number=STATE.c.number + 1, updated_at=now)
                )

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

    def create_user(
        self, username: str, role: str, password: str | None = None, display_name: str = ""
    ) -> Actor:
        username = username.strip()
        if role not in ROLES:
            raise Invalid("invalid_role", f"role must be one of {', '.join(ROLES)}")
        if not username or len(username) > 100:
            raise Invalid("invalid_username", "a username needs 1 to 100 characters")
        if password is not None and len(password) < 8:
            raise Invalid("weak_password", "a password needs at least 8 characters")
        try:
            with self.db.write() as conn:
                user_id = conn.execute(
                    insert(USERS)
                    .values(
                        username=username,
                        display_name=display_name or username,
                        role=role,
                        password_hash=self._hash_password(password) if password else None,
                        active=True,
                        created_at=utcnow(),
                    )
                    .returning(USERS.c.id)
                ).scalar_one()
        except IntegrityError:
            raise Conflict("user_exists", f"user {username} already exists") from None
        return Actor(id=int(user_id), username=username, role=role)

    def get_user(self, username: str) -> Actor:
        with self.db.read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.username == username)).first()
        if row is None:
            raise NotFound("user_not_found", f"no user {username}")
        return Actor(id=row.id, username=row.username, role=row.role)

    def is_active(self, user_id: int) -> bool:
        with self.db.read() as conn:
            return bool(conn.execute(select(USERS.c.active).where(USERS.c.id == user_id)).scalar())

    def get_user_by_id(self, user_id: int) -> Actor:
        with self.db.read() as conn:
            row = conn.execute(select(USERS).where(USERS.c.id == user_id)).first()
        if row is None:
            raise NotFound("user_not_found", f"no user {user_id}")
        return Actor(id=row.id, username=row.username, role=row.role)

    def list_users(self) -> list[dict[str, object]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(USERS.c.id, USERS.c.username, USERS.c.role, USERS.c.active).order_by(USERS.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def set_active(self, username: str, active: bool) -> dict[str, object]:
        """Disable (or enable again) a user: a disabled user's tokens and sessions stop working (in
        this process at once, elsewhere within the cache time) and their sessions are deleted."""
        with self.db.write() as conn:
            row = conn.execute(
                update(USERS)
                .where(USERS.c.username == username)
                .values(active=active)
                .returning(USERS.c.id, USERS.c.username, USERS.c.role, USERS.c.active)
            ).first()
            if row is None:
                raise NotFound("user_not_found", f"no user {username}")
            if not active:
                conn.execute(delete(SESSIONS).where(SESSIONS.c.user_id == row.id))
            self.bump_epoch(conn)
        self.forget_all()
        return dict(row._mapping)

    # -- API tokens -------------------------------------------------------------------------------

    def create_token(self, user_id: int, name: str = "") -> str:
        """A new API token; returned once, only its hash (and its first characters) are kept."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.db.write() as conn:
            conn.execute(
                insert(TOKENS).values(
                    user_id=user_id,
                    name=name,
                    token_hash=sha256(token),
                    prefix=token[:SHOWN_PREFIX],
                    created_at=utcnow(),
                )
            )
        return token

    def list_tokens(
        self, username: str | None = None, *, include_revoked: bool = True, token_id: int | None = None
    ) -> list[dict[str, Any]]:
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
                select(
                    TOKENS.c.id,
                    USERS.c.username,
                    TOKENS.c.name,
                    TOKENS.c.prefix,
                    TOKENS.c.created_at,
                    TOKENS.c.last_used_at,
                    TOKENS.c.revoked_at,
                )
                .join(USERS, USERS.c.id == TOKENS.c.user_id)
                .where(*cond)
                .order_by(TOKENS.c.id)
            ).all()
        return [_token_json(dict(r._mapping)) for r in rows]

    def revoke_token(self, token_id: int, username: str | None = None) -> dict[str, Any]:
        """Revoke a token by id (``username``: it must be that user's). Idempotent: revoking a revoked
        token returns it unchanged. The token stops working in this process at once."""
        now = utcnow()
        owner = (
            []
            if username is None
            else [
                TOKENS.c.user_id == select(USERS.c.id).where(USERS.c.username == username).scalar_subquery()
            ]
        )
        with self.db.write() as conn:
            row = conn.execute(
                update(TOKENS)
                .where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None), *owner)
                .values(revoked_at=now)
                .returning(TOKENS.c.token_hash)
            ).first()
            if (
                row is None
                and conn.execute(select(TOKENS.c.id).where(TOKENS.c.id == token_id, *owner)).first() is None
            ):
                whose = f" of user {username}" if username is not None else ""
                raise NotFound("token_not_found", f"no token {token_id}{whose}")
            if row is not None:
                self.bump_epoch(conn)
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
                select(
                    USERS.c.id,
                    USERS.c.username,
                    USERS.c.role,
                    TOKENS.c.id.label("token_id"),
                    TOKENS.c.last_used_at,
                )
                .join(TOKENS, TOKENS.c.user_id == USERS.c.id)
                .where(
                    TOKENS.c.token_hash == sha256(token),
                    TOKENS.c.revoked_at.is_(None),
                    USERS.c.active.is_(True),
                )
            ).first()
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

    # -- passwords and login throttling -------------------------------------------------------------

    def _hash_password(self, password: str) -> str:
        return self._hashing(self.hasher.hash, password)  # type: ignore[no-any-return]

    def _hashing(self, fn: Any, *args: Any) -> Any:
        """Run a password hash or check on the password threads (``login_concurrency`` of them, at
        the lowest CPU priority, so a burst of logins leaves the cores to everyone else). Refused
        with ``LoginRefused("busy")`` at once when ``login_max_waiting`` already wait, or when the
        check has not started within ``login_wait_s``."""
        settings = self.settings
        try:
            future = self._hashers.submit(fn, *args)
        except Saturated:
            raise LoginRefused(
                "busy", "too many sign-ins at once; retry shortly", settings.retry_after_s
            ) from None
        try:
            return future.result(timeout=settings.login_wait_s)
        except FutureTimeout:
            if future.cancel():
                raise LoginRefused(
                    "busy", "too many sign-ins at once; retry shortly", settings.retry_after_s
                ) from None
            return future.result()  # it started meanwhile: one check takes well under a second

    @property
    def dummy_hash(self) -> str:
        """Verified against when the user does not exist, so a wrong name costs as much as a wrong
        password (made with this process's hasher, on first use)."""
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash("not-a-real-password")
        return self._dummy_hash

    def authenticate(self, username: str, password: str, address: str | None = None) -> Actor | None:
        """The user for a correct password, else None. Raises ``LoginRefused`` without checking the
        password while the account or the address is locked (``throttled``) or when too many
        password checks run at once (``busy``). Every outcome is in ``auth_events``."""
        keys = [f"user:{username}"] + ([f"addr:{address}"] if address else [])
        now = utcnow()
        self._refuse_if_locked(keys, now)
        with self.db.read() as conn:
            row = conn.execute(
                select(USERS).where(USERS.c.username == username, USERS.c.active.is_(True))
            ).first()
        stored = row.password_hash if row is not None and row.password_hash else self.dummy_hash
        try:
            self._hashing(self.hasher.verify, stored, password)
            ok = row is not None and bool(row.password_hash)
        except LoginRefused:
            self._audit_busy(username, address)
            raise
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            self._record_failure(username, address, keys)
            return None
        with self.db.write() as conn:
            conn.execute(delete(THROTTLE).where(THROTTLE.c.key == keys[0]))
            self._audit_in(conn, "login_ok", username, address, {})
        return Actor(id=row.id, username=row.username, role=row.role)

    def _refuse_if_locked(self, keys: list[str], now: datetime) -> None:
        with self.db.read() as conn:
            locks = conn.execute(
                select(THROTTLE.c.key, THROTTLE.c.locked_until).where(
                    THROTTLE.c.key.in_(keys), THROTTLE.c.locked_until > now
                )
            ).all()
        if not locks:
            return
        until = _aware(max(lock[1] for lock in locks))
        self._count_refusals([k for k, _ in locks])
        wait = max(1, int((until - now).total_seconds() + 0.999))
        raise LoginRefused("throttled", f"too many failed sign-ins; retry in {wait} s", wait)

    def _record_failure(self, username: str, address: str | None, keys: list[str]) -> None:
        """Count the failure for the account and the address; start or double a lock past the
        threshold. Failures older than the window (since the last one) are forgotten."""
        settings = self.settings
        now = utcnow()
        window = timedelta(seconds=settings.login_window_s)
        with self.db.write() as conn:
            self._audit_in(conn, "login_failed", username, address, {})
            for key in keys:
                limit = (
                    settings.login_account_failures
                    if key.startswith("user:")
                    else settings.login_address_failures
                )
                conn.execute(
                    _insert_ignore(
                        self.db,
                        THROTTLE,
                        {
                            "key": key,
                            "failures": 0,
                            "window_start": now,
                            "locked_until": None,
                            "refused": 0,
                            "updated_at": now,
                        },
                    )
                )
                row = conn.execute(select(THROTTLE).where(THROTTLE.c.key == key).with_for_update()).one()
                fresh = now - _aware(row.updated_at) > window
                failures = 1 if fresh else row.failures + 1
                locked_until = None
                if failures >= limit:
                    seconds = min(settings.login_lock_s * 2 ** (failures - limit), settings.login_max_lock_s)
                    locked_until = now + timedelta(seconds=seconds)
                    self._audit_in(
                        conn,
                        "login_locked",
                        username,
                        address,
                        {
                            "key": key.split(":", 1)[0],
                            "failures": failures,
                            "seconds": seconds,
                            "until": iso(locked_until),
                        },
                    )
                conn.execute(
                    update(THROTTLE)
                    .where(THROTTLE.c.key == key)
                    .values(
                        failures=failures,
                        window_start=now if fresh else row.window_start,
                        locked_until=locked_until,
                        updated_at=now,
                    )
                )

    def _count_refusals(self, keys: list[str]) -> None:
        """Count attempts refused during a lock, written at most once a second per process: a flood
        of locked attempts must not become a flood of database writes."""
        with self._refusals_lock:
            for key in keys:
                self._refusals[key] = self._refusals.get(key, 0) + 1
            if time.monotonic() - self._refusals_flushed < 1.0:
                return
            pending, self._refusals = self._refusals, {}
            self._refusals_flushed = time.monotonic()
        try:
            with self.db.write() as conn:
                for key, n in pending.items():
                    conn.execute(
                        update(THROTTLE).where(THROTTLE.c.key == key).values(refused=THROTTLE.c.refused + n)
                    )
        except OperationalError:  # bookkeeping only
            log.warning("could not count refused logins", exc_info=True)

    def _audit_busy(self, username: str, address: str | None) -> None:
        """``login_busy`` events, at most one a second per process (with how many were refused)."""
        with self._refusals_lock:
            self._busy += 1
            if time.monotonic() - self._busy_logged < 1.0:
                return
            refused, self._busy = self._busy, 0
            self._busy_logged = time.monotonic()
        self._audit("login_busy", username, address, {"refused": refused})

    def _audit(self, type_: str, username: str | None, address: str | None, data: dict[str, Any]) -> None:
        try:
            with self.db.write() as conn:
                self._audit_in(conn, type_, username, address, data)
        except OperationalError:
            log.warning("could not write auth event %s", type_, exc_info=True)

    @staticmethod
    def _audit_in(
        conn: Connection, type_: str, username: str | None, address: str | None, data: dict[str, Any]
    ) -> None:
        conn.execute(
            insert(AUTH_EVENTS).values(
                type=type_,
                username=(username or None) and username[:100],
                address=(address or None) and address[:64],
                data=data,
                created_at=utcnow(),
            )
        )

    def auth_events(self, *, after: int = 0, limit: int = 200) -> dict[str, Any]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(AUTH_EVENTS).where(AUTH_EVENTS.c.id > after).order_by(AUTH_EVENTS.c.id).limit(limit)
            ).all()
        events = [
            {
                "id": r.id,
                "type": r.type,
                "username": r.username,
                "address": r.address,
                "data": r.data,
                "created_at": iso(r.created_at),
            }
            for r in rows
        ]
        return {"events": events, "next_after": events[-1]["id"] if len(events) == limit else None}

    def create_session(self, actor: Actor) -> tuple[str, str]:
        """A console session: (cookie value, CSRF token)."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        with self.db.write() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.expires_at < now))
            conn.execute(
                insert(SESSIONS).values(
                    id_hash=sha256(sid),
                    user_id=actor.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=SESSION_HOURS),
                )
            )
        return sid, csrf

    def session(self, sid: str) -> SessionInfo | None:
        with self._cache_lock:
            generation = self._generation
        with self.db.read() as conn:
            row = conn.execute(
                select(USERS.c.id, USERS.c.username, USERS.c.role, SESSIONS.c.csrf_token)
                .join(SESSIONS, SESSIONS.c.user_id == USERS.c.id)
                .where(
                    SESSIONS.c.id_hash == sha256(sid),
                    SESSIONS.c.expires_at > utcnow(),
                    USERS.c.active.is_(True),
                )
            ).first()
        info = (
            None
            if row is None
            else SessionInfo(Actor(id=row.id, username=row.username, role=row.role), row.csrf_token)
        )
        if info is not None:
            self._remember("session:", sid, info, generation)
        return info

    def end_session(self, sid: str) -> None:
        self._forget("session:" + sha256(sid))
        with self.db.write() as conn:
            conn.execute(delete(SESSIONS).where(SESSIONS.c.id_hash == sha256(sid)))
            self.bump_epoch(conn)

    # -- saved views ------------------------------------------------------------------------------

    def views(self, user_id: int) -> list[dict[str, object]]:
        with self.db.read() as conn:
            rows = conn.execute(
                select(VIEWS.c.id, VIEWS.c.name, VIEWS.c.query)
                .where(VIEWS.c.user_id == user_id)
                .order_by(VIEWS.c.name)
            ).all()
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


def _aware(value: datetime) -> datetime:
    """SQLite gives naive datetimes back (stored as UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _insert_ignore(db: Database, table: Any, values: dict[str, Any]) -> Any:
    if db.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
    return dialect_insert(table).values(**values).on_conflict_do_nothing()


def _token_json(row: dict[str, Any]) -> dict[str, Any]:
    prefix = row["prefix"]
    return {
        "id": row["id"],
        "username": row["username"],
        "name": row["name"],
        "prefix": f"{prefix}…" if prefix else None,
        "created_at": iso(row["created_at"]),
        "last_used_at": iso(row["last_used_at"]),
        "revoked_at": iso(row["revoked_at"]),
    }


def same_secret(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
