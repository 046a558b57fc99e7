"""The classifier reads a `general` listing with the category the rules infer for it: the model was
trained with a category tag on every text, and marketplace titles mostly arrive untagged."""

from __future__ import annotations

import pytest

from moderation.checker import Checker
from moderation.schema import Listing


@pytest.fixture(scope="module")
def checker():
    return Checker()


def test_a_general_title_is_scored_with_the_category_the_rules_infer(checker):
    listing = Listing(id="c1", title="补水保湿面霜 50g 滋润不油腻 女士护肤品")
    detection = checker.engine.detect(listing)
    assert detection.inferred is not None and detection.inferred.category == "cosmetics"
    assert checker.for_model(listing).category == "cosmetics"
    stated = listing.model_copy(update={"category": "cosmetics"})
    result = checker.check(listing)
    assert result.classifier is not None
    assert result.classifier.score == checker.check(stated).classifier.score
    assert result.category_inferred is not None and result.category_inferred.category == "cosmetics"


def test_a_stated_category_is_kept_and_an_unclear_title_stays_general(checker):
    stated = Listing(id="c2", title="补水保湿面霜 50g", category="food")
    assert checker.for_model(stated) is stated
    unclear = Listing(id="c3", title="好物推荐 包邮")
    assert checker.engine.detect(unclear).inferred is None
    assert checker.for_model(unclear) is unclear


def test_a_description_only_listing_is_inferred_from_the_start_of_its_description(checker):
    listing = Listing(id="c4", description="电子烟烟弹 多种口味 一盒三颗 顺丰包邮")
    detection = checker.engine.detect(listing)
    assert detection.inferred is not None
    assert checker.for_model(listing).category == detection.inferred.category


def test_a_huge_title_costs_little_to_tag(checker):
    listing = Listing(id="c5", title="面霜" + "好" * 200_000)
    assert checker.engine.scoring_category(listing) in ("cosmetics", "general")
