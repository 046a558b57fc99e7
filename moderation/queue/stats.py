"""Queue metrics for leads and auditors, computed from decisions, events and open items.

Rule precision is "as judged by reviewers": of the decided items a rule fired on, the share a reviewer
rejected or sent back for changes. An approval means the rule flagged an honest listing.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from moderation.queue.core import DECISIONS, EVENTS, ITEMS, RULES, usernames
from moderation.queue.db import Database, retry_on_disconnect, utcnow
from moderation.queue.states import OPEN_STATES, SLA_HOURS, sla

T = ITEMS
#: A decision as the stats and the trends (trends.py) count it.
DECISION_COLUMNS = (
    DECISIONS.c.item_id,
    DECISIONS.c.outcome,
    DECISIONS.c.decided_by,
    DECISIONS.c.claimed_at,
    DECISIONS.c.created_at,
    DECISIONS.c.undone_at,
    DECISIONS.c.undo_kind,
)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 1)


def rate(num: int, den: int) -> float | None:
    """``num / den`` to 4 places; ``None`` when there is nothing to divide by."""
    return round(num / den, 4) if den else None


@retry_on_disconnect
def compute_stats(db: Database, *, hours: float = 24.0) -> dict[str, Any]:
    now = utcnow()
    since = now - timedelta(hours=hours)
    with db.read() as conn:
        decisions = conn.execute(select(*DECISION_COLUMNS).where(DECISIONS.c.created_at >= since)).all()
        open_items = conn.execute(
            select(T.c.created_at, T.c.verdict).where(T.c.status.in_(OPEN_STATES))
        ).all()
        decided_late = conn.execute(
            select(T.c.created_at, T.c.decided_at, T.c.verdict).where(T.c.decided_at >= since)
        ).all()
        escalations = conn.execute(
            select(func.count(func.distinct(EVENTS.c.item_id))).where(
                EVENTS.c.type == "escalated", EVENTS.c.created_at >= since
            )
        ).scalar_one()
        touched = conn.execute(
            select(func.count(func.distinct(EVENTS.c.item_id))).where(EVENTS.c.created_at >= since)
        ).scalar_one()
        original = T.alias("original")
        appeals = conn.execute(
            select(T.c.outcome, original.c.outcome)
            .join(original, T.c.appeal_of == original.c.id)
            .where(T.c.kind == "appeal", T.c.status == "decided", T.c.decided_at >= since)
        ).all()
        live = DECISIONS.alias("live")
        precision_rows = conn.execute(
            select(RULES.c.rule, RULES.c.family, live.c.outcome, func.count())
            .join(live, live.c.item_id == RULES.c.item_id)
            .where(live.c.undone_at.is_(None))
            .group_by(RULES.c.rule, RULES.c.family, live.c.outcome)
        ).all()
        names = usernames(conn)

    live_decisions = [d for d in decisions if d.undone_at is None]
    handling = [(d.created_at - d.claimed_at).total_seconds() for d in decisions if d.claimed_at is not None]
    ages = [(now - r.created_at).total_seconds() for r in open_items]
    breaches_open = sum(1 for r in open_items if now - r.created_at > sla(r.verdict))
    breaches_decided = sum(1 for r in decided_late if r.decided_at - r.created_at > sla(r.verdict))
    per_reviewer = Counter(names.get(d.decided_by, str(d.decided_by)) for d in live_decisions)
    by_outcome = Counter(d.outcome for d in live_decisions)
    rules: dict[str, dict[str, Any]] = {}
    for rule, family, outcome, n in precision_rows:
        entry = rules.setdefault(rule, {"rule": rule, "family": family, "confirmed": 0, "overruled": 0})
        entry["overruled" if outcome == "approved" else "confirmed"] += n
    for entry in rules.values():
        entry["decided"] = entry["confirmed"] + entry["overruled"]
        entry["precision"] = rate(entry["confirmed"], entry["decided"])
    overturned = sum(1 for mine, orig in appeals if mine == "approved" and orig != "approved")
    return {
        "window_hours": hours,
        "throughput": {
            "decisions": len(live_decisions),
            "per_hour": round(len(live_decisions) / hours, 2),
            "by_outcome": dict(by_outcome),
            "by_reviewer": dict(per_reviewer),
        },
        "handling_seconds": {"p50": _percentile(handling, 0.5), "p95": _percentile(handling, 0.95)},
        "queue": {
            "open": len(open_items),
            "age_p50_seconds": _percentile(ages, 0.5),
            "age_p95_seconds": _percentile(ages, 0.95),
        },
        "sla_breaches": {"open": breaches_open, "decided_late": breaches_decided, "hours": SLA_HOURS},
        "rates": {
            "escalation": rate(escalations, touched),
            "undo": rate(sum(1 for d in decisions if d.undo_kind == "undo"), len(decisions)),
            "revert": rate(sum(1 for d in decisions if d.undo_kind == "revert"), len(decisions)),
            "appeal_overturn": rate(overturned, len(appeals)),
        },
        "appeals": {"decided": len(appeals), "overturned": overturned},
        "rule_precision": sorted(rules.values(), key=lambda e: (-e["decided"], e["rule"])),
    }
