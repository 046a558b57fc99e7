"""Daily trends and per-reviewer figures for the stats page (issue 17).

- **Daily** (China time, UTC+8, the reviewers' day): items that entered the queue, live decisions by
  outcome, and how often the decision agreed with the machine.
- **Per reviewer**: live decisions in the window, decisions per active hour (hours in which they
  decided anything: a part-time reviewer is not penalised for the hours they were away), handling time
  p50 (claim → decision), approval rate, agreement with the machine, agreement with leads, and how
  many findings they marked "not a violation".

Agreement with the machine: the item's machine verdict was ``block``/``review`` and the reviewer
rejected or asked for changes, or it was ``pass`` and they approved. Agreement with leads: the share
of a reviewer's decisions that no lead reverted and no appeal overturned (an approved appeal of their
rejection or change request).
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from moderation.queue.core import DECISIONS, ITEMS, usernames
from moderation.queue.db import Database, retry_on_disconnect, utcnow
from moderation.queue.marks import MARKS
from moderation.queue.stats import DECISION_COLUMNS, rate

CHINA = timezone(timedelta(hours=8))


def _rated(name: str, value: float | None) -> dict[str, Any]:
    """A rate and its text for the page (``–`` when there is nothing to divide by)."""
    return {name: value, f"{name}_text": "–" if value is None else f"{value * 100:.0f}%"}


def _aware(t: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives it back naive)."""
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _agrees(verdict: str | None, outcome: str) -> bool | None:
    if verdict in ("block", "review"):
        return outcome != "approved"
    if verdict == "pass":
        return outcome == "approved"
    return None


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 1)


@retry_on_disconnect
def reviewer_trends(db: Database, *, days: int = 14) -> dict[str, Any]:
    now = utcnow()
    today = now.astimezone(CHINA).date()
    first_day = today - timedelta(days=days - 1)
    since = datetime.combine(first_day, datetime.min.time(), CHINA).astimezone(UTC)
    with db.read() as conn:
        decisions = conn.execute(
            select(DECISIONS.c.id, *DECISION_COLUMNS, ITEMS.c.verdict)
            .join(ITEMS, ITEMS.c.id == DECISIONS.c.item_id)
            .where(DECISIONS.c.created_at >= since)
        ).all()
        created = conn.execute(select(ITEMS.c.created_at).where(ITEMS.c.created_at >= since)).all()
        original = ITEMS.alias("original")
        overturned = conn.execute(
            select(original.c.decided_by)
            .join(original, ITEMS.c.appeal_of == original.c.id)
            .where(
                ITEMS.c.kind == "appeal",
                ITEMS.c.status == "decided",
                ITEMS.c.outcome == "approved",
                original.c.outcome != "approved",
                ITEMS.c.decided_at >= since,
            )
        ).all()
        marks: dict[int, int] = dict(
            conn.execute(
                select(MARKS.c.marked_by, func.count())
                .where(MARKS.c.created_at >= since)
                .group_by(MARKS.c.marked_by)
            ).all()
        )
        names = usernames(conn)

    def day_of(t: datetime) -> str:
        return _aware(t).astimezone(CHINA).date().isoformat()

    counted = ("created", "decided", "approved", "rejected", "changes_requested", "agree", "judged")
    daily: dict[str, dict[str, Any]] = {}
    for i in range(days):
        date = (first_day + timedelta(days=i)).isoformat()
        daily[date] = {"day": date, **dict.fromkeys(counted, 0)}
    for (at,) in created:
        day = daily.get(day_of(at))
        if day is not None:
            day["created"] += 1
    reviewers: dict[int, dict[str, Any]] = {}
    for d in decisions:
        r = reviewers.setdefault(
            d.decided_by,
            {
                **dict.fromkeys(("decisions", "approved", "agree", "judged", "reverted"), 0),
                "hours": set(),
                "handling": [],
            },
        )
        if d.undo_kind == "revert":
            r["reverted"] += 1
        if d.undone_at is not None:
            continue
        day = daily.get(day_of(d.created_at))
        agrees = _agrees(d.verdict, d.outcome)
        if day is not None:
            day["decided"] += 1
            day[d.outcome] = day.get(d.outcome, 0) + 1
            if agrees is not None:
                day["judged"] += 1
                day["agree"] += agrees
        r["decisions"] += 1
        r["approved"] += d.outcome == "approved"
        if agrees is not None:
            r["judged"] += 1
            r["agree"] += agrees
        r["hours"].add(_aware(d.created_at).replace(minute=0, second=0, microsecond=0))
        if d.claimed_at is not None:
            r["handling"].append((d.created_at - d.claimed_at).total_seconds())
    over = Counter(decider for (decider,) in overturned)

    rows = []
    for user_id, r in reviewers.items():
        total = r["decisions"] + r["reverted"]  # reverted decisions count against, not out of, the base
        rows.append(
            {
                "user_id": user_id,
                "name": names.get(user_id, str(user_id)),
                "decisions": r["decisions"],
                "active_hours": len(r["hours"]),
                "per_active_hour": round(r["decisions"] / len(r["hours"]), 1) if r["hours"] else 0,
                "handling_p50": _median(r["handling"]),
                **_rated("approval_rate", rate(r["approved"], r["decisions"])),
                **_rated("machine_agreement", rate(r["agree"], r["judged"])),
                "reverted": r["reverted"],
                "overturned": over.get(user_id, 0),
                **_rated("lead_agreement", rate(total - r["reverted"] - over.get(user_id, 0), total)),
                "finding_marks": marks.get(user_id, 0),
            }
        )
    rows.sort(key=lambda x: (-x["decisions"], x["name"]))
    days_out = [
        {
            **{k: v for k, v in day.items() if k not in ("agree", "judged")},
            **_rated("machine_agreement", rate(day["agree"], day["judged"])),
        }
        for day in daily.values()
    ]
    agree = sum(d["agree"] for d in daily.values())
    judged = sum(d["judged"] for d in daily.values())
    all_total = sum(r["decisions"] + r["reverted"] for r in reviewers.values())
    all_bad = sum(r["reverted"] for r in reviewers.values()) + sum(over.values())
    return {
        "days": days,
        "daily": days_out,
        "max_day": max([max(d["created"], d["decided"]) for d in days_out] or [0]),
        "reviewers": rows,
        "totals": {
            **_rated("machine_agreement", rate(agree, judged)),
            **_rated("lead_agreement", rate(all_total - all_bad, all_total)),
            "finding_marks": sum(marks.values()),
        },
    }
