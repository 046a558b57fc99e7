"""Claim-next and decisions awaited on the event loop on PostgreSQL: the workflow's own statements
(``Workflow.claim_next_call``, ``workflow._decision_rows``), compiled once for psycopg and sent on an
async connection of a small pool, without SQLAlchemy's execution layer or a worker thread (measured
cheaper: docs/queue.md). Only the common case: when the statement matches nothing, the key is taken, a
decision carries finding marks or the connection fails, nothing was written and ``Declined`` sends the
caller (``ReviewQueue.claim_next``/``decide``) to the ordinary operation, which owns every answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import JSON
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from moderation.queue import Declined, workflow
from moderation.queue.core import request_hash, with_event
from moderation.queue.db import PING_AFTER_IDLE_SECONDS, Database, utcnow
from moderation.queue.roles import Actor


@functools.cache
def _compiled(statement: Any) -> tuple[str, dict[str, Any], frozenset[str]]:
    """A statement as psycopg's SQL text, its constant parameters and its JSON parameters."""
    compiled = statement.compile(dialect=psycopg_dialect())  # type: ignore[no-untyped-call]
    json_names = frozenset(name for name, bind in compiled.binds.items() if isinstance(bind.type, JSON))
    return str(compiled), dict(compiled.params), json_names


async def _fetch(conn: Any, statement: Any, params: dict[str, Any]) -> dict[str, Any] | None:
    sql, constants, json_names = _compiled(statement)
    values = {
        **constants,
        **{k: json.dumps(v, ensure_ascii=False) if k in json_names else v for k, v in params.items()},
    }
    cursor = await conn.execute(sql, values)
    row: dict[str, Any] | None = await cursor.fetchone() if cursor.description else None
    return row


class FastPath:
    """At most ``size`` autocommit connections (rows as dicts) where the engine connects; afresh on another
    event loop (a test client's); pinged after ``PING_AFTER_IDLE_SECONDS`` idle; closed if not idle."""

    def __init__(self, db: Database, flow: workflow.Workflow, size: int) -> None:
        _args, params = db.engine.dialect.create_connect_args(db.engine.url)
        self.connect_params = {k: v for k, v in params.items() if k != "context"}
        self.workflow, self.size = flow, size
        self._idle: list[tuple[Any, float]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._free: asyncio.Semaphore | None = None

    async def claim_next(self, actor: Actor, **filters: Any) -> dict[str, Any] | None:
        statement, params, (type_, actor_id, data, now) = self.workflow.claim_next_call(
            actor,
            filters.get("family"),
            filters.get("category"),
            filters.get("severity"),
            filters.get("kind"),
        )
        values = {**params, "e_type": type_, "e_actor": actor_id, "e_data": data, "e_now": now}
        try:
            async with self.connection() as conn:
                row = await _fetch(conn, with_event(statement), values)
        except psycopg.Error as exc:  # a claim the lost statement made expires with its lease
            raise Declined from exc
        return None if row is None else self.workflow._claim_answer(row)

    async def decide(
        self, item_id: int, actor: Actor, body: workflow.DecisionIn, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        wf = self.workflow
        wf._require(actor, "decide")
        workflow.validate_outcome(body)
        if body.finding_marks:
            raise Declined
        now = utcnow()
        (statement,) = workflow._decision_rows(True, False, False)
        try:
            async with self.connection() as conn, conn.transaction():
                row = await _fetch(conn, statement, wf.decide_params(item_id, actor, body, [], now))
                if row is None:
                    raise Declined
                result = wf.decide_answer(row, body, now)
                if idempotency_key:
                    await _fetch(
                        conn,
                        workflow._IDEMPOTENCY_INSERT,
                        {
                            "user_id": actor.id,
                            "key": idempotency_key,
                            "status_code": 200,
                            "response": result,
                            "request_hash": request_hash({"item_id": item_id, **body.model_dump()}),
                            "created_at": utcnow(),
                        },
                    )
        except psycopg.Error as exc:
            raise Declined from exc
        return result

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
                if time.monotonic() - since >= PING_AFTER_IDLE_SECONDS:
                    try:
                        await conn.execute("SELECT 1")
                    except psycopg.Error:
                        conn.pgconn.finish()
                        conn = None
            if conn is None:
                conn = await psycopg.AsyncConnection.connect(
                    **self.connect_params, autocommit=True, row_factory=dict_row
                )
            try:
                yield conn
            except psycopg.OperationalError:
                if conn.closed or conn.broken:  # the server probably dropped the others too
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
