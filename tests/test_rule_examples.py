"""Every rule's own examples: those under ``fire`` must produce that rule, those under ``pass`` must not."""

from __future__ import annotations

import pytest

from moderation.rules.engine import RulesEngine
from moderation.rules.pack import Example, Rule
from moderation.schema import Listing

_ENGINE = RulesEngine.load()


def _cases(kind: str) -> list[tuple[Rule, Example]]:
    out = []
    for rule in _ENGINE.rules:
        for example in rule.fire if kind == "fire" else rule.pass_:
            out.append(pytest.param(rule, example, id=f"{rule.id}:{example.text[:20]}"))
    return out


def _listing(example: Example) -> Listing:
    text_field = {"title": example.text} if example.field == "title" else {"description": example.text}
    return Listing(id="example", category=example.category, attributes=example.attributes, **text_field)


@pytest.mark.parametrize(("rule", "example"), _cases("fire"))
def test_rule_fires_on_its_examples(rule: Rule, example: Example) -> None:
    findings = _ENGINE.find(_listing(example))
    fired = [f for f in findings if f.rule == rule.id]
    assert fired, f"{rule.id} ({rule.source}) did not fire on {example.text!r}; got {[f.rule for f in findings]}"
    for f in fired:
        original = example.text if example.field == "title" else example.text
        assert original[f.start : f.end] == f.text


@pytest.mark.parametrize(("rule", "example"), _cases("pass"))
def test_rule_stays_quiet_on_its_counter_examples(rule: Rule, example: Example) -> None:
    findings = _ENGINE.find(_listing(example))
    fired = [f for f in findings if f.rule == rule.id]
    assert not fired, f"{rule.id} ({rule.source}) fired on lawful {example.text!r}: {[f.text for f in fired]}"
