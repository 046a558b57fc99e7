"""The statements of awaited queue operations on PostgreSQL, sent from the event loop: the workflow's
own prebuilt statements compiled once for psycopg and executed on async connections of a small pool,
without SQLAlchemy's execution layer or a worker thread (why: docs/queue.md). It only executes; what
an operation does is written once, in ``workflow.py``, and runs here or over a SQLAlchemy connection
(``db.Immediate``). psycopg errors are raised as SQLAlchemy's (``DBAPIError.instance``), so retries,
integrity conflicts and 503s are handled as for every other operation.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.exc import DBAPIError

from moderation.queue.db import Database, Statements, mark_commit_failed


@functools.lru_cache(maxsize=512)
def _compiled(statement: Any) -> tuple[str, dict[str, Any], frozenset[str]]:
    """A statement as psycopg's SQL text, its constant parameters and its JSON parameters."""
    compiled = statement.compile(dialect=psycopg_dialect())  # type: ignore[no-untyped-call]
    json_names = frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON))
    return str(compiled), dict(compiled.params), json_names


class AsyncStatements(Statements):
    """Statements on one async psycopg connection (rows as dicts)."""

    pg = True

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _values(self, statement: Any, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        sql, constants, json_names = _compiled(statement)
        dumped = {k: json.dumps(v, ensure_ascii=False) if k in json_names else v for k, v in params.items()}
        return sql, {**constants, **dumped}

    async def rows(self, statement: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        sql, values = self._values(statement, params or {})
        try:
            cursor = await self.conn.execute(sql, values)
            return await cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise self._error(sql, values, exc) from exc

    async def many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        sql, _ = self._values(statement, {})
        try:
            async with self.conn.cursor() as cursor:
                await cursor.executemany(sql, [self._values(statement, r)[1] for r in rows])
        except psycopg.Error as exc:
            raise self._error(sql, rows, exc) from exc

    def _error(self, sql: str, params: Any, exc: psycopg.Error) -> DBAPIError:
        broken = bool(self.conn.closed or self.conn.broken)
        error = DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=broken)
        return cast(DBAPIError, error)


class FastPath:
    """At most ``size`` autocommit connections where the engine connects; afresh on another event
    loop (a test client's); pinged after ``Database.ping_after_idle`` seconds idle; closed if not
    idle. ``statement``, ``write`` and ``read`` are the contexts of ``db.Immediate``, awaited."""

    def __init__(self, db: Database, size: int) -> None:
        _args, params = db.engine.dialect.create_connect_args(db.engine.url)
        self.connect_params = {k: v for k, v in params.items() if k != "context"}
        # Times in UTC, as SQLAlchemy's UTCDateTime columns return them on the other path.
        self.connect_params["options"] = f"{params.get('options', '')} -c TimeZone=UTC".strip()
        self.size, self.ping_after = size, db.ping_after_idle
        self._idle: list[tuple[Any, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._free: asyncio.Semaphore | None = None

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[Statements]:
        """For one statement that is a whole transaction: autocommitted."""
        async with self.connection() as conn:
            yield AsyncStatements(conn)

    read = statement

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Statements]:
        """One transaction; a failed COMMIT is marked (it may have committed: never retried)."""
        async with self.connection() as conn:
            try:
                async with conn.transaction():
                    yield AsyncStatements(conn)
            except psycopg.Error as exc:  # statements raise DBAPIError: this is BEGIN or COMMIT
                raise mark_commit_failed(AsyncStatements(conn)._error("COMMIT", None, exc)) from exc

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._free is None:
            self.close()
            self._loop, self._free = loop, asyncio.Semaphore(self.size)
        free = self._free
        async with free:
            conn = None
            while self._idle and conn is None:
                conn, since = self._idle.pop()
                if time.monotonic() - since >= self.ping_after:
                    try:
                        await conn.execute("SELECT 1")
                    except psycopg.Error:
                        conn.pgconn.finish()
                        conn = None
            if conn is None:
                try:
                    conn = await psycopg.AsyncConnection.connect(
                        **self.connect_params, autocommit=True, row_factory=dict_row
                    )
                except psycopg.Error as exc:
                    raise DBAPIError.instance("connect", None, exc, psycopg.Error) from exc
            try:
                yield conn
            except DBAPIError as exc:
                if exc.connection_invalidated:  # the server probably dropped the others too
                    self.close(keep_loop=True)
                raise
            finally:
                if (
                    free is self._free
                    and not conn.closed
                    and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                ):
                    self._idle.append((conn, time.monotonic()))
                else:
                    conn.pgconn.finish()

    def close(self, *, keep_loop: bool = False) -> None:
        """Close the idle connections without awaiting (``AsyncConnection.close`` does nothing more)."""
        while self._idle:
            self._idle.pop()[0].pgconn.finish()
        if not keep_loop:
            self._loop = self._free = None
