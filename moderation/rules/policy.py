"""The verdict policy: which severity blocks, which goes to review, when the classifier alone is enough
to ask a person. Kept in ``rules/policy.yaml`` so a platform can tune it without code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moderation.rules.pack import ACTIONS, SEVERITIES, Rule, RulePackError

_DEFAULT_ACTION = {"critical": "block", "high": "review", "medium": "review", "low": "pass"}
_DEFAULT_RISK = {"critical": 0.97, "high": 0.85, "medium": 0.65, "low": 0.15}


@dataclass(frozen=True, slots=True)
class Policy:
    severity_action: dict[str, str] = field(default_factory=lambda: dict(_DEFAULT_ACTION))
    severity_risk: dict[str, float] = field(default_factory=lambda: dict(_DEFAULT_RISK))
    #: A classifier score at or above this sends a listing with no rule finding to review.
    classifier_review_threshold: float = 0.5
    #: Rules forced to another action by id (e.g. to soften a noisy rule while it is fixed).
    rule_action: dict[str, str] = field(default_factory=dict)
    #: Attribute keys whose values are names (model, brand, trademark); with the listing's ``brand``
    #: they are proper names, and SAMR's guideline (§3.5) exempts names from the families below.
    name_attributes: tuple[str, ...] = ("品牌", "商标", "型号", "货号", "款号", "色号", "系列", "品名")
    names_exempt_families: frozenset[str] = frozenset({"absolute_claims"})

    def action_for(self, rule: Rule) -> str:
        if rule.id in self.rule_action:
            return self.rule_action[rule.id]
        return rule.action or self.severity_action[rule.severity]


def load_policy(path: Path) -> Policy:
    """Read ``policy.yaml``; a missing file means the documented defaults."""
    if not path.exists():
        return Policy()
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RulePackError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RulePackError(f"{path}: the policy must be a mapping")
    actions = {**_DEFAULT_ACTION, **(data.get("severity_action") or {})}
    risks = {**_DEFAULT_RISK, **(data.get("severity_risk") or {})}
    for sev, act in actions.items():
        if sev not in SEVERITIES or act not in ACTIONS:
            raise RulePackError(f"{path}: severity_action {sev}: {act} is not a severity → action")
    for sev, value in risks.items():
        if sev not in SEVERITIES or not 0.0 <= float(value) <= 1.0:
            raise RulePackError(f"{path}: severity_risk {sev}: {value} must be a probability")
    rule_action = data.get("rule_action") or {}
    for rid, act in rule_action.items():
        if act not in ACTIONS:
            raise RulePackError(f"{path}: rule_action {rid}: {act} is not one of {ACTIONS}")
    threshold = float((data.get("classifier") or {}).get("review_threshold", 0.5))
    if not 0.0 <= threshold <= 1.0:
        raise RulePackError(f"{path}: classifier.review_threshold must be between 0 and 1")
    names = data.get("names") or {}
    return Policy(
        name_attributes=tuple(str(k) for k in names.get("attributes", Policy.name_attributes)),
        names_exempt_families=frozenset(names.get("exempt_families", Policy.names_exempt_families)),
        severity_action=actions,
        severity_risk={k: float(v) for k, v in risks.items()},
        classifier_review_threshold=threshold,
        rule_action=dict(rule_action),
    )
