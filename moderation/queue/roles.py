"""Roles and what each may do; the API checks these on every route and the service re-checks the
rules that depend on the item (escalated items, appeals, undo by the decider)."""

from __future__ import annotations

from dataclasses import dataclass

ROLES: tuple[str, ...] = ("triage", "reviewer", "lead", "admin", "auditor", "service")

#: permission -> roles holding it. ``service`` is for integrations (check, enqueue, appeals, edits).
PERMISSIONS: dict[str, frozenset[str]] = {
    "view": frozenset({"triage", "reviewer", "lead", "admin", "auditor", "service"}),
    "check": frozenset({"triage", "reviewer", "lead", "admin", "auditor", "service"}),
    "enqueue": frozenset({"triage", "lead", "admin", "service"}),
    "listing_edit": frozenset({"lead", "admin", "service"}),
    "appeal": frozenset({"lead", "admin", "service"}),
    "comment": frozenset({"triage", "reviewer", "lead", "admin"}),
    "escalate": frozenset({"triage", "reviewer", "lead", "admin"}),
    "claim": frozenset({"reviewer", "lead", "admin"}),
    "decide": frozenset({"reviewer", "lead", "admin"}),
    "undo": frozenset({"reviewer", "lead", "admin"}),
    "claim_escalated": frozenset({"lead", "admin"}),
    "assign": frozenset({"lead", "admin"}),
    "revert": frozenset({"lead", "admin"}),
    "bulk": frozenset({"lead", "admin"}),
    "priority": frozenset({"lead", "admin"}),
    "events": frozenset({"triage", "reviewer", "lead", "admin", "auditor"}),
    "stats": frozenset({"triage", "reviewer", "lead", "admin", "auditor"}),
    "users": frozenset({"admin"}),
    # the sign-in audit log (failed logins, lockouts)
    "auth_audit": frozenset({"admin", "auditor"}),
    # lease, acknowledge and list outbox records (seller notifications): the delivering integration
    "outbox": frozenset({"service", "admin"}),
}

ROLE_LABELS = {
    "triage": "分诊",
    "reviewer": "审核员",
    "lead": "组长",
    "admin": "管理员",
    "auditor": "审计",
    "service": "服务",
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: a user id (events and decisions point at it), name and role."""

    id: int
    username: str
    role: str

    def can(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]
