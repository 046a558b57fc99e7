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
    res = runner.invoke(images, ["index", str(shop), str(single), "--db", db, "--seller-id", "S1", "--json"])
    assert res.exit_code == 1, res.output  # one bad file: reported, the rest indexed, status says so
    summary = json.loads(res.stdout)
    assert (summary["indexed"], summary["failed"], summary["total"]) == (3, 1, 3)
    assert summary["errors"][0]["code"] == "unreadable_image"

    query = save_jpeg(edits(photo(2))["flip"], tmp_path / "q.jpg")
    fresh = save_jpeg(photo(8), tmp_path / "fresh.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"")
    args = ["match", str(query), str(broken), str(fresh), str(single), "--db", db]
    res = runner.invoke(images, args)
    assert res.exit_code == 1, res.output  # the broken file
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(query), str(broken), str(fresh), str(single)]
    best = lines[0]["matches"][0]
    assert best["id"] == "sub/b.jpg" and best["seller_id"] == "S1" and best["reason"] == "mirrored"
    assert best["score"] >= 0.5 and best["verification"]["inliers"] >= 10
    assert lines[1] == {"image": str(broken), "matches": [], "error": lines[1]["error"]}
    assert lines[1]["error"]["code"] == "unreadable_image"
    assert lines[2]["matches"] == []
    assert lines[3]["matches"][0] == {**lines[3]["matches"][0], "id": str(single), "distance": 0}
    own = runner.invoke(images, ["match", str(query), "--db", db, "--seller-id", "S1"])
    assert own.exit_code == 0 and json.loads(own.stdout)["matches"] == []

    explained = runner.invoke(images, ["match", str(fresh), "--db", db, "--explain"])
    line = json.loads(explained.stdout)
    assert line["matches"] == [] and isinstance(line["candidates"], list)
    for cand in line["candidates"]:  # why each near candidate is not a copy
        assert {"id", "distance", "score"} <= set(cand) and cand["score"] < 0.5


def test_ids_never_overwrite_silently(tmp_path) -> None:
    db = str(tmp_path / "db")
    runner = CliRunner()
    for seller, seed in (("A", 1), ("B", 2)):
        (tmp_path / seller).mkdir()
        save_jpeg(photo(seed), tmp_path / seller / "main.jpg")
    res_a = runner.invoke(images, ["index", str(tmp_path / "A"), "--db", db, "--seller-id", "A", "--json"])
    res_b = runner.invoke(images, ["index", str(tmp_path / "B"), "--db", db, "--seller-id", "B", "--json"])
    assert res_a.exit_code == 0 and res_b.exit_code == 0
    assert json.loads(res_b.stdout)["renamed"] == 1 and json.loads(res_b.stdout)["total"] == 2
    again = runner.invoke(images, ["index", str(tmp_path / "A"), "--db", db, "--seller-id", "A", "--json"])
    assert json.loads(again.stdout)["already_indexed"] == 1 and json.loads(again.stdout)["total"] == 2

    manifest = tmp_path / "m.jsonl"
    rows = [
        {"path": "A/main.jpg", "id": "sku-9", "listing_id": "L9", "seller_id": "A", "brand": "Acme"},
        {"path": "B/main.jpg", "id": "sku-9", "listing_id": "L10", "seller_id": "B"},
        {"listing_id": "no path"},
        "not json",
    ]
    manifest.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    res = runner.invoke(images, ["index", "--manifest", str(manifest), "--db", db, "--json"])
    assert res.exit_code == 1
    summary = json.loads(res.stdout)
    # sku-9 twice: the second is refused (an explicit id is never overwritten without --replace)
    assert (summary["indexed"], summary["refused"], summary["failed"]) == (1, 1, 2)
    refused = runner.invoke(images, ["index", "--manifest", str(manifest), "--db", db, "--json"])
    assert refused.exit_code == 1 and json.loads(refused.stdout)["refused"] == 2
    assert "duplicate_id" in refused.stderr
    csv_manifest = tmp_path / "m.csv"
    csv_manifest.write_text("path,id,listing_id,seller_id,brand\nA/main.jpg,sku-9,L9,A,Acme\n")
    replaced = runner.invoke(
        images, ["index", "--manifest", str(csv_manifest), "--db", db, "--replace", "--json"]
    )
    assert replaced.exit_code == 0 and json.loads(replaced.stdout)["replaced"] == 1

    query = save_jpeg(photo(1), tmp_path / "q.jpg")
    found = json.loads(runner.invoke(images, ["match", str(query), "--db", db]).stdout)["matches"]
    assert {m["id"] for m in found} == {"main.jpg", "sku-9"}
    assert {m["listing_id"] for m in found if m["id"] == "sku-9"} == {"L9"}


def test_match_without_index_is_an_error(tmp_path) -> None:
    res = CliRunner().invoke(images, ["match", "x.jpg", "--db", str(tmp_path / "none")])
    assert res.exit_code != 0 and "no image index" in res.output
