"""``POST /v1/check``: the contract, enqueueing, validation (4xx, never 500) and size limits."""

from __future__ import annotations

import json

from api_support import Api, api_fixture, bad_listing  # noqa: F401  (fixture "api")
from queue_support import db_url_fixture  # noqa: F401  (fixture "db_url")


def test_check_returns_contract_result_without_queueing(api: Api) -> None:
    r = api.client.post("/v1/check", json=bad_listing(), headers=api.h("service"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "sku-bad" and body["verdict"] == "block"
    spans = {(f["rule"], f["text"]) for f in body["findings"]}
    assert ("absolute.national_level", "國家級") in spans
    assert "queue" not in body
    assert api.client.get("/v1/queue/items", headers=api.h("lead")).json()["items"] == []


def test_enqueue_creates_attaches_and_supersedes(api: Api) -> None:
    listing = {**bad_listing(), "enqueue": True}
    first = api.client.post("/v1/check", json=listing, headers=api.h("service")).json()["queue"]
    assert first["action"] == "created" and first["listing_revision"] == 1
    again = api.client.post("/v1/check", json=listing, headers=api.h("service")).json()["queue"]
    assert again == {**first, "action": "attached"}
    edited = {**listing, "title": "全网最低价 保温杯 新款"}
    third = api.client.post("/v1/check", json=edited, headers=api.h("service")).json()["queue"]
    assert third["superseded"] == [first["item_id"]] and third["listing_revision"] == 2
    honest = {**listing, "title": "304不锈钢保温杯 500ml", "description": "保温12小时。"}
    fourth = api.client.post("/v1/check", json=honest, headers=api.h("service")).json()
    assert fourth["verdict"] == "pass" and fourth["queue"]["action"] == "none"
    assert fourth["queue"]["superseded"] == [third["item_id"]]
    items = api.client.get("/v1/queue/items?status=open", headers=api.h("lead")).json()["items"]
    assert items == []


def test_enqueue_needs_the_role(api: Api) -> None:
    r = api.client.post("/v1/check", json={**bad_listing(), "enqueue": True}, headers=api.h("auditor"))
    assert r.status_code == 403
    assert api.client.post("/v1/check", json=bad_listing(), headers=api.h("auditor")).status_code == 200


def test_invalid_bodies_are_422_never_500(api: Api) -> None:
    h = api.h("service", **{"Content-Type": "application/json"})
    cases = [
        b"{not json",
        b"[1, 2]",
        b'"text"',
        json.dumps({"title": "no id"}).encode(),
        json.dumps({"id": "x", "title": ""}).encode(),
        json.dumps({"id": "x", "title": "t", "category": "spaceships"}).encode(),
        json.dumps({"id": "x", "title": "t", "attributes": ["a"]}).encode(),
        json.dumps({"id": "x", "title": "t", "enqueue": "maybe"}).encode(),
    ]
    for body in cases:
        r = api.client.post("/v1/check", content=body, headers=h)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert "detail" in r.json()
    # lone surrogates (escaped or as raw bytes) must never reach the database as a 500
    for body in (
        b'{"id": "x", "title": "\\ud800 \xe6\x9c\x80\xe5\xa5\xbd", "enqueue": true}',
        b'{"id": "x", "title": "\xed\xa0\x80 \xe6\x9c\x80\xe5\xa5\xbd", "enqueue": true}',
    ):
        r = api.client.post("/v1/check", content=body, headers=h)
        assert r.status_code in (200, 422), (body, r.status_code, r.text)
    r = api.client.post("/v1/check", content=b"\xff\xfe\x00", headers=h)  # not UTF-8 at all
    assert r.status_code in (400, 422) and "detail" in r.json()


def test_oversized_body_is_413(api: Api) -> None:
    big = {"id": "x", "title": "好" * (1024 * 1024)}  # ~3 MB of UTF-8
    r = api.client.post("/v1/check", json=big, headers=api.h("service"))
    assert r.status_code == 413 and "detail" in r.json()

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b"x" * 100_000

    r = api.client.post(
        "/v1/check", content=chunks(), headers=api.h("service", **{"Content-Type": "application/json"})
    )
    assert r.status_code == 413


def test_openapi_lists_the_queue_for_signed_in_callers(api: Api) -> None:
    assert api.client.get("/openapi.json").status_code == 401
    spec = api.client.get("/openapi.json", headers=api.h("auditor")).json()
    assert "/v1/check" in spec["paths"] and "/v1/queue/items/{item_id}/decision" in spec["paths"]
    assert api.client.get("/redoc").status_code == 404  # Swagger UI and ReDoc load from a CDN: off
