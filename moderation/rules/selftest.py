"""Run every rule's own examples: the contract that makes rules data *with tests*.

Used by the test suite and by ``moderation rules check``, so an operator editing a pack gets the same
verdict locally that CI gives.
"""

from __future__ import annotations

from moderation.rules.engine import RulesEngine
from moderation.rules.pack import Example, Rule
from moderation.schema import Listing


def example_listing(example: Example) -> Listing:
    """The listing an example describes (its text in the given field)."""
    fields = {example.field if example.field in ("title", "description") else "title": example.text}
    return Listing(id="example", category=example.category, attributes=example.attributes, **fields)


def check_example(engine: RulesEngine, rule: Rule, example: Example, must_fire: bool) -> str | None:
    """None when the example behaves as declared, else a one-line explanation."""
    listing = example_listing(example)
    findings = engine.find(listing)
    fired = [f for f in findings if f.rule == rule.id]
    if must_fire and not fired:
        return f"{rule.source}: {rule.id} did not fire on {example.text!r} (got {[f.rule for f in findings]})"
    if not must_fire and fired:
        return f"{rule.source}: {rule.id} fired on lawful {example.text!r} at {[f.text for f in fired]}"
    for f in fired:
        source = listing.title if f.field == "title" else listing.description
        if f.field in ("title", "description") and source[f.start : f.end] != f.text:
            return f"{rule.source}: {rule.id} span {f.start}-{f.end} does not point at {f.text!r}"
    return None


def run_examples(engine: RulesEngine) -> list[str]:
    """Every failing example of every rule, as messages."""
    failures: list[str] = []
    for rule in engine.rules:
        for example in rule.fire:
            if (msg := check_example(engine, rule, example, True)) is not None:
                failures.append(msg)
        for example in rule.pass_:
            if (msg := check_example(engine, rule, example, False)) is not None:
                failures.append(msg)
    return failures


def anchor_gaps(engine: RulesEngine) -> list[str]:
    """Every pattern that can match a text holding none of its rule's anchors, or only across a sentence
    mark, with such texts: the engine searches patterns only around anchor hits and within sentences, so
    those matches would never be reported."""
    from moderation.rules.anchor_cover import covered, missed_texts, unreachable_texts
    from moderation.text.normalise import SENTENCE_PUNCT

    gaps: list[str] = []
    for rule in engine.rules:
        for pattern in rule.patterns:
            shown = f"pattern {pattern.pattern[:60]!r}…"
            if across := unreachable_texts(pattern, SENTENCE_PUNCT):
                gaps.append(
                    f"{rule.source}: {rule.id} matches {' / '.join(across)} only across a sentence mark, "
                    f"where no pattern window reaches ({shown})"
                )
            if not covered(pattern, rule.anchors) and (missed := missed_texts(pattern, rule.anchors)):
                gaps.append(
                    f"{rule.source}: {rule.id} never reports {' / '.join(missed)} (no anchor in the match; {shown})"
                )
    return gaps
