"""Read side: filtered lists with keyset pagination, item detail, event log, replay verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, func, or_, select

from moderation.queue.core import (
    DECISIONS,
    EVENTS,
    ITEMS,
    LISTINGS,
    SIGNALS,
    iso,
    jsonable,
    load_item,
    public_item,
    table,
    usernames,
)
from moderation.queue.db import Database, dicts, retrying, utcnow
from moderation.queue.errors import Invalid
from moderation.queue.marks import marks_by_decision
from moderation.queue.models import ServerState
from moderation.queue.roles import Actor
from moderation.queue.safety import INT_MAX, INT_MIN, like_pattern
from moderation.queue.states import CLAIMED, DECIDED, OPEN_STATES, STATES, projection, replay, sla

T = ITEMS


@dataclass
class ItemFilter:
    """The list filters of the API and the console (all optional)."""

    status: str | None = None  # a state, or "open"
    family: str | None = None
    severity: str | None = None
    category: str | None = None
    seller: str | None = None
    kind: str | None = None
    flag: str | None = None  # items carrying this flag (sanitized, long_id, check_error, truncated)
    min_risk: float | None = None
    min_age_hours: float | None = None
    max_age_hours: float | None = None
    sort: str = "priority"  # priority | oldest
    #: Search: words of the title (each must occur), or a listing id or seller id (exact, or its start).
    q: str | None = None


STATE = table(ServerState)
CURSOR_KEY = "cursor_key"
_BAD_CURSOR = "the cursor is not one this API returned"


def _tag(payload: str, key: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18]).decode()


def _encode_cursor(values: list[Any], key: bytes) -> str:
    """``base64(json).base64(hmac)``: a client can hold it and send it back, not forge or edit it."""
    payload = (
        base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")
    )
    return payload + "." + _tag(payload, key)


def _decode_cursor(cursor: str, key: bytes) -> list[Any]:
    payload, _, tag = cursor.partition(".")
    if not tag or not hmac.compare_digest(tag.encode(), _tag(payload, key).encode()):
        raise Invalid("invalid_cursor", _BAD_CURSOR)
    try:
        values = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, json.JSONDecodeError) as exc:
        raise Invalid("invalid_cursor", _BAD_CURSOR) from exc
    if not isinstance(values, list):
        raise Invalid("invalid_cursor", _BAD_CURSOR)
    return values


def _cursor_int(value: Any) -> int:
    if type(value) is not int or not INT_MIN <= value <= INT_MAX:
        raise ValueError("not a column integer")
    return value


def _cursor_time(value: Any) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("not a timestamp")
    return datetime.fromisoformat(value)


def _search(q: str) -> Any:
    """Title containing every word of ``q``, or a listing or seller id that is ``q`` or starts with it
    (``LIKE`` with ``%``/``_`` escaped; case-insensitive for Latin letters)."""
    q = q.strip()[:200]
    words = [w for w in q.split() if w][:8]
    title = and_(*(func.lower(T.c.title).like(f"%{like_pattern(w.lower())}%", escape="\\") for w in words))
    prefix = f"{like_pattern(q)}%"
    return or_(title, T.c.listing_id.like(prefix, escape="\\"), T.c.seller_id.like(prefix, escape="\\"))


def _event(r: Any) -> dict[str, Any]:
    """An event as the API and the console show it (the log adds its ``id`` and ``item_id``)."""
    return {"seq": r.seq, "type": r.type, "actor": r.actor, "data": r.data, "created_at": iso(r.created_at)}


def sla_deadline(item: dict[str, Any]) -> datetime:
    return cast(datetime, item["created_at"]) + sla(item.get("verdict"))


@retrying
class Views:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cursor_key: bytes | None = None
        self._key_lock = threading.Lock()

    def cursor_key(self) -> bytes:
        """The key that signs list cursors: one per database (``server_state``), so a cursor from one
        worker process or host is good at every other; made by whoever needs it first."""
        if self._cursor_key is None:
            with self._key_lock:
                if self._cursor_key is None:
                    self._cursor_key = self._load_cursor_key()
        return self._cursor_key

    def _load_cursor_key(self) -> bytes:
        with self.db.read() as conn:
            value = conn.execute(select(STATE.c.value).where(STATE.c.name == CURSOR_KEY)).scalar()
        if value is None:  # the first to need it makes it; another process may have made it first
            made = {"name": CURSOR_KEY, "value": secrets.token_hex(32), "number": 0, "updated_at": utcnow()}
            with self.db.write() as conn:
                conn.execute(self.db.insert(STATE).values(made).on_conflict_do_nothing())
                value = conn.execute(select(STATE.c.value).where(STATE.c.name == CURSOR_KEY)).scalar_one()
        return bytes.fromhex(value)

    def list_items(self, f: ItemFilter, *, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """One page of items and the cursor of the next page (keyset pagination, stable under inserts)."""
        now = utcnow()
        cond: list[Any] = []
        if f.status == "open":
            cond.append(T.c.status.in_(OPEN_STATES))
        elif f.status:
            if f.status not in STATES:
                raise Invalid("invalid_status", f"status must be 'open' or one of {', '.join(STATES)}")
            cond.append(T.c.status == f.status)
        if f.family:
            cond.append(T.c.families.like(f"%,{like_pattern(f.family)},%", escape="\\"))
        if f.flag:
            cond.append(T.c.flags.like(f"%,{like_pattern(f.flag)},%", escape="\\"))
        for column, value in (
            (T.c.max_severity, f.severity),
            (T.c.category, f.category),
            (T.c.seller_id, f.seller),
            (T.c.kind, f.kind),
        ):
            if value:
                cond.append(column == value)
        if f.q and f.q.strip():
            cond.append(_search(f.q))
        if f.min_risk is not None:
            cond.append(T.c.risk >= f.min_risk)
        if f.min_age_hours is not None:
            cond.append(T.c.created_at <= now - timedelta(hours=f.min_age_hours))
        if f.max_age_hours is not None:
            cond.append(T.c.created_at >= now - timedelta(hours=f.max_age_hours))
        order: list[Any]
        if f.sort == "oldest":
            order = [T.c.created_at, T.c.id]
        elif f.sort == "priority":
            order = [T.c.priority.desc(), T.c.created_at, T.c.id]
        else:
            raise Invalid("invalid_sort", "sort must be priority or oldest")
        if cursor:
            values = _decode_cursor(cursor, self.cursor_key())
            try:
                if values[0] != f.sort:
                    raise ValueError("a cursor of another sort order")
                # [sort, (priority,) created_at, id] of the last row shown: the rows after it
                prio = None if f.sort == "oldest" else _cursor_int(values.pop(1))
                at, last = _cursor_time(values[1]), _cursor_int(values[2])
                after = or_(T.c.created_at > at, and_(T.c.created_at == at, T.c.id > last))
                if prio is not None:
                    after = or_(T.c.priority < prio, and_(T.c.priority == prio, after))
                cond.append(after)
            except (IndexError, TypeError, ValueError) as exc:
                raise Invalid("invalid_cursor", _BAD_CURSOR) from exc
        limit = max(1, min(limit, 200))
        with self.db.read() as conn:
            rows = dicts(conn, select(T).where(*cond).order_by(*order).limit(limit + 1))
            names = usernames(conn)
        more = len(rows) > limit
        rows = rows[:limit]
        items = [self._summary(r, now, names) for r in rows]
        next_cursor = None
        if more and rows:
            end = rows[-1]
            key = [iso(end["created_at"]), end["id"]]
            values = [f.sort, *key] if f.sort == "oldest" else [f.sort, end["priority"], *key]
            next_cursor = _encode_cursor(values, self.cursor_key())
        return {"items": items, "next_cursor": next_cursor}

    @staticmethod
    def _summary(item: dict[str, Any], now: datetime, names: dict[int, str]) -> dict[str, Any]:
        out = public_item(item)
        held = (
            item["status"] == CLAIMED
            and item["lease_expires_at"] is not None
            and item["lease_expires_at"] >= now
        )
        out["held_by"] = names.get(item["claimed_by"]) if held else None
        out["held_by_id"] = item["claimed_by"] if held else None
        out["age_seconds"] = int((now - item["created_at"]).total_seconds())
        deadline = sla_deadline(item)
        out["sla_deadline"] = iso(deadline)
        out["sla_breached"] = item["status"] in OPEN_STATES and now > deadline
        return out

    def holds(self) -> dict[int, str]:
        """Who holds what right now, for the console's live markers."""
        now = utcnow()
        with self.db.read() as conn:
            names = usernames(conn)
            rows = conn.execute(
                select(T.c.id, T.c.claimed_by).where(T.c.status == CLAIMED, T.c.lease_expires_at >= now)
            ).all()
        return {r[0]: names.get(r[1], str(r[1])) for r in rows}

    def detail(self, item_id: int, actor: Actor) -> dict[str, Any]:
        """Everything a reviewer needs on one page."""
        now = utcnow()
        with self.db.read() as conn:
            item = load_item(conn, item_id)
            names = usernames(conn)
            signals = dicts(conn, select(SIGNALS).where(SIGNALS.c.item_id == item_id).order_by(SIGNALS.c.id))
            listing = conn.execute(select(LISTINGS).where(LISTINGS.c.id == item["listing_id"])).first()
            listing_items = select(T.c.id).where(T.c.listing_id == item["listing_id"])
            decisions = dicts(
                conn, select(DECISIONS).where(DECISIONS.c.item_id.in_(listing_items)).order_by(DECISIONS.c.id)
            )
            events = [
                _event(r)
                for r in conn.execute(
                    select(EVENTS).where(EVENTS.c.item_id == item_id).order_by(EVENTS.c.seq)
                )
            ]
            marks = marks_by_decision(conn, [d["id"] for d in decisions])
            history: list[dict[str, Any]] = []
            counts: dict[str, int] = {}
            if item["seller_id"]:
                history = dicts(
                    conn,
                    select(T.c.id, T.c.listing_id, T.c.title, T.c.status, T.c.outcome, T.c.created_at)
                    .where(T.c.seller_id == item["seller_id"], T.c.id != item_id)
                    .order_by(T.c.id.desc())
                    .limit(20),
                )
                counts = {
                    str(k or "open"): v
                    for k, v in conn.execute(
                        select(T.c.outcome, func.count())
                        .where(T.c.seller_id == item["seller_id"])
                        .group_by(T.c.outcome)
                    )
                }
        latest = signals[-1]["result"] if signals else {}
        out = self._summary(item, now, names)
        out["claim_token"] = (
            item["claim_token"] if item["claimed_by"] == actor.id and out["held_by"] else None
        )
        out.update(
            listing=latest.get("listing") or (dict(listing.snapshot) if listing else {}),
            check=latest.get("check", {}),
            current_listing_revision=listing.revision if listing else None,
            listing_deleted=bool(listing.deleted) if listing else False,
            signals=[
                {
                    "id": s["id"],
                    "source": s["source"],
                    "verdict": s["verdict"],
                    "risk": s["risk"],
                    "listing_revision": s["listing_revision"],
                    "created_at": iso(s["created_at"]),
                }
                for s in signals
            ],
            decisions=[
                {
                    **jsonable(d),
                    "decided_by_name": names.get(d["decided_by"]),
                    "finding_marks": marks.get(d["id"], []),
                }
                for d in decisions
            ],
            events=[{**e, "actor_name": names.get(e["actor"])} for e in events],
            seller_history=[jsonable(h) for h in history],
            seller_counts=counts,
            decided_by_name=names.get(item["decided_by"]),
        )
        return out

    def events(self, *, item_id: int | None = None, after_id: int = 0, limit: int = 200) -> dict[str, Any]:
        """The append-only log, in insertion order, for auditors and replays."""
        cond = [EVENTS.c.id > after_id]
        if item_id is not None:
            cond.append(EVENTS.c.item_id == item_id)
        limit = max(1, min(limit, 1000))
        with self.db.read() as conn:
            rows = conn.execute(select(EVENTS).where(*cond).order_by(EVENTS.c.id).limit(limit)).all()
        events = [{"id": r.id, "item_id": r.item_id, **_event(r)} for r in rows]
        return {"events": events, "next_after": events[-1]["id"] if len(events) == limit else None}

    def verify(self) -> list[str]:
        """Replay every item's events against its row; gap-free numbers; one live decision per decided
        item. Returns the problems found (empty when the log and the projection agree)."""
        problems: list[str] = []
        with self.db.read() as conn:
            items = {r.id: dict(r._mapping) for r in conn.execute(select(T))}
            by_item: dict[int, list[dict[str, Any]]] = {}
            for r in conn.execute(select(EVENTS).order_by(EVENTS.c.item_id, EVENTS.c.seq)):
                by_item.setdefault(r.item_id, []).append(
                    {"seq": r.seq, "type": r.type, "actor": r.actor, "data": r.data}
                )
            live: dict[int, int] = dict(
                conn.execute(
                    select(DECISIONS.c.item_id, func.count())
                    .where(DECISIONS.c.undone_at.is_(None))
                    .group_by(DECISIONS.c.item_id)
                ).all()
            )
        for item_id, item in items.items():
            events = by_item.get(item_id, [])
            seqs = [e["seq"] for e in events]
            if seqs != list(range(1, len(seqs) + 1)) or item["event_seq"] != len(seqs):
                problems.append(f"item {item_id}: event numbers {seqs[:5]}… (counter {item['event_seq']})")
            state, want = replay(events), projection(item)
            if state != want:
                problems.append(f"item {item_id}: replay {state} != row {want}")
            n_live = live.get(item_id, 0)
            expected = 1 if item["status"] == DECIDED else 0
            if n_live != expected:
                problems.append(f"item {item_id}: {n_live} live decisions in status {item['status']}")
        return problems
