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

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from moderation.queue.core import DECISIONS, ITEMS, USERS
from moderation.queue.db import Database, retry_on_disconnect, utcnow
from moderation.queue.marks import MARKS
from moderation.queue.stats import rate

CHINA = timezone(timedelta(hours=8))


def _text(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


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
            select(
                DECISIONS.c.id,
                DECISIONS.c.item_id,
                DECISIONS.c.outcome,
                DECISIONS.c.decided_by,
                DECISIONS.c.claimed_at,
                DECISIONS.c.created_at,
                DECISIONS.c.undone_at,
                DECISIONS.c.undo_kind,
                ITEMS.c.verdict,
            )
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
        names = dict(conn.execute(select(USERS.c.id, USERS.c.username)).all())

    def day_of(t: datetime) -> str:
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.astimezone(CHINA).date().isoformat()

    daily: dict[str, dict[str, Any]] = {}
    for i in range(days):
        date = (first_day + timedelta(days=i)).isoformat()
        daily[date] = {
            "day": date,
            "created": 0,
            "decided": 0,
            "approved": 0,
            "rejected": 0,
            "changes_requested": 0,
            "agree": 0,
            "judged": 0,
        }
    for (at,) in created:
        day = daily.get(day_of(at))
        if day is not None:
            day["created"] += 1
    reviewers: dict[int, dict[str, Any]] = {}
    for d in decisions:
        r = reviewers.setdefault(
            d.decided_by,
            {
                "decisions": 0,
                "approved": 0,
                "agree": 0,
                "judged": 0,
                "reverted": 0,
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
        created_at = d.created_at if d.created_at.tzinfo else d.created_at.replace(tzinfo=UTC)
        r["hours"].add(created_at.replace(minute=0, second=0, microsecond=0))
        if d.claimed_at is not None:
            r["handling"].append((d.created_at - d.claimed_at).total_seconds())
    over: dict[int, int] = {}
    for (decider,) in overturned:
        over[decider] = over.get(decider, 0) + 1

    rows = []
    for user_id, r in reviewers.items():
        total = r["decisions"] + r["reverted"]  # reverted decisions count against, not out of, the base
        lead_agree = rate(total - r["reverted"] - over.get(user_id, 0), total)
        machine = rate(r["agree"], r["judged"])
        approval = rate(r["approved"], r["decisions"])
        rows.append(
            {
                "user_id": user_id,
                "name": names.get(user_id, str(user_id)),
                "decisions": r["decisions"],
                "active_hours": len(r["hours"]),
                "per_active_hour": round(r["decisions"] / len(r["hours"]), 1) if r["hours"] else 0,
                "handling_p50": _median(r["handling"]),
                "approval_rate": approval,
                "approval_rate_text": _text(approval),
                "machine_agreement": machine,
                "machine_agreement_text": _text(machine),
                "reverted": r["reverted"],
                "overturned": over.get(user_id, 0),
                "lead_agreement": lead_agree,
                "lead_agreement_text": _text(lead_agree),
                "finding_marks": marks.get(user_id, 0),
            }
        )
    rows.sort(key=lambda x: (-x["decisions"], x["name"]))
    days_out = []
    for day in daily.values():
        agreement = rate(day["agree"], day["judged"])
        days_out.append(
            {
                **{k: v for k, v in day.items() if k not in ("agree", "judged")},
                "machine_agreement": agreement,
                "machine_agreement_text": _text(agreement),
            }
        )
    agree = sum(d["agree"] for d in daily.values())
    judged = sum(d["judged"] for d in daily.values())
    all_total = sum(r["decisions"] + r["reverted"] for r in reviewers.values())
    all_bad = sum(r["reverted"] for r in reviewers.values()) + sum(over.values())
    machine_all, lead_all = rate(agree, judged), rate(all_total - all_bad, all_total)
    return {
        "days": days,
        "daily": days_out,
        "max_day": max([max(d["created"], d["decided"]) for d in days_out] or [0]),
        "reviewers": rows,
        "totals": {
            "machine_agreement": machine_all,
            "machine_agreement_text": _text(machine_all),
            "lead_agreement": lead_all,
            "lead_agreement_text": _text(lead_all),
            "finding_marks": sum(marks.values()),
        },
    }
