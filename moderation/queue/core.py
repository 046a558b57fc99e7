"""Shared building blocks of the service: table handles, event appends, row helpers.

Every state change in the service is one ``UPDATE items … WHERE <expected state> RETURNING …`` that
also bumps ``event_seq``; the returned number is the new event's ``seq``. Because the counter lives on
the row that the UPDATE locks, event numbers per item are gap-free and never collide (and the unique
``(item_id, seq)`` constraint would refuse it if they did).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    TypeDecorator,
    bindparam,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.engine import Dialect

from moderation.queue import models
from moderation.queue.db import Statements, SyncStatements, run_now
from moderation.queue.errors import NotFound


def table(model: type[Any]) -> Table:
    """The table of a SQLModel class."""
    return cast(Table, model.__table__)


ITEMS = table(models.Item)
LISTINGS = table(models.ListingRow)
SIGNALS = table(models.Signal)
RULES = table(models.ItemRule)
DECISIONS = table(models.Decision)
EVENTS = table(models.Event)
OUTBOX = table(models.Outbox)
SKIPS = table(models.Skip)
IDEMPOTENCY = table(models.IdempotencyKey)
USERS = table(models.User)

#: Columns every state-changing UPDATE returns.
RETURNING = tuple(ITEMS.c)
#: What ends a hold (deciding keeps ``claimed_at``: it gives the handling time).
UNHELD = {"claimed_by": None, "claim_token": None, "lease_expires_at": None}


def bumped(now: Any, **values: Any) -> dict[str, Any]:
    """The SET of a state change: ``values``, the version and the event counter one up, ``updated_at``."""
    return {**values, "version": ITEMS.c.version + 1, "event_seq": ITEMS.c.event_seq + 1, "updated_at": now}


#: Built once and executed with a parameter dict: SQLAlchemy then reuses the compiled statement
#: instead of building, hashing and looking up a fresh ``insert().values(…)`` on every event.
EVENT_INSERT = insert(EVENTS)


def append_event(
    conn: Connection,
    item_id: int,
    seq: int,
    type_: str,
    actor: int | None,
    data: dict[str, Any],
    now: datetime,
) -> None:
    """Write one event with the ``seq`` handed out by the item row's counter."""
    conn.execute(
        EVENT_INSERT,
        {"item_id": item_id, "seq": seq, "type": type_, "actor": actor, "data": data, "created_at": now},
    )


def json_object(pg: bool, **fields: Any) -> Any:
    """A JSON object built in SQL (PostgreSQL ``json_build_object``, SQLite ``json_object``)."""
    args: list[Any] = []
    for key, value in fields.items():
        args += [literal_column(f"'{key}'"), value]
    return func.json_build_object(*args) if pg else func.json_object(*args)


def json_bool(pg: bool, value: bool) -> Any:
    """A boolean constant nested as JSON inside ``json_object`` (bare, SQLite would nest 1 or 0)."""
    flag = str(value).lower()
    return literal_column(flag) if pg else func.json(literal_column(f"'{flag}'"))


#: What an ``INSERT … SELECT`` of events writes (every column but the id).
EVENT_COLUMNS = [c.name for c in EVENTS.c if c.name != "id"]


def insert_events(u: Any, type_: Any, actor: Any, data: Any, now: Any, joined: Any = None) -> Any:
    """``INSERT INTO events … SELECT``: an event for each changed item row of ``u``, numbered by its
    ``event_seq`` (``joined``: ``u`` joined with what ``data`` reads)."""
    rows = select(u.c.id, u.c.event_seq, type_, actor, data, now)
    return insert(EVENTS).from_select(EVENT_COLUMNS, rows if joined is None else rows.select_from(joined))


def json_value(pg: bool, name: str) -> Any:
    """A parameter holding JSON (a list, a boolean), nested as JSON inside ``json_object``."""
    value = bindparam(name, type_=JSON())
    return value if pg else func.json(value)


@functools.lru_cache(maxsize=256)
def with_event(statement: Any) -> Any:
    """``WITH u AS (<statement>), e AS (INSERT INTO events SELECT … FROM u) SELECT u.* FROM u``."""
    u = statement.cte("u")
    event = insert_events(
        u,
        bindparam("e_type", type_=String()),
        bindparam("e_actor", type_=Integer()),
        bindparam("e_data", type_=EVENTS.c.data.type),
        bindparam("e_now", type_=EVENTS.c.created_at.type),
    )
    return select(*u.c).add_cte(event.cte("e"))


async def apply_all(
    tx: Statements,
    statement: Any,
    params: dict[str, Any],
    type_: str,
    actor: int | None,
    data: dict[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """A conditional ``UPDATE items … RETURNING *`` (bumping ``event_seq``; or an ``INSERT`` of items)
    and an event for each row it returns. PostgreSQL: one statement (``with_event``); SQLite: the
    statement, then the events."""
    if tx.pg:
        values = {**params, "e_type": type_, "e_actor": actor, "e_data": data, "e_now": now}
        return await tx.rows(with_event(statement), values)
    rows = await tx.rows(statement, params)
    event = {"type": type_, "actor": actor, "data": data, "created_at": now}
    for row in rows:
        await tx.row(EVENT_INSERT, {"item_id": row["id"], "seq": row["event_seq"], **event})
    return rows


async def apply(tx: Statements, *args: Any) -> dict[str, Any] | None:
    """``apply_all`` of a statement that changes at most one item (same arguments): its row or ``None``."""
    rows = await apply_all(tx, *args)
    return rows[0] if rows else None


def change(conn: Connection, *args: Any) -> dict[str, Any] | None:
    """``apply`` (same arguments after the first) on a SQLAlchemy connection."""
    return run_now(apply(SyncStatements(conn), *args))


def change_all(conn: Connection, *args: Any) -> list[dict[str, Any]]:
    """``apply_all`` on a SQLAlchemy connection."""
    return run_now(apply_all(SyncStatements(conn), *args))


#: An event that changes no state still takes its number from the item row (``touch_event``).
_TOUCH = (
    update(ITEMS)
    .where(ITEMS.c.id == bindparam("b_item"))
    .values(event_seq=ITEMS.c.event_seq + 1)
    .returning(*RETURNING)
)


def touch_event(
    conn: Connection, item_id: int, type_: str, actor: int | None, data: dict[str, Any], now: datetime
) -> int:
    """An event that changes no state (a comment): one statement on PostgreSQL (``change``)."""
    row = change(conn, _TOUCH, {"b_item": item_id}, type_, actor, data, now)
    if row is None:
        raise NotFound("item_not_found", f"item {item_id} does not exist")
    return int(row["event_seq"])


def load_item(conn: Connection, item_id: int) -> dict[str, Any]:
    row = conn.execute(select(ITEMS).where(ITEMS.c.id == item_id)).first()
    if row is None:
        raise NotFound("item_not_found", f"item {item_id} does not exist")
    return dict(row._mapping)


def request_hash(payload: dict[str, Any]) -> str:
    """A stable fingerprint of a request body for idempotency keys."""
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()
    ).hexdigest()


def from_json(column: Column[Any], value: Any, dialect: Dialect) -> Any:
    """A column's value as a query returns it, from the JSON that ``json_object`` made of it."""
    kind = column.type
    impl = kind.impl_instance if isinstance(kind, TypeDecorator) else kind
    if value is not None and isinstance(impl, DateTime):
        value = datetime.fromisoformat(value)
    elif value is not None and isinstance(impl, Boolean):
        value = bool(value)
    if isinstance(kind, TypeDecorator):
        with contextlib.suppress(NotImplementedError):  # a decorator that changes only what is stored
            value = kind.process_result_value(value, dialect)
    return value


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """A row with its times as ISO 8601 strings."""
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in row.items()}


def usernames(conn: Connection) -> dict[int, str]:
    """User id → username (events, decisions and holds name who acted)."""
    return {r[0]: r[1] for r in conn.execute(select(USERS.c.id, USERS.c.username))}


def public_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item row as JSON, without the claim token (only its holder may see that)."""
    out = jsonable({k: v for k, v in item.items() if k != "claim_token"})
    out["families"] = [f for f in (item.get("families") or "").split(",") if f]
    out["flags"] = [f for f in (item.get("flags") or "").split(",") if f]
    return out
