"""Outbox delivery over HTTP (roles, lease, ack, listing with a cursor) and ``moderation outbox``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from api_support import Api, api_fixture, bad_listing  # noqa: F401  (fixture "api")
from click.testing import CliRunner
from queue_support import SERVICE, add_items, db_url_fixture, reviewer  # noqa: F401  (fixture "db_url")
from sqlalchemy import update

from moderation.api.cli import outbox
from moderation.queue import DecisionIn, ReviewQueue
from moderation.queue.core import OUTBOX
from moderation.queue.db import utcnow


def _decided_item(api: Api, listing_id: str = "sku-bad") -> int:
    r = api.client.post(
        "/v1/check", json={**bad_listing(), "id": listing_id, "enqueue": True}, headers=api.h("service")
    )
    item_id = int(r.json()["queue"]["item_id"])
    claim = api.client.post(f"/v1/queue/items/{item_id}/claim", headers=api.h("reviewer")).json()
    body = {
        "outcome": "rejected",
        "reason_codes": ["absolute_claim"],
        "claim_token": claim["claim_token"],
        "version": claim["version"],
        "listing_revision": claim["item"]["listing_revision"],
        "seller_message": "请删除“全网最低价”",
    }
    assert (
        api.client.post(
            f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("reviewer")
        ).status_code
        == 200
    )
    return item_id


def _window_passes(queue: ReviewQueue) -> None:
    with queue.db.write() as conn:
        conn.execute(update(OUTBOX).values(available_at=utcnow() - timedelta(seconds=1)))


def test_outbox_roles(api: Api) -> None:
    calls = [
        ("GET", "/v1/outbox", None),
        ("POST", "/v1/outbox/lease", {}),
        ("POST", "/v1/outbox/ack", {"ids": [1]}),
    ]
    for method, path, body in calls:
        assert api.client.request(method, path, json=body).status_code == 401, path
        assert (
            api.client.request(method, path, json=body, headers={"Authorization": "Bearer nope"}).status_code
            == 401
        )
        for role in ("reviewer", "lead", "triage", "auditor"):
            r = api.client.request(method, path, json=body, headers=api.h(role))
            assert r.status_code == 403, (role, path, r.status_code)
    for role in ("service", "admin"):
        assert api.client.get("/v1/outbox", headers=api.h(role)).status_code == 200
        assert api.client.post("/v1/outbox/lease", headers=api.h(role)).json()["records"] == []


def test_lease_ack_and_list_over_http(api: Api) -> None:
    item_id = _decided_item(api)
    other = _decided_item(api, "sku-other")
    svc = api.h("service")
    assert api.client.post("/v1/outbox/lease", json={"limit": 10}, headers=svc).json()["records"] == []
    listed = api.client.get("/v1/outbox", headers=svc).json()
    assert [r["state"] for r in listed["records"]] == ["waiting", "waiting"] and listed["next_after"] is None
    _window_passes(api.app_queue())

    r = api.client.post("/v1/outbox/lease", json={"limit": 1, "lease_seconds": 30}, headers=svc)
    assert r.status_code == 200
    [record] = r.json()["records"]
    assert record["item_id"] == item_id and record["kind"] == "seller_notification"
    assert record["payload"]["message"] == "请删除“全网最低价”" and record["payload"]["outcome"] == "rejected"
    assert (
        api.client.post("/v1/outbox/lease", json={"limit": 10}, headers=api.h("admin")).json()["records"][0][
            "item_id"
        ]
        == other
    )  # the first is leased; the admin gets the other one

    missing = api.client.post("/v1/outbox/ack", json={"ids": [record["id"], 424242]}, headers=svc)
    assert missing.status_code == 404
    assert missing.json()["detail"]["code"] == "unknown_outbox_record" and missing.json()["detail"][
        "ids"
    ] == [424242]
    first = api.client.post("/v1/outbox/ack", json={"ids": [record["id"]]}, headers=svc)
    again = api.client.post("/v1/outbox/ack", json={"ids": [record["id"]]}, headers=svc)
    assert first.json() == {"acknowledged": [record["id"]], "already_acknowledged": []}
    assert again.status_code == 200 and again.json() == {
        "acknowledged": [],
        "already_acknowledged": [record["id"]],
    }

    # Only the outbox hold was moved; the reviewer may still undo. The notification was delivered,
    # so the undo writes a live withdrawal (the other item's notification is still leased).
    undo = api.client.post(f"/v1/queue/items/{item_id}/undo", headers=api.h("reviewer"))
    assert undo.status_code == 200
    pending = api.client.get("/v1/outbox", headers=svc).json()["records"]
    assert [(r["kind"], r["state"]) for r in pending] == [
        ("seller_notification", "leased"),
        ("decision_withdrawn", "ready"),
    ]
    page1 = api.client.get("/v1/outbox", params={"status": "all", "limit": 2}, headers=svc).json()
    page2 = api.client.get(
        "/v1/outbox", params={"status": "all", "limit": 2, "after": page1["next_after"]}, headers=svc
    ).json()
    assert len(page1["records"]) == 2 and len(page2["records"]) == 1 and page2["next_after"] is None
    assert api.client.get("/v1/outbox", params={"status": "sent"}, headers=svc).status_code == 422
    assert api.client.post("/v1/outbox/lease", json={"limit": 0}, headers=svc).status_code == 422
    assert api.client.post("/v1/outbox/ack", json={"ids": []}, headers=svc).status_code == 422
    assert api.client.post("/v1/outbox/ack", json={"ids": ["x"]}, headers=svc).status_code == 422


def test_ack_of_a_record_never_leased_is_409(api: Api) -> None:
    _decided_item(api)
    [record] = api.client.get("/v1/outbox", headers=api.h("service")).json()["records"]
    r = api.client.post("/v1/outbox/ack", json={"ids": [record["id"]]}, headers=api.h("service"))
    assert r.status_code == 409 and r.json()["detail"]["code"] == "not_leased"


def test_outbox_drain_cli(db_url: str, tmp_path: Path) -> None:
    queue = ReviewQueue(db_url)
    ids = add_items(queue, 3)
    for item_id in ids:
        claim = queue.workflow.claim(item_id, reviewer())
        queue.workflow.decide(
            item_id,
            reviewer(),
            DecisionIn(
                outcome="approved",
                claim_token=claim["claim_token"],
                version=claim["version"],
                listing_revision=1,
            ),
        )
    _window_passes(queue)
    late = add_items(queue, 1, start=10)[0]  # decided now: still inside its undo window
    claim = queue.workflow.claim(late, reviewer())
    queue.workflow.decide(
        late,
        reviewer(),
        DecisionIn(
            outcome="approved", claim_token=claim["claim_token"], version=claim["version"], listing_revision=1
        ),
    )

    out = tmp_path / "outbox.jsonl"
    runner = CliRunner()
    r = runner.invoke(outbox, ["drain", "--db", db_url, "--out", str(out), "--batch", "2"])
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [rec["item_id"] for rec in lines] == ids and all(
        rec["kind"] == "seller_notification" for rec in lines
    )
    assert "drained 3 records; 1 waiting" in r.output
    r = runner.invoke(outbox, ["drain", "--db", db_url, "--out", str(out)])
    assert r.exit_code == 0 and "drained 0 records" in r.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    assert queue.outbox.counts()["delivered"] == 3

    r = runner.invoke(outbox, ["list", "--db", db_url, "--status", "delivered"])
    assert r.exit_code == 0 and [json.loads(line)["id"] for line in r.output.splitlines()] == [
        rec["id"] for rec in lines
    ]
    r = runner.invoke(outbox, ["drain", "--db", db_url])  # to stdout
    assert r.exit_code == 0 and "drained 0 records" in r.output
    queue.close()
