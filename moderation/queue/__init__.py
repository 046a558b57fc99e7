"""The review queue: one SQL database holds state, decisions, the event log and the outbox.

``ReviewQueue`` bundles the parts: ``workflow`` (claim, decide, undo, …), ``intake`` (signals,
listing edits, appeals), ``views`` (lists, detail, events, replay verification), ``outbox`` (lease and
acknowledge seller notifications) and ``stats``.
What it guarantees and the tests that prove it: docs/queue-semantics.md; how: docs/queue.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from moderation.queue.db import Database
from moderation.queue.errors import Conflict, Forbidden, Invalid, NotFound, QueueError
from moderation.queue.intake import Intake
from moderation.queue.outbox import OutboxDelivery
from moderation.queue.roles import Actor
from moderation.queue.sellers import Sellers
from moderation.queue.stats import compute_stats
from moderation.queue.views import ItemFilter, Views
from moderation.queue.workflow import DecisionIn, Judgement, Workflow

__all__ = [
    "Actor",
    "Conflict",
    "Database",
    "DecisionIn",
    "Forbidden",
    "Invalid",
    "ItemFilter",
    "Judgement",
    "NotFound",
    "QueueError",
    "ReviewQueue",
]
R = TypeVar("R")


class ReviewQueue:
    """The queue service over one database (upgraded to the newest schema on request)."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        db: Database | None = None,
        lease_seconds: int = 120,
        undo_seconds: int = 120,
        upgrade: bool = True,
        pool_size: int = 20,
    ) -> None:
        self.db = db or Database(database_url, pool_size=pool_size)
        if upgrade:
            self.db.upgrade()
        self.workflow = Workflow(self.db, lease_seconds=lease_seconds, undo_seconds=undo_seconds)
        self.intake = Intake(self.db)
        self.views = Views(self.db)
        self.outbox = OutboxDelivery(self.db)
        self.sellers = Sellers(self.db)

    async def run(self, operation: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Await ``operation`` (e.g. ``queue.workflow.heartbeat``) from an event loop: ``Database.run``."""
        return await self.db.run(operation, *args, **kwargs)

    async def claim_next(self, actor: Actor, **filters: Any) -> dict[str, Any] | None:
        """``workflow.claim_next`` awaited from an event loop: on PostgreSQL its statement is sent from
        the loop (``onloop.py``), on SQLite it runs through ``run``."""
        if self.db.on_loop is None:
            return await self.run(self.workflow.claim_next, actor, **filters)
        return await self.workflow.claim_next_on(self.db.on_loop, actor, **filters)

    async def decide(
        self, item_id: int, actor: Actor, body: DecisionIn, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """``workflow.decide`` awaited from an event loop, like ``claim_next``."""
        if self.db.on_loop is None:
            return await self.run(self.workflow.decide, item_id, actor, body, idempotency_key)
        return await self.workflow.decide_on(self.db.on_loop, item_id, actor, body, idempotency_key)

    def stats(self, hours: float = 24.0) -> dict[str, Any]:
        return compute_stats(self.db, hours=hours)

    def verify(self) -> list[str]:
        return self.views.verify()

    def close(self) -> None:
        self.db.dispose()
