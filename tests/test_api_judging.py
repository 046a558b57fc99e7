"""The API behind the console's issue-17 flows, on SQLite and PostgreSQL: per-finding "not a
violation" marks recorded with the decision (decision record, event log, table), search by title,
listing id and seller, actions on sellers, and the trends of the stats page."""

from __future__ import annotations

from api_support import Api, api_fixture  # noqa: F401  (fixture "api")
from queue_support import db_url_fixture  # noqa: F401  (fixture "db_url")
from test_api_queue import _decision, _enqueue_all

from moderation.queue.trends import reviewer_trends


def _claim(api: Api, item_id: int, who: str = "reviewer") -> dict:
    r = api.client.post(f"/v1/queue/items/{item_id}/claim", headers=api.h(who))
    assert r.status_code == 200, r.text
    return r.json()


def test_finding_marks_are_recorded_with_the_decision(api: Api) -> None:
    item_id, *_ = _enqueue_all(api)
    detail = api.client.get(f"/v1/queue/items/{item_id}", headers=api.h("reviewer")).json()
    findings = detail["check"]["findings"]
    assert len(findings) >= 2
    claim = _claim(api, item_id)
    # a mark for a finding the item does not have, or with another rule, refuses the whole decision
    for bad in ([{"index": 99}], [{"index": 0, "rule": "no.such_rule"}], [{"index": 0}, {"index": 0}]):
        r = api.client.post(
            f"/v1/queue/items/{item_id}/decision",
            json=_decision(claim, finding_marks=bad),
            headers=api.h("reviewer"),
        )
        assert r.status_code == 422 and r.json()["detail"]["code"] == "invalid_finding_mark", r.text
    r = api.client.post(
        f"/v1/queue/items/{item_id}/decision",
        json=_decision(claim, finding_marks=[{"index": 1, "rule": findings[1]["rule"], "note": "名称"}]),
        headers={**api.h("reviewer"), "Idempotency-Key": "k-marks"},
    )
    assert r.status_code == 200, r.text
    again = api.client.post(
        f"/v1/queue/items/{item_id}/decision",
        json=_decision(claim, finding_marks=[{"index": 1, "rule": findings[1]["rule"], "note": "名称"}]),
        headers={**api.h("reviewer"), "Idempotency-Key": "k-marks"},
    )
    assert again.json() == r.json()  # idempotent, one decision
    detail = api.client.get(f"/v1/queue/items/{item_id}", headers=api.h("auditor")).json()
    (decision,) = detail["decisions"]
    (mark,) = decision["finding_marks"]
    f = findings[1]
    assert mark == {
        "index": 1,
        "rule": f["rule"],
        "family": f["family"],
        "field": f["field"],
        "start": f["start"],
        "end": f["end"],
        "text": f["text"],
        "mark": "not_violation",
        "note": "名称",
    }
    events = api.client.get(f"/v1/queue/events?item_id={item_id}", headers=api.h("auditor")).json()["events"]
    decided = [e for e in events if e["type"] == "decided"]
    assert decided[0]["data"]["finding_marks"] == [mark]
    # a decision without marks keeps the fast path and has none
    other = _claim(api, _enqueue_all(api)[1])
    r = api.client.post(
        f"/v1/queue/items/{other['item']['id']}/decision", json=_decision(other), headers=api.h("reviewer")
    )
    assert r.status_code == 200
    assert (
        api.client.get(f"/v1/queue/items/{other['item']['id']}", headers=api.h("auditor")).json()[
            "decisions"
        ][0]["finding_marks"]
        == []
    )


def test_search_by_title_listing_id_and_seller(api: Api) -> None:
    _enqueue_all(api)

    def found(q: str) -> set[str]:
        r = api.client.get("/v1/queue/items", params={"q": q, "status": "open"}, headers=api.h("reviewer"))
        assert r.status_code == 200, r.text
        return {i["listing_id"] for i in r.json()["items"]}

    assert found("保温杯") == {"sku-1"}
    assert found("保本 稳赚") == {"sku-3"}  # every word
    assert found("sku-2") == {"sku-2"}
    assert found("s-1") == {"sku-1", "sku-2"}
    assert found("%") == set() and found("没有这个词") == set()


def test_seller_actions(api: Api) -> None:
    _enqueue_all(api)
    r = api.client.post(
        "/v1/sellers/s-1/actions", json={"kind": "hold", "note": "x"}, headers=api.h("reviewer")
    )
    assert r.status_code == 403
    r = api.client.post("/v1/sellers/s-1/actions", json={"kind": "warn"}, headers=api.h("lead"))
    assert r.status_code == 422 and r.json()["detail"]["code"] == "note_required"
    assert (
        api.client.post("/v1/sellers/s-1/actions", json={"kind": "ban"}, headers=api.h("lead")).status_code
        == 422
    )
    r = api.client.post(
        "/v1/sellers/s-1/actions", json={"kind": "hold", "note": "集中违规"}, headers=api.h("lead")
    )
    assert r.status_code == 201 and r.json()["raised_items"] == 2 and r.json()["seller"]["held"]
    items = api.client.get("/v1/queue/items", params={"seller": "s-1"}, headers=api.h("reviewer")).json()[
        "items"
    ]
    assert {i["priority"] for i in items} == {1000}
    assert api.client.get("/v1/sellers", headers=api.h("service")).json()["sellers"][0]["seller_id"] == "s-1"
    api.client.post(
        "/v1/sellers/s-1/actions", json={"kind": "warn", "note": "再次违规将暂停"}, headers=api.h("lead")
    )
    api.client.post("/v1/sellers/s-1/actions", json={"kind": "release"}, headers=api.h("lead"))
    info = api.client.get("/v1/sellers/s-1", headers=api.h("auditor")).json()
    assert not info["held"] and info["warnings"] == 1
    assert [a["kind"] for a in info["actions"]] == ["release", "warn", "hold"]
    assert api.client.get("/v1/sellers", headers=api.h("service")).json()["sellers"] == []
    assert api.client.get("/v1/sellers/nobody", headers=api.h("auditor")).json()["actions"] == []


def test_trends_per_reviewer_and_agreement(api: Api) -> None:
    ids = _enqueue_all(api)
    for item_id, who, outcome in (
        (ids[0], "reviewer", "rejected"),
        (ids[1], "reviewer", "approved"),
        (ids[2], "reviewer2", "rejected"),
    ):
        claim = _claim(api, item_id, who)
        marks = [{"index": 0}] if outcome == "approved" else []
        r = api.client.post(
            f"/v1/queue/items/{item_id}/decision",
            json=_decision(claim, outcome, finding_marks=marks),
            headers=api.h(who),
        )
        assert r.status_code == 200, r.text
    assert (
        api.client.post(
            f"/v1/queue/items/{ids[2]}/revert", json={"reason": "证据不足"}, headers=api.h("lead")
        ).status_code
        == 200
    )
    t = reviewer_trends(api.app_queue().db, days=7)
    assert len(t["daily"]) == 7 and t["daily"][-1]["created"] == 4 and t["daily"][-1]["decided"] == 2
    by = {r["name"]: r for r in t["reviewers"]}
    assert by["reviewer"]["decisions"] == 2 and by["reviewer"]["machine_agreement"] == 0.5
    assert by["reviewer"]["lead_agreement"] == 1.0 and by["reviewer"]["finding_marks"] == 1
    assert by["reviewer2"]["decisions"] == 0 and by["reviewer2"]["reverted"] == 1
    assert by["reviewer2"]["lead_agreement"] == 0.0
