"""The transactions of awaited queue operations on PostgreSQL, from the event loop: connections of
SQLAlchemy's async engine, on which the workflow's prebuilt statements, compiled once for psycopg, are
sent by the driver. It only executes; what an operation does is written once, in ``workflow.py``, and
runs here or over a SQLAlchemy connection (``db.Immediate``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from moderation.queue.db import Database, Statements, mark_commit_failed, pg_hooks


@functools.lru_cache(maxsize=512)
def _compiled(statement: Any) -> tuple[str, dict[str, Any], frozenset[str]]:
    """A statement as psycopg's SQL text, its constant parameters and its JSON parameters."""
    compiled = statement.compile(dialect=psycopg_dialect())  # type: ignore[no-untyped-call]
    json_names = frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON))
    return str(compiled), dict(compiled.params), json_names


class AsyncStatements(Statements):
    """Statements on the psycopg connection of one of ``OnLoop``'s pooled connections (rows as dicts),
    compiled once per statement (``_compiled``). psycopg errors are raised as SQLAlchemy's
    (``DBAPIError.instance``), so retries, conflicts and 503s are handled as for every operation."""

    pg = True

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn

    async def rows(self, statement: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        sql, constants, json_names = _compiled(statement)
        values = {
            k: json.dumps(v, ensure_ascii=False) if k in json_names else v for k, v in (params or {}).items()
        }
        try:
            cursor = await self.conn.cursor(row_factory=dict_row).execute(sql, {**constants, **values})
            return await cursor.fetchall() if cursor.description else []
        except psycopg.Error as exc:
            raise self.error(sql, values, exc) from exc

    async def many(self, statement: Any, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            await self.rows(statement, row)

    def error(self, sql: str, params: Any, exc: psycopg.Error) -> DBAPIError:
        broken = bool(self.conn.closed or self.conn.broken)
        error = DBAPIError.instance(sql, params, exc, psycopg.Error, connection_invalidated=broken)
        return cast(DBAPIError, error)


class OnLoop:
    """The transactions of awaited operations on PostgreSQL, from the event loop: raw connections of
    SQLAlchemy's async engine (autocommit, ``TimeZone=UTC`` as SQLAlchemy's UTC columns return times,
    at most ``size``, pinged after ``Database.ping_after_idle`` idle), the statements sent by their
    psycopg connection. Neither SQLAlchemy's per-statement execution layer nor its ``AsyncConnection``
    and reset-on-return: together they cost more CPU than the rest of a decision (docs/queue.md); a
    connection not cleanly idle when given back is closed instead. ``statement``, ``write`` and
    ``read`` are the contexts of ``Immediate``, awaited. The pool starts afresh on another event loop (a
    test client's) and after a lost connection (the server probably dropped the others too)."""

    def __init__(self, db: Database, size: int) -> None:
        _args, params = db.engine.dialect.create_connect_args(db.engine.url)
        options = f"{params.get('options', '')} -c TimeZone=UTC".strip()
        self.engine = create_async_engine(
            db.engine.url,
            pool_size=size,
            max_overflow=0,
            pool_timeout=60,
            pool_reset_on_return=None,
            isolation_level="AUTOCOMMIT",
            connect_args={"options": options},
        )
        pg_hooks(self.engine.sync_engine, db.ping_after_idle)
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncStatements]:
        """For one statement that is a whole transaction: autocommitted."""
        if self._loop is not asyncio.get_running_loop():
            await self.engine.dispose()
            self._loop = asyncio.get_running_loop()
        pooled = await self.engine.raw_connection()
        conn: psycopg.AsyncConnection[Any] = pooled.driver_connection  # type: ignore[assignment]
        try:
            yield AsyncStatements(conn)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                await self.engine.dispose()
            raise
        finally:
            await greenlet_spawn(_give_back, pooled, conn.info.transaction_status != TransactionStatus.IDLE)

    read = statement

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Statements]:
        """One transaction; a failed COMMIT is marked (it may have committed: never retried)."""
        async with self.statement() as tx:
            try:
                async with tx.conn.transaction():
                    yield tx
            except psycopg.Error as exc:  # statements raise DBAPIError: this is BEGIN or COMMIT
                raise mark_commit_failed(tx.error("COMMIT", None, exc)) from exc

    def close(self) -> None:
        """Close the pooled connections (from outside an event loop: tests, the CLI)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.engine.dispose())
        self._loop = None


def _give_back(pooled: PoolProxiedConnection, unclean: bool) -> None:
    if unclean:  # broken, or cancelled inside a statement or transaction
        pooled.invalidate()
    pooled.close()
