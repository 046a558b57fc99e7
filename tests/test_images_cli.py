"""``moderation images index|match`` through click's test runner."""

from __future__ import annotations

import json

from click.testing import CliRunner

from moderation.images.cli import images

try:
    from images_fixtures import edits, photo, save_jpeg
except ImportError:  # tests/ is a package in this run
    from tests.images_fixtures import edits, photo, save_jpeg


def test_index_then_match(tmp_path) -> None:
    shop = tmp_path / "shop"
    (shop / "sub").mkdir(parents=True)
    save_jpeg(photo(1), shop / "a.jpg")
    save_jpeg(photo(2), shop / "sub" / "b.jpg")
    (shop / "notes.txt").write_text("not an image")
    (shop / "bad.png").write_bytes(b"garbage")
    single = save_jpeg(photo(3), tmp_path / "c.jpg")
    db = str(tmp_path / "db")
    runner = CliRunner()
    res = runner.invoke(images, ["index", str(shop), str(single), "--db", db, "--seller-id", "S1"])
    assert res.exit_code == 0, res.output
    assert "indexed 3 image(s), 1 failed" in res.stderr

    query = save_jpeg(edits(photo(2))["flip"], tmp_path / "q.jpg")
    fresh = save_jpeg(photo(8), tmp_path / "fresh.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    args = ["match", str(query), str(broken), str(fresh), str(single), "--db", db]
    res = runner.invoke(images, args)
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(query), str(broken), str(fresh), str(single)]
    assert lines[0]["matches"][0]["id"] == "sub/b.jpg" and lines[0]["matches"][0]["seller_id"] == "S1"
    assert lines[1] == {"image": str(broken), "matches": [], "error": lines[1]["error"]}
    assert lines[1]["error"]["code"] == "unreadable_image"
    assert lines[2]["matches"] == []
    assert lines[3]["matches"][0] == {**lines[3]["matches"][0], "id": str(single), "distance": 0}
    own = runner.invoke(images, ["match", str(query), "--db", db, "--seller-id", "S1"])
    assert json.loads(own.stdout)["matches"] == []


def test_match_without_index_is_an_error(tmp_path) -> None:
    res = CliRunner().invoke(images, ["match", "x.jpg", "--db", str(tmp_path / "none")])
    assert res.exit_code != 0 and "no image index" in res.output
