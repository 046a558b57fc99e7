"""Actions on a seller as a whole (issue 17): hold all their listings, release them, warn them.

``hold`` records the action and, in the same transaction, moves every open item of the seller to the
top of the queue (priority ``HOLD_PRIORITY``, one ``priority_changed`` event each, so replay still
equals state); while the last hold/release of a seller is a hold, ``info`` says ``held`` and the
integration that publishes listings keeps theirs offline (``GET /v1/sellers/{id}``,
``GET /v1/sellers?held=true``). ``warn`` records a warning with its text for the seller. Every action
stays in ``seller_actions`` with who and when; the seller page in the console shows them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update

from moderation.queue.core import ITEMS, RETURNING, bumped, change_all, iso, table, usernames
from moderation.queue.db import Database, dicts, retrying, utcnow
from moderation.queue.errors import Forbidden, Invalid
from moderation.queue.models import SellerAction
from moderation.queue.roles import Actor
from moderation.queue.states import OPEN_STATES

ACTIONS = table(SellerAction)
KINDS = ("hold", "release", "warn")
#: The priority a hold gives the seller's open items (the API's maximum).
HOLD_PRIORITY = 1000
T = ITEMS


@retrying
class Sellers:
    def __init__(self, db: Database) -> None:
        self.db = db

    def act(self, seller_id: str, actor: Actor, kind: str, note: str = "") -> dict[str, Any]:
        """Record ``kind`` on the seller (leads and admins); a hold also raises their open items."""
        if not actor.can("bulk"):
            raise Forbidden("forbidden", f"role {actor.role} may not act on sellers")
        if kind not in KINDS:
            raise Invalid("invalid_action", f"action must be one of {', '.join(KINDS)}")
        if kind == "warn" and not note.strip():
            raise Invalid("note_required", "a warning needs its text for the seller")
        now = utcnow()
        raised = 0
        with self.db.write() as conn:
            if kind == "hold":  # each open item raised with its event (one statement on PostgreSQL)
                raise_open = (
                    update(T)
                    .where(
                        T.c.seller_id == seller_id, T.c.status.in_(OPEN_STATES), T.c.priority < HOLD_PRIORITY
                    )
                    .values(**bumped(now, priority=HOLD_PRIORITY))
                    .returning(*RETURNING)
                )
                data = {"priority": HOLD_PRIORITY, "seller_hold": True}
                raised = len(change_all(conn, raise_open, {}, "priority_changed", actor.id, data, now))
            action_id = conn.execute(
                insert(ACTIONS)
                .values(
                    seller_id=seller_id,
                    kind=kind,
                    note=note.strip(),
                    items=raised,
                    actor=actor.id,
                    created_at=now,
                )
                .returning(ACTIONS.c.id)
            ).scalar_one()
        return {
            "id": action_id,
            "seller_id": seller_id,
            "kind": kind,
            "raised_items": raised,
            "created_at": iso(now),
            "seller": self.info(seller_id),
        }

    def info(self, seller_id: str) -> dict[str, Any]:
        """Whether the seller is held, their warnings and actions (newest first), their open items."""
        with self.db.read() as conn:
            rows = dicts(
                conn,
                select(ACTIONS)
                .where(ACTIONS.c.seller_id == seller_id)
                .order_by(ACTIONS.c.id.desc())
                .limit(200),
            )
            names = usernames(conn)
            open_items = conn.execute(
                select(func.count()).where(T.c.seller_id == seller_id, T.c.status.in_(OPEN_STATES))
            ).scalar_one()
        last = next((r for r in rows if r["kind"] in ("hold", "release")), None)
        return {
            "seller_id": seller_id,
            "held": bool(last and last["kind"] == "hold"),
            "held_since": iso(last["created_at"]) if last and last["kind"] == "hold" else None,
            "warnings": sum(1 for r in rows if r["kind"] == "warn"),
            "open_items": open_items,
            "actions": [
                {
                    "id": r["id"],
                    "kind": r["kind"],
                    "note": r["note"],
                    "raised_items": r["items"],
                    "actor": r["actor"],
                    "actor_name": names.get(r["actor"]),
                    "created_at": iso(r["created_at"]),
                }
                for r in rows
            ],
        }

    def held(self) -> list[dict[str, Any]]:
        """Sellers whose last hold/release is a hold, with when."""
        with self.db.read() as conn:
            latest = (
                select(ACTIONS.c.seller_id, func.max(ACTIONS.c.id).label("last"))
                .where(ACTIONS.c.kind.in_(("hold", "release")))
                .group_by(ACTIONS.c.seller_id)
                .subquery()
            )
            rows = conn.execute(
                select(ACTIONS.c.seller_id, ACTIONS.c.created_at, ACTIONS.c.note)
                .join(latest, ACTIONS.c.id == latest.c.last)
                .where(ACTIONS.c.kind == "hold")
                .order_by(ACTIONS.c.seller_id)
            ).all()
        return [{"seller_id": r[0], "held_since": iso(r[1]), "note": r[2]} for r in rows]
