"""Per-finding "not a violation" marks, recorded with the decision they belong to (issue 17).

A reviewer deciding an item may mark any of its findings as wrong (the rule fired on honest text).
In the decision's transaction ``finding_marks`` checks each mark against the findings of the item's
latest signal (the ones the reviewer saw) and gives one ``finding_marks`` row per mark with the
finding's rule and span; the decision writes them and puts them in its ``decided`` event. So the event log,
the decision record and the table all say the same, and a refused mark refuses the decision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select

from moderation.queue.core import SIGNALS, table
from moderation.queue.db import Statements
from moderation.queue.errors import Invalid
from moderation.queue.models import FindingMark

if TYPE_CHECKING:
    from moderation.queue.workflow import FindingMarkIn

MARKS = table(FindingMark)
#: A decision's marks, every column but ``id`` a named parameter (statements are prebuilt: ``onloop.py``).
MARKS_INSERT = insert(MARKS).values(
    {c.name: bindparam(c.name, type_=c.type) for c in MARKS.c if c.name != "id"}
)
_LATEST_RESULT = (
    select(SIGNALS.c.result)
    .where(SIGNALS.c.item_id == bindparam("b_item"))
    .order_by(SIGNALS.c.id.desc())
    .limit(1)
)


async def finding_marks(tx: Statements, item_id: int, marks: list[FindingMarkIn]) -> list[dict[str, Any]]:
    """The ``finding_marks`` rows of a decision (without ``decision_id``, ``marked_by``, ``created_at``);
    422 ``invalid_finding_mark`` for an index the item does not have, a rule that is not that
    finding's, or the same finding twice."""
    if not marks:
        return []
    latest = await tx.row(_LATEST_RESULT, {"b_item": item_id})
    findings = (((latest or {}).get("result") or {}).get("check") or {}).get("findings") or []
    rows: list[dict[str, Any]] = []
    seen: set[int] = set()
    for mark in marks:
        index = mark.index
        if not 0 <= index < len(findings) or index in seen:
            raise Invalid(
                "invalid_finding_mark", f"finding {index} is not a finding of this item (or marked twice)"
            )
        finding = findings[index]
        if mark.rule and mark.rule != finding.get("rule"):
            raise Invalid(
                "invalid_finding_mark", f"finding {index} is {finding.get('rule')}, not {mark.rule}"
            )
        seen.add(index)
        rows.append(
            {
                "item_id": item_id,
                "finding_index": index,
                "rule": str(finding.get("rule", ""))[:120],
                "family": str(finding.get("family", ""))[:80],
                "field_name": str(finding.get("field", ""))[:200],
                "start": int(finding.get("start", 0)),
                "end": int(finding.get("end", 0)),
                "text": str(finding.get("text", "")),
                "mark": mark.mark,
                "note": mark.note,
            }
        )
    return rows


def public_mark(row: dict[str, Any]) -> dict[str, Any]:
    """A mark as the API, the event log and the console show it."""
    return {
        "index": row["finding_index"],
        "rule": row["rule"],
        "family": row["family"],
        "field": row["field_name"],
        "start": row["start"],
        "end": row["end"],
        "text": row["text"],
        "mark": row["mark"],
        "note": row["note"],
    }


def marks_by_decision(conn: Connection, decision_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    if not decision_ids:
        return out
    for r in conn.execute(
        select(MARKS)
        .where(MARKS.c.decision_id.in_(decision_ids))
        .order_by(MARKS.c.decision_id, MARKS.c.finding_index)
    ):
        row = dict(r._mapping)
        out.setdefault(row["decision_id"], []).append(public_mark(row))
    return out
