"""Engines and transactions for SQLite (default) and PostgreSQL (``DATABASE_URL``).

SQLite needs care to be correct under concurrency: pysqlite's own transaction handling is switched
off and every write transaction starts with ``BEGIN IMMEDIATE`` (a deferred transaction that reads and
then writes fails with "database is locked" instead of waiting), in WAL mode so readers never block.
PostgreSQL runs at READ COMMITTED and relies on conditional UPDATEs, row locks and SKIP LOCKED.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio.to_thread
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError

from moderation.settings import settings

if TYPE_CHECKING:
    from moderation.queue.onloop import OnLoop

DEFAULT_SQLITE_PATH = Path("var") / "moderation.db"
LOOP_LOCK_WAIT = 0.02  #: seconds ``Database.run`` may wait on the loop for SQLite's write lock
log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


def retryable(exc: BaseException) -> bool:
    """A lost connection (SQLAlchemy saw it closed or broken) whose transaction certainly did not
    commit: it failed before COMMIT was sent (``Database.write`` marks a failed COMMIT, whose outcome
    is unknown), so running the operation again cannot apply it twice."""
    return (
        isinstance(exc, DBAPIError)
        and exc.connection_invalidated
        and not getattr(exc, "during_commit", False)
    )


def retry_on_disconnect(fn: F) -> F:
    """Run ``fn`` once more when its database connection was lost before anything committed. A
    killed or restarted PostgreSQL backend fails the connections in use; SQLAlchemy then drops every
    older pooled connection, so the second try gets a fresh one."""

    def second_try(exc: DBAPIError) -> None:
        if not retryable(exc):
            raise exc
        log.warning("database connection lost in %s; retrying once", fn.__qualname__)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def awaited(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except DBAPIError as exc:
                second_try(exc)
                return await fn(*args, **kwargs)

        return awaited  # type: ignore[return-value]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DBAPIError as exc:
            second_try(exc)
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def retrying(cls: type) -> type:
    """Class decorator: ``retry_on_disconnect`` on every public method (``NO_RETRY`` names excepted)."""
    skip: frozenset[str] = getattr(cls, "NO_RETRY", frozenset())
    for name, value in list(vars(cls).items()):
        if (
            name.startswith("_")
            or name in skip
            or not inspect.isfunction(value)
            or inspect.iscoroutinefunction(value)  # awaited ones retry where they choose to
        ):
            continue
        setattr(cls, name, retry_on_disconnect(value))
    return cls


def utcnow() -> datetime:
    """Aware UTC (SQLModel's datetime columns refuse naive values); stored as UTC on both backends."""
    return datetime.now(UTC)


def resolve_url(database_url: str | None = None) -> str:
    """The explicit URL, else ``DATABASE_URL``, else a SQLite file under ./var."""
    url = database_url or settings().database_url
    if url:
        scheme, _, rest = url.partition("://")
        return f"postgresql+psycopg://{rest}" if scheme in ("postgres", "postgresql") else url
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_SQLITE_PATH}"


def _sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def pg_hooks(engine: Engine, ping_after_idle: float) -> None:
    """Pessimistic disconnect handling without a round trip per checkout: ping only connections
    that sat idle in the pool for ``ping_after_idle`` seconds (where a server restart or an idle
    timeout could have closed them). A connection that breaks mid-use is still detected by
    SQLAlchemy, which then recycles the pool, and the operation is retried (``retry_on_disconnect``)."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < ping_after_idle:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("stale pooled connection") from exc
        if not alive:
            raise DisconnectionError("stale pooled connection")


def make_engine(
    database_url: str | None = None, *, pool_size: int = 20, ping_after_idle: float = 5.0
) -> Engine:
    """An engine with the per-backend settings above."""
    url = make_url(resolve_url(database_url))
    pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": pool_size, "pool_timeout": 60}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **pool, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_hooks(engine)
        return engine
    engine = create_engine(url, **pool)
    pg_hooks(engine, ping_after_idle)
    return engine


def _transaction(conn: Connection) -> Iterator[Connection]:
    trans = conn.begin()
    try:
        yield conn
    except BaseException:
        if trans.is_active:
            with contextlib.suppress(DBAPIError):  # the connection is gone; the server rolled back anyway
                trans.rollback()
        raise
    try:
        trans.commit()
    except DBAPIError as exc:
        raise mark_commit_failed(exc) from None


def mark_commit_failed(exc: DBAPIError) -> DBAPIError:
    """A COMMIT whose outcome is unknown: ``retryable`` refuses to run the operation again."""
    exc.during_commit = True  # type: ignore[attr-defined]
    return exc


class Statements:
    """The statements of one connection as the queue's awaited operations send them (``workflow``):
    ``rows`` gives the rows as dicts, ``row`` the first (``None`` when there is none or the statement
    returns no rows), ``many`` runs a statement once per parameter dict. Two kinds: ``onloop.AsyncStatements``
    on the event loop (PostgreSQL) and ``SyncStatements``, which runs each statement at once, so an
    operation awaiting only it never suspends and ``run_now`` completes it without an event loop."""

    pg: bool

    async def rows(self, statement: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def row(self, statement: Any, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
        rows = await self.rows(statement, params)
        return rows[0] if rows else None

    async def many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        raise NotImplementedError


def dicts(conn: Connection, statement: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run ``statement``; its rows as dicts (none when it returns no rows)."""
    result = conn.execute(statement, params or {})
    return [dict(r._mapping) for r in result] if result.returns_rows else []


class SyncStatements(Statements):
    def __init__(self, conn: Connection) -> None:
        self.conn, self.pg = conn, conn.dialect.name == "postgresql"

    async def rows(self, statement: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return dicts(self.conn, statement, params)

    async def many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        self.conn.execute(statement, rows)


def run_now(operation: Coroutine[Any, Any, R]) -> R:
    """Complete an operation whose statements are ``SyncStatements`` (it never suspends)."""
    try:
        operation.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    operation.close()
    raise RuntimeError("a synchronous queue operation awaited something that suspends")


class Executor(Protocol):
    """Where an operation's transactions come from: ``Immediate`` or ``OnLoop``."""

    def statement(self) -> contextlib.AbstractAsyncContextManager[Statements]: ...
    def write(self) -> contextlib.AbstractAsyncContextManager[Statements]: ...
    def read(self) -> contextlib.AbstractAsyncContextManager[Statements]: ...


class Immediate:
    """``Database``'s transactions as the async contexts an operation opens (``OnLoop`` has the same
    three), yielding ``SyncStatements``: the operation runs through ``run_now``, in this thread."""

    def __init__(self, db: Database) -> None:
        self.statement, self.write, self.read = (
            _yield_sync(c) for c in (db.single_statement, db.write, db.read)
        )


def _yield_sync(
    transaction: Callable[[], contextlib.AbstractContextManager[Connection]],
) -> Callable[[], contextlib.AbstractAsyncContextManager[Statements]]:
    @asynccontextmanager
    async def context() -> AsyncIterator[Statements]:
        with transaction() as conn:
            yield SyncStatements(conn)

    return context


class Database:
    """An engine plus the two kinds of transaction the queue uses, and ``run``, which awaits any queue
    operation from an event loop (the same code and statements as a direct call)."""

    def __init__(self, database_url: str | None = None, *, pool_size: int = 20) -> None:
        self.url = resolve_url(database_url)
        #: A pooled PostgreSQL connection idle this long is pinged before use (busy ones are not: a
        #: round trip per transaction; one that died is retried instead).
        self.ping_after_idle = settings().db_ping_after_idle_s
        self.engine = make_engine(self.url, pool_size=pool_size, ping_after_idle=self.ping_after_idle)
        self.dialect = self.engine.dialect.name
        self.now = Immediate(self)
        #: Awaited operations' transactions on the event loop (PostgreSQL; SQLite awaits ``run``).
        self.on_loop: OnLoop | None = None
        if self.dialect != "sqlite":
            from moderation.queue.onloop import OnLoop

            self.on_loop = OnLoop(self, pool_size)
        # SQLite has one writer at a time. Threads of this process queue on a lock instead of
        # polling the file lock (SQLite's busy handler sleeps between tries, which made the claim
        # latency tail); BEGIN IMMEDIATE + busy_timeout still guard other processes.
        self._write_lock = threading.RLock() if self.dialect == "sqlite" else None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    async def run(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Await the queue operation ``fn(*args, **kwargs)`` from an event loop: the same code, statements,
        retries and errors as a direct call. PostgreSQL: in a worker thread (cheaper than SQLAlchemy's
        async engine, which runs the same code in a greenlet: docs/queue.md). SQLite: right here if
        this process's write lock comes free within ``LOOP_LOCK_WAIT`` (writes of a process are
        serialized by it anyway, and a hand-off to a thread and back cost more CPU than the write),
        else in a thread."""
        lock = self._write_lock
        if lock is not None and lock.acquire(timeout=LOOP_LOCK_WAIT):
            try:
                return fn(*args, **kwargs)
            finally:
                lock.release()
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (BEGIN IMMEDIATE on SQLite); commits on success. A lost connection
        during COMMIT is marked ``during_commit`` (it may have committed: never retried)."""
        with self._write_lock or contextlib.nullcontext(), self.engine.connect() as conn:
            yield from _transaction(conn)

    @contextmanager
    def single_statement(self) -> Iterator[Connection]:
        """For one conditional statement that is a whole transaction by itself: PostgreSQL autocommits
        it (no BEGIN/COMMIT round trips); on SQLite it is an ordinary write transaction. Run again
        after a lost connection whose statement did commit, it fails its condition (no double apply)."""
        if self.is_sqlite:
            with self.write() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction; on SQLite a deferred one so it never waits for writers."""
        with self.engine.connect() as conn:
            if self.is_sqlite:
                conn = conn.execution_options(sqlite_begin="DEFERRED")
            with conn.begin():
                yield conn

    def insert(self, table: Table) -> Any:
        """An INSERT of this backend's dialect (for ``on_conflict_do_nothing``)."""
        return (sqlite if self.is_sqlite else postgresql).insert(table)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        from moderation.queue.migrate import upgrade

        upgrade(self.engine)

    def dispose(self) -> None:
        if self.on_loop is not None:
            self.on_loop.close()
        self.engine.dispose()


def temporary_schema(pg_url: str, prefix: str, options: str = "") -> tuple[str, Callable[[], None]]:
    """Create an empty PostgreSQL schema and return a URL that uses it plus a function that drops it.

    Tests and benchmarks each get their own schema, so runs on one database never collide. ``options``
    are extra ``-c`` settings, already URL-encoded (e.g. ``%20-csynchronous_commit%3Doff``).
    """
    import uuid

    from sqlalchemy import text

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{pg_url}?options=-csearch_path%3D{schema}{options}", drop
