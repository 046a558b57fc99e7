"""Findings + classifier score + image matches → verdict and risk.

The verdict is the strongest action among findings (``block`` > ``review`` > ``pass``). The classifier
can raise a listing to ``review`` but never to ``block``: a score is not an explanation a seller can act
on. ``risk`` is a probability that the listing violates the law, combining the evidence as independent
signals: 1 − Π(1 − pᵢ).
"""

from __future__ import annotations

from collections.abc import Sequence

from moderation.rules.policy import Policy
from moderation.schema import VERDICT_RANK, Finding, Verdict


def decide(
    findings: Sequence[Finding],
    policy: Policy,
    classifier_score: float | None = None,
    *,
    truncated: bool = False,
    lawful_wording: bool = False,
) -> tuple[Verdict, float]:
    """Return ``(verdict, risk)`` for one listing. A listing whose text was too much to check in full
    (``truncated``) goes to review at least: what was not read cannot be passed. ``lawful_wording``: the
    rules recognised the text as wording a regulation permits or requires (moderation/rules/lawful.py),
    so the score alone does not send it to review; the risk still carries the score."""
    verdict: Verdict = "review" if truncated else "pass"
    for finding in findings:
        if VERDICT_RANK[finding.action] > VERDICT_RANK[verdict]:
            verdict = finding.action
    if (
        verdict == "pass"
        and not lawful_wording
        and classifier_score is not None
        and classifier_score >= policy.classifier_review_threshold
    ):
        verdict = "review"
    keep = 1.0
    for finding in findings:
        keep *= 1.0 - policy.severity_risk[finding.severity]
    if classifier_score is not None:
        keep *= 1.0 - min(max(classifier_score, 0.0), 1.0)
    risk = round(1.0 - keep, 4)
    return verdict, risk
