"""Every rule's own examples: those under ``fire`` must produce that rule, those under ``pass`` must not."""

from __future__ import annotations

from typing import Any

import pytest

from moderation.rules.engine import RulesEngine
from moderation.rules.pack import Example, Rule
from moderation.rules.selftest import check_example

_ENGINE = RulesEngine.load()


def _cases(fire: bool) -> list[Any]:
    return [
        pytest.param(rule, example, id=f"{rule.id}:{example.text[:24]}")
        for rule in _ENGINE.rules
        for example in (rule.fire if fire else rule.pass_)
    ]


@pytest.mark.parametrize(("rule", "example"), _cases(True))
def test_rule_fires_on_its_examples(rule: Rule, example: Example) -> None:
    assert check_example(_ENGINE, rule, example, must_fire=True) is None


@pytest.mark.parametrize(("rule", "example"), _cases(False))
def test_rule_stays_quiet_on_its_counter_examples(rule: Rule, example: Example) -> None:
    assert check_example(_ENGINE, rule, example, must_fire=False) is None


def test_every_rule_cites_a_law_and_has_both_kinds_of_example() -> None:
    for rule in _ENGINE.rules:
        assert rule.law
        assert rule.fire and rule.pass_, rule.id
