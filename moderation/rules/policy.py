"""The verdict policy: which severity blocks, which goes to review, when the classifier alone is enough
to ask a person, and which platform rules a platform switches on. Kept in ``rules/policy.yaml`` so a
platform can tune it without code."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from moderation.rules.pack import ACTIONS, Rule, RulePackError
from moderation.schema import SEVERITIES

_DEFAULT_ACTION = {"critical": "block", "high": "review", "medium": "review", "low": "pass"}
_DEFAULT_RISK = {"critical": 0.97, "high": 0.85, "medium": 0.65, "low": 0.15}
#: What a platform switch may say: on (the rule's own action), off (findings pass: shown, never held), or
#: a forced action. YAML 1.1 reads a bare on/off as a boolean, so booleans are accepted too.
_SWITCH_VALUES: dict[object, str | None] = {
    True: None,
    "on": None,
    "true": None,
    "yes": None,
    False: "pass",
    "off": "pass",
    "false": "pass",
    "no": "pass",
    "pass": "pass",
    "review": "review",
    "block": "block",
}


def _switch(value: object, where: str) -> str | None:
    key = value.lower() if isinstance(value, str) else value
    if key not in _SWITCH_VALUES:
        raise RulePackError(f"{where}: {value!r} must be on, off, pass, review or block")
    return _SWITCH_VALUES[key]


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
    #: Platform switches (``platform_rules`` in policy.yaml): family or rule id → forced action, where
    #: ``pass`` means switched off and ``""`` switched on (the rule's own action); absent means on.
    platform_families: dict[str, str] = field(default_factory=dict)
    platform_rules: dict[str, str] = field(default_factory=dict)
    #: Brand owners and authorised resellers on record: seller id → brands (folded) they may sell.
    brand_owners: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Families a brand owner's listing of its own brand is exempt from.
    brand_owner_families: frozenset[str] = frozenset({"counterfeit_signals", "brand_keyword_misuse"})

    def action_for(self, rule: Rule) -> str:
        if rule.id in self.rule_action:
            return self.rule_action[rule.id]
        # A rule's own switch wins over its family's; "" means switched on explicitly (own action).
        switched = self.platform_rules.get(rule.id)
        if switched is None:
            switched = self.platform_families.get(rule.family)
        if switched:
            return switched
        return rule.action or self.severity_action[rule.severity]

    def enabled(self, rule: Rule) -> bool:
        """False when a platform switched the rule off: an engine that honours this drops the rule's
        findings altogether (today's engine reports them with action ``pass`` through ``action_for``)."""
        if rule.id in self.platform_rules:
            return self.platform_rules[rule.id] != "pass"
        return self.platform_families.get(rule.family) != "pass"

    def is_brand_owner(self, seller_id: str | None, brand: str | None) -> bool:
        """Whether the seller is on record as the owner or an authorised reseller of ``brand``."""
        if not seller_id or not brand:
            return False
        from moderation.text.normalise import fold_term

        return fold_term(brand) in self.brand_owners.get(seller_id, frozenset())

    def owner_exempt(self, rule: Rule, seller_id: str | None, brand: str | None) -> bool:
        """A finding of ``rule`` on a listing of ``brand`` by ``seller_id`` is covered by the allow-list."""
        return rule.family in self.brand_owner_families and self.is_brand_owner(seller_id, brand)


_DEFAULTS = Policy()


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
    families, rules, owners = _platform_rules(data.get("platform_rules"), path)
    return Policy(
        platform_families=families,
        platform_rules=rules,
        brand_owners=owners,
        # Policy is a slotted dataclass: its defaults live on an instance, not on the class.
        name_attributes=tuple(str(k) for k in names.get("attributes", _DEFAULTS.name_attributes)),
        names_exempt_families=frozenset(names.get("exempt_families", _DEFAULTS.names_exempt_families)),
        severity_action=actions,
        severity_risk={k: float(v) for k, v in risks.items()},
        classifier_review_threshold=threshold,
        rule_action=dict(rule_action),
    )


def _platform_rules(raw: Any, path: Path) -> tuple[dict[str, str], dict[str, str], dict[str, frozenset[str]]]:
    """``platform_rules: {families: {family: on|off|review|block}, rules: {id: …}, brand_owners: {…}}``."""
    if raw is None:
        return {}, {}, {}
    if not isinstance(raw, dict):
        raise RulePackError(f"{path}: platform_rules must be a mapping")
    unknown = set(raw) - {"families", "rules", "brand_owners"}
    if unknown:
        raise RulePackError(f"{path}: platform_rules has unknown keys {sorted(unknown)}")
    switches: list[dict[str, str]] = []
    for key in ("families", "rules"):
        table = raw.get(key) or {}
        if not isinstance(table, dict):
            raise RulePackError(
                f"{path}: platform_rules.{key} must be a mapping of name: on|off|review|block"
            )
        forced = {}
        for name, value in table.items():
            action = _switch(value, f"{path}: platform_rules.{key}.{name}")
            forced[str(name)] = action or ""  # "": on, with the rule's own action
        switches.append(forced)
    owners_raw = raw.get("brand_owners") or {}
    if not isinstance(owners_raw, dict):
        raise RulePackError(f"{path}: platform_rules.brand_owners must map seller ids to lists of brands")
    from moderation.text.normalise import fold_term

    owners: dict[str, frozenset[str]] = {}
    for seller, brands in owners_raw.items():
        if isinstance(brands, str):
            brands = [brands]
        if not isinstance(brands, list) or not all(isinstance(b, str) and b.strip() for b in brands):
            raise RulePackError(f"{path}: platform_rules.brand_owners.{seller} must be a list of brand names")
        owners[str(seller)] = frozenset(fold_term(b) for b in brands)
    return switches[0], switches[1], owners
