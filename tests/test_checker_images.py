"""A listing whose photo copies another seller's is flagged through the one entry point, `check`."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from moderation.checker import Checker
from moderation.cli import main
from moderation.rules.engine import RulesEngine
from tests.images_fixtures import photo, reencode, save_jpeg


def test_copied_photo_becomes_a_finding(tmp_path: Path, engine: RulesEngine) -> None:
    original = photo(11)
    catalogue = tmp_path / "catalogue"
    catalogue.mkdir()
    save_jpeg(original, catalogue / "sku-1.jpg")
    save_jpeg(photo(12), catalogue / "sku-2.jpg")
    db = tmp_path / "images.db"
    result = CliRunner().invoke(
        main, ["images", "index", str(catalogue), "--db", str(db), "--seller-id", "s-original"]
    )
    assert result.exit_code == 0, result.output

    copy = save_jpeg(reencode(original.resize((240, 180)), 40), tmp_path / "upload.jpg")
    own = save_jpeg(photo(13), tmp_path / "own.jpg")
    checker = Checker(engine, classifier=False, image_db=db)
    listing = {
        "id": "new-1",
        "title": "纯棉T恤 新款",
        "seller_id": "s-copier",
        "images": [str(copy), str(own), str(tmp_path / "missing.jpg")],
    }
    checked = checker.check(listing)
    assert checked.verdict == "review"
    copied = [f for f in checked.findings if f.family == "copied_image"]
    assert len(copied) == 1 and copied[0].field == "image" and copied[0].text == str(copy)
    by_image = {r.image: r for r in checked.images}
    assert by_image[str(copy)].match is not None and by_image[str(copy)].match.id == "sku-1.jpg"
    assert by_image[str(own)].match is None
    assert by_image[str(tmp_path / "missing.jpg")].error["code"] == "not_found"

    # The same photo from the seller who owns it is not a copy.
    same_seller = checker.check({**listing, "seller_id": "s-original", "images": [str(copy)]})
    assert not [f for f in same_seller.findings if f.family == "copied_image"]
