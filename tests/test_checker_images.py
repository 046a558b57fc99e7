"""Copied photos through the one entry point (`check`) and end to end over HTTP with a real index.

The HTTP test runs a real uvicorn server on SQLite and on PostgreSQL with an image index built by the
CLI, sends concurrent /v1/check requests with images (worker threads share the index: this used to
answer internal_error "SQLite objects created in a thread can only be used in that same thread"),
enqueues the copies and fetches both thumbnails the console shows, as a signed-in user only.
"""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from PIL import Image, ImageOps

from moderation.api import create_app
from moderation.checker import Checker
from moderation.cli import main
from moderation.rules.engine import RulesEngine
from tests.images_fixtures import photo, reencode, save_jpeg
from tests.queue_support import BACKENDS, fresh_database_url


def build_catalogue(tmp_path: Path) -> tuple[Path, Path]:
    """An image root with a catalogue indexed for seller s-original, and its index."""
    root = tmp_path / "root"
    catalogue = root / "catalogue"
    catalogue.mkdir(parents=True)
    save_jpeg(photo(11), catalogue / "sku-1.jpg")
    save_jpeg(photo(12), catalogue / "sku-2.jpg")
    db = tmp_path / "images.db"
    result = CliRunner().invoke(
        main, ["images", "index", str(catalogue), "--db", str(db), "--seller-id", "s-original", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    return root, db


def test_copied_photo_becomes_a_finding(tmp_path: Path, engine: RulesEngine, monkeypatch) -> None:
    root, db = build_catalogue(tmp_path)
    monkeypatch.setenv("MODERATION_IMAGE_ROOT", str(root))
    copy = save_jpeg(reencode(photo(11).resize((240, 180)), 40), root / "upload.jpg")
    save_jpeg(photo(13), root / "own.jpg")
    checker = Checker(engine, classifier=False, image_db=db)
    listing = {
        "id": "new-1",
        "title": "纯棉T恤 新款",
        "seller_id": "s-copier",
        "images": [str(copy), "own.jpg", "missing.jpg", str(tmp_path / "outside.jpg")],
    }
    checked = checker.check(listing)
    assert checked.verdict == "review"
    copied = [f for f in checked.findings if f.family == "copied_image"]
    assert len(copied) == 1 and copied[0].field == "image" and copied[0].text == str(copy)
    by_image = {r.image: r for r in checked.images}
    match = by_image[str(copy)].match
    assert match is not None and match.id == "sku-1.jpg"
    assert match.model_extra["reason"] == "same photo" and match.model_extra["score"] >= 0.5
    assert by_image["own.jpg"].match is None and by_image["own.jpg"].error is None
    assert by_image["missing.jpg"].error["code"] == "not_found"
    assert by_image[str(tmp_path / "outside.jpg")].error["code"] == "path_not_allowed"
    # The same photo from the seller who owns it is not a copy.
    same_seller = checker.check({**listing, "seller_id": "s-original", "images": [str(copy)]})
    assert not [f for f in same_seller.findings if f.family == "copied_image"]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path: Path, engine: RulesEngine, monkeypatch
) -> Iterator[dict]:
    root, db = build_catalogue(tmp_path)
    monkeypatch.setenv("MODERATION_IMAGE_ROOT", str(root))
    url, cleanup = fresh_database_url(request.param, tmp_path)
    checker = Checker(engine, classifier=False, image_db=db)
    app = create_app(url, checker)
    accounts = app.state.accounts
    service = accounts.create_user("svc", "service", None)
    reviewer = accounts.create_user("rev", "reviewer", "review-pass-1")
    tokens = {
        "service": accounts.create_token(service.id, "t"),
        "reviewer": accounts.create_token(reviewer.id, "t"),
    }
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield {"base": f"http://127.0.0.1:{port}", "tokens": tokens, "root": root, "app": app}
    finally:
        srv.should_exit = True
        thread.join(10)
        problems = app.state.queue.verify()
        app.state.queue.close()
        checker.images.close()
        cleanup()
        assert problems == []


def _data_uri(im: Image.Image) -> str:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def test_concurrent_checks_with_images_over_http(served: dict) -> None:
    base, tokens, root = served["base"], served["tokens"], served["root"]
    copy_path = save_jpeg(reencode(photo(11), 50), root / "copy.jpg")
    mirrored = _data_uri(ImageOps.mirror(photo(12)))
    headers = {"Authorization": f"Bearer {tokens['service']}"}

    def check(i: int) -> httpx.Response:
        body = {
            "id": f"sku-{i}",
            "title": "纯棉T恤 新款",
            "seller_id": f"s-{i}",
            "images": [
                "copy.jpg" if i % 2 else str(copy_path),
                mirrored,
                "/etc/passwd",
                "https://x.test/a.jpg",
            ],
            "enqueue": True,
        }
        return httpx.post(f"{base}/v1/check", json=body, headers=headers, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(check, range(16)))
    for r in answers:
        assert r.status_code == 200, r.text
        out = r.json()
        assert "error" not in out, out
        images = out["images"]
        assert images[0]["match"]["id"] == "sku-1.jpg" and images[0]["match"]["reason"] == "same photo"
        assert images[1]["match"]["id"] == "sku-2.jpg" and images[1]["match"]["reason"] == "mirrored"
        assert images[1]["image"].startswith("<data URI")
        assert images[2]["error"]["code"] == "path_not_allowed"
        assert images[3]["error"]["code"] == "remote_not_supported"
        assert out["verdict"] == "review" and out["queue"]
        assert all(len(img["thumb"]) == 32 for img in images[:2])
        for box in (images[0]["match"]["region"], images[0]["match"]["match_region"]):
            assert 0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1

    first = answers[0].json()["images"][0]
    anonymous = httpx.get(f"{base}/v1/images/indexed/{first['match']['id']}", timeout=10)
    assert anonymous.status_code == 401
    as_reviewer = {"Authorization": f"Bearer {tokens['reviewer']}"}
    for url in (
        f"{base}/v1/images/indexed/{first['match']['id']}",
        f"{base}/v1/images/checked/{first['thumb']}",
    ):
        r = httpx.get(url, headers=as_reviewer, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(r.content)).size[0] > 0
    for bad in (
        "/v1/images/indexed/..%2F..%2Fetc%2Fpasswd",
        "/v1/images/indexed/nope.jpg",
        "/v1/images/checked/zz",
    ):
        assert httpx.get(base + bad, headers=as_reviewer, timeout=10).status_code == 404


def test_console_shows_both_thumbnails_and_the_region(served: dict) -> None:
    base, tokens, root = served["base"], served["tokens"], served["root"]
    save_jpeg(reencode(photo(11), 60), root / "copy.jpg")
    r = httpx.post(
        f"{base}/v1/check",
        json={"id": "sku-c", "title": "纯棉T恤", "seller_id": "s-x", "images": ["copy.jpg"], "enqueue": True},
        headers={"Authorization": f"Bearer {tokens['service']}"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    item_id = r.json()["queue"]["item_id"]
    assert item_id
    with httpx.Client(base_url=base, timeout=20) as client:
        login = client.get("/review/login")
        csrf = client.cookies.get("mlogin_csrf") or ""
        client.post(
            "/review/login", data={"username": "rev", "password": "review-pass-1", "csrf_token": csrf}
        )
        listing = client.get("/review")
        assert listing.status_code == 200
        page = client.get(f"/review/items/{item_id}")
        assert page.status_code == 200
        html = page.text
        assert 'src="/v1/images/checked/' in html and 'src="/v1/images/indexed/sku-1.jpg"' in html
        assert 'class="region"' in html and "同一张图片" in html
        assert "http" not in html.split('class="images card"')[1].split("</section>")[0]
        assert login.status_code == 200
