"""Which images a check may read: data URIs, paths under the configured root only, no remote URLs."""

from __future__ import annotations

import base64
import io
import os

import pytest

from moderation.images.hashing import ImageError
from moderation.images.matcher import ImageChecker
from moderation.images.sources import ImageSources
from moderation.schema import Listing

try:
    from images_fixtures import photo, save_jpeg
except ImportError:  # tests/ is a package in this run
    from tests.images_fixtures import photo, save_jpeg


def data_uri(im) -> str:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def code_of(sources: ImageSources, ref: str) -> str:
    with pytest.raises(ImageError) as info:
        sources.open(ref)
    return info.value.code


def test_paths_only_under_the_root_after_resolving_symlinks(tmp_path) -> None:
    root = tmp_path / "store"
    (root / "shop").mkdir(parents=True)
    inside = save_jpeg(photo(1), root / "shop" / "a.jpg")
    secret = tmp_path / "secret.jpg"
    save_jpeg(photo(2), secret)
    os.symlink(secret, root / "shop" / "link.jpg")  # a symlink inside pointing outside
    sources = ImageSources(root)
    assert sources.open("shop/a.jpg") == inside.resolve()
    assert sources.open(str(inside)) == inside.resolve()
    assert sources.open(f"file://{inside}") == inside.resolve()
    refused = [
        str(secret),
        "../secret.jpg",
        "shop/../../secret.jpg",
        "shop/link.jpg",
        f"file://{secret}",
        "/etc/passwd",
        "/etc/definitely-not-there",
        "shop/a.jpg\x00.png",
    ]
    messages = set()
    for ref in refused:
        with pytest.raises(ImageError) as info:
            sources.open(ref)
        assert info.value.code == "path_not_allowed", ref
        messages.add(info.value.message)
    # The same answer whether or not the file outside exists: nothing to learn about the server.
    assert len(messages) == 1 and "etc" not in messages.pop()


def test_no_root_no_paths_and_no_remote(tmp_path) -> None:
    sources = ImageSources(None)
    assert code_of(sources, str(save_jpeg(photo(1), tmp_path / "a.jpg"))) == "path_not_allowed"
    assert code_of(sources, "https://example.com/a.jpg") == "remote_not_supported"
    assert code_of(sources, "http://10.0.0.1/pixel.gif") == "remote_not_supported"
    assert code_of(sources, "ftp://example.com/a.jpg") == "unsupported_url"
    assert code_of(sources, "data:image/jpeg;base64,@@@") == "unreadable_image"
    assert code_of(sources, "data:image/jpeg,plain") == "unreadable_image"
    assert isinstance(sources.open(data_uri(photo(3))), bytes)
    assert ImageSources(any_path=True).open("/any/where.jpg").as_posix() == "/any/where.jpg"


def test_checker_reads_data_uris_and_names_them_briefly(tmp_path) -> None:
    checker = ImageChecker.open(tmp_path / "none", sources=ImageSources(None))
    uri = data_uri(photo(4))
    results, findings = checker.check_listing(
        Listing(id="L1", title="t", images=[uri, str(tmp_path / "x.jpg"), "data:image/png;base64,AAAA"])
    )
    assert findings == []
    assert results[0].error is None and results[0].image.startswith("<data URI")
    assert results[1].error["code"] == "path_not_allowed"
    assert results[2].error["code"] == "unreadable_image" and "AAAA" not in results[2].error["message"]
