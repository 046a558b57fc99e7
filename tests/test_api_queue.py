"""The queue over HTTP: claim, decide with Idempotency-Key, 409s, undo/revert, appeals, bulk, lists,
stats and the console pages."""

from __future__ import annotations

import threading
from datetime import timedelta

from api_support import Api, api_fixture  # noqa: F401  (fixture "api")
from queue_support import db_url_fixture  # noqa: F401  (fixture "db_url")
from sqlalchemy import update

from moderation.queue.core import ITEMS
from moderation.queue.db import LOOP_LOCK_WAIT, utcnow

LISTINGS = [
    {"id": "sku-1", "title": "全网最低价 销量第一 保温杯", "category": "general", "seller_id": "s-1"},
    {"id": "sku-2", "title": "益生菌 治疗便秘 调理肠胃", "category": "food", "seller_id": "s-1"},
    {"id": "sku-3", "title": "稳健理财 保本保息 稳赚不赔", "category": "finance", "seller_id": "s-2"},
    {"id": "sku-4", "title": "國家級工艺 顶级茶叶", "category": "general", "seller_id": "s-3"},
]


def _enqueue_all(api: Api) -> list[int]:
    ids = []
    for listing in LISTINGS:
        r = api.client.post("/v1/check", json={**listing, "enqueue": True}, headers=api.h("service"))
        assert r.status_code == 200, r.text
        ids.append(r.json()["queue"]["item_id"])
    return ids


def _decision(claim: dict, outcome: str = "rejected", **kw: object) -> dict:
    return {
        "outcome": outcome,
        "reason_codes": [] if outcome == "approved" else ["absolute_claim"],
        "claim_token": claim["claim_token"],
        "version": claim["version"],
        "listing_revision": claim["item"]["listing_revision"],
        **kw,
    }


def test_claim_decide_idempotency_and_conflicts(api: Api) -> None:
    _enqueue_all(api)
    claim = api.client.post("/v1/queue/claim-next", headers=api.h("reviewer")).json()
    item_id = claim["item"]["id"]
    detail = api.client.get(f"/v1/queue/items/{item_id}", headers=api.h("reviewer")).json()
    assert detail["claim_token"] == claim["claim_token"] and detail["check"]["findings"]
    other = api.client.get(f"/v1/queue/items/{item_id}", headers=api.h("reviewer2")).json()
    assert other["claim_token"] is None and other["held_by"] == "reviewer"
    assert api.client.post(f"/v1/queue/items/{item_id}/claim", headers=api.h("reviewer2")).status_code == 409
    hb = api.client.post(
        f"/v1/queue/items/{item_id}/heartbeat",
        json={"claim_token": claim["claim_token"]},
        headers=api.h("reviewer"),
    )
    assert hb.status_code == 200
    stale = _decision(claim, version=claim["version"] - 1)
    r = api.client.post(f"/v1/queue/items/{item_id}/decision", json=stale, headers=api.h("reviewer"))
    assert r.status_code == 409 and r.json()["detail"]["code"] == "stale_version"
    body = _decision(claim, seller_message="请删除绝对化用语")
    key = {"Idempotency-Key": "abc-123"}
    first = api.client.post(
        f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("reviewer", **key)
    )
    again = api.client.post(
        f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("reviewer", **key)
    )
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    changed = api.client.post(
        f"/v1/queue/items/{item_id}/decision",
        json={**body, "outcome": "changes_requested"},
        headers=api.h("reviewer", **key),
    )
    assert changed.status_code == 422 and changed.json()["detail"]["code"] == "idempotency_key_reused"
    r = api.client.post(f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("reviewer"))
    assert r.status_code == 409 and r.json()["detail"]["code"] == "already_decided"
    assert api.client.post("/v1/queue/items/99999/claim", headers=api.h("reviewer")).status_code == 404
    bad = api.client.post(
        f"/v1/queue/items/{item_id}/decision", json={**body, "outcome": "maybe"}, headers=api.h("reviewer")
    )
    assert bad.status_code == 422
    no_reason = api.client.post(
        f"/v1/queue/items/{item_id}/decision", json={**body, "reason_codes": []}, headers=api.h("reviewer")
    )
    assert no_reason.status_code == 422


def test_claim_and_decide_while_another_thread_writes(api: Api) -> None:
    """On SQLite claim-next and decide run on the event loop when the process's write lock comes free
    within ``LOOP_LOCK_WAIT``; held longer by another thread, they are handed to the thread pool and
    still answer. (On PostgreSQL the held transaction blocks nothing.)"""
    _enqueue_all(api)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with api.app_queue().db.write():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    timer = threading.Timer(LOOP_LOCK_WAIT * 10, release.set)
    timer.start()
    claim = api.client.post("/v1/queue/claim-next", json={}, headers=api.h("reviewer"))
    holder.join()
    assert claim.status_code == 200 and claim.json()["item"] is not None, claim.text
    claim_json = claim.json()
    r = api.client.post(
        f"/v1/queue/items/{claim_json['item']['id']}/decision",
        json=_decision(claim_json),
        headers=api.h("reviewer"),
    )
    assert r.status_code == 200 and r.json()["item"]["status"] == "decided", r.text


def test_lease_expiry_over_http(api: Api) -> None:
    (item_id, *_) = _enqueue_all(api)
    claim = api.client.post(f"/v1/queue/items/{item_id}/claim", headers=api.h("reviewer")).json()
    with api.app_queue().db.write() as conn:
        conn.execute(
            update(ITEMS)
            .where(ITEMS.c.id == item_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=5))
        )
    assert api.client.post(f"/v1/queue/items/{item_id}/claim", headers=api.h("reviewer2")).status_code == 200
    for path, body in [
        ("heartbeat", {"claim_token": claim["claim_token"]}),
        ("release", {"claim_token": claim["claim_token"]}),
        ("decision", _decision(claim)),
    ]:
        r = api.client.post(f"/v1/queue/items/{item_id}/{path}", json=body, headers=api.h("reviewer"))
        assert r.status_code == 409 and r.json()["detail"]["code"] == "lease_lost", (path, r.text)


def test_undo_revert_appeal_and_stats(api: Api) -> None:
    (item_id, *_) = _enqueue_all(api)
    claim = api.client.post(f"/v1/queue/items/{item_id}/claim", headers=api.h("reviewer")).json()
    api.client.post(f"/v1/queue/items/{item_id}/decision", json=_decision(claim), headers=api.h("reviewer"))
    assert api.client.post(f"/v1/queue/items/{item_id}/undo", headers=api.h("reviewer2")).status_code == 403
    undone = api.client.post(
        f"/v1/queue/items/{item_id}/undo", json={"reclaim": True}, headers=api.h("reviewer")
    ).json()
    assert undone["item"]["status"] == "claimed" and undone["attempt"] == 2
    again = {"claim_token": undone["claim_token"], "version": undone["version"], "item": undone["item"]}
    r = api.client.post(
        f"/v1/queue/items/{item_id}/decision", json=_decision(again), headers=api.h("reviewer")
    )
    assert r.status_code == 200
    appeal = api.client.post(
        f"/v1/queue/items/{item_id}/appeal", json={"reason": "我们已有检测报告"}, headers=api.h("service")
    )
    assert appeal.status_code == 200, appeal.text
    appeal_id = appeal.json()["id"]
    assert (
        api.client.post(
            f"/v1/queue/items/{item_id}/appeal", json={"reason": "再申诉"}, headers=api.h("service")
        ).status_code
        == 409
    )
    r = api.client.post(f"/v1/queue/items/{appeal_id}/claim", headers=api.h("reviewer"))
    assert r.status_code == 403 and r.json()["detail"]["code"] == "appeal_conflict"
    claim2 = api.client.post(f"/v1/queue/items/{appeal_id}/claim", headers=api.h("reviewer2")).json()
    r = api.client.post(
        f"/v1/queue/items/{appeal_id}/decision",
        json=_decision(claim2, "approved"),
        headers=api.h("reviewer2"),
    )
    assert r.status_code == 200
    stats = api.client.get("/v1/queue/stats", headers=api.h("auditor")).json()
    assert stats["appeals"] == {"decided": 1, "overturned": 1}
    assert stats["rates"]["undo"] > 0 and stats["throughput"]["decisions"] == 2
    assert stats["queue"]["open"] == 3 and stats["queue"]["age_p95_seconds"] is not None
    assert any(r["decided"] for r in stats["rule_precision"])
    events = api.client.get(f"/v1/queue/events?item_id={item_id}", headers=api.h("auditor")).json()["events"]
    assert [e["type"] for e in events] == ["created", "claimed", "decided", "undone", "decided", "appealed"]
    assert [e["seq"] for e in events] == list(range(1, 7))


def test_bulk_lists_and_pagination(api: Api) -> None:
    ids = _enqueue_all(api)
    held = api.client.post(f"/v1/queue/items/{ids[0]}/claim", headers=api.h("reviewer")).json()
    assert held["item"]["id"] == ids[0]
    body = {"item_ids": ids, "outcome": "rejected", "reason_codes": ["false_claim"], "dry_run": True}
    preview = api.client.post("/v1/queue/bulk-decide", json=body, headers=api.h("lead")).json()
    assert preview["ok"] == 3 and preview["failed"] == 1
    done = api.client.post(
        "/v1/queue/bulk-decide", json={**body, "dry_run": False}, headers=api.h("lead")
    ).json()
    assert [r["ok"] for r in done["results"]] == [False, True, True, True]
    assert done["results"][0]["status"] == 409
    page1 = api.client.get("/v1/queue/items?limit=2&sort=oldest&status=decided", headers=api.h("lead")).json()
    page2 = api.client.get(
        f"/v1/queue/items?limit=2&sort=oldest&status=decided&cursor={page1['next_cursor']}",
        headers=api.h("lead"),
    ).json()
    seen = [i["id"] for i in page1["items"] + page2["items"]]
    assert seen == ids[1:] and page2["next_cursor"] is None
    fin = api.client.get("/v1/queue/items?category=finance", headers=api.h("lead")).json()["items"]
    assert [i["listing_id"] for i in fin] == ["sku-3"]
    seller = api.client.get("/v1/queue/items?seller=s-1&status=open", headers=api.h("lead")).json()["items"]
    assert [i["id"] for i in seller] == [ids[0]] and seller[0]["held_by"] == "reviewer"
    for bad in ("status=nope", "cursor=!!!", "limit=0", "severity=huge", "min_risk=3"):
        assert api.client.get(f"/v1/queue/items?{bad}", headers=api.h("lead")).status_code == 422, bad
    r = api.client.patch(
        f"/v1/queue/items/{ids[0]}", json={"version": 1, "priority": 99}, headers=api.h("lead")
    )
    assert r.status_code == 409
    version = api.client.get(f"/v1/queue/items/{ids[0]}", headers=api.h("lead")).json()["version"]
    r = api.client.patch(
        f"/v1/queue/items/{ids[0]}", json={"version": version, "priority": 99}, headers=api.h("lead")
    )
    assert r.status_code == 200 and r.json()["priority"] == 99


def test_console_pages_render(api: Api) -> None:
    ids = _enqueue_all(api)
    api.client.cookies.clear()
    sid, _ = api.accounts.create_session(api.accounts.get_user("reviewer"))
    api.client.cookies.set("msession", sid)
    page = api.client.get("/review?status=open&sort=oldest")
    assert page.status_code == 200 and "全网最低价" in page.text and "data-id" in page.text
    item = api.client.get(f"/review/items/{ids[0]}")
    assert item.status_code == 200
    assert '<mark class="hl sev-critical"' in item.text and "广告法第九条" in item.text
    assert api.client.get("/review/items/424242").status_code == 404
    assert api.client.get("/review/stats").status_code == 200
    assert api.client.get("/review/static/console.js").status_code == 200
