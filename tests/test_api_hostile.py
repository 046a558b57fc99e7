"""Hostile input and faults (issue 12): bounded check cost at the server, no 5xx for anything a client
can send, listings never kept out of the queue by odd characters, throttled logins, hardening."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from api_support import PASSWORD, Api, api_fixture, bad_listing  # noqa: F401  (fixture "api")
from fastapi.testclient import TestClient
from queue_support import db_url_fixture, queue_fixture  # noqa: F401  (fixtures "db_url", "queue")

from moderation.api import create_app
from moderation.api.checkpool import CheckPool, Saturated
from moderation.api.settings import Settings
from moderation.checker import Checker
from moderation.queue.safety import INT_MAX
from moderation.rules import engine as engine_module
from moderation.rules.engine import Detection
from moderation.schema import Listing

BIG = str(INT_MAX + 1)
HUGE = "9" * 40


def enqueue(api: Api, listing: dict[str, Any]) -> dict[str, Any]:
    r = api.client.post("/v1/check", json={**listing, "enqueue": True}, headers=api.h("service"))
    assert r.status_code == 200, r.text
    return r.json()


# -- the check pool ---------------------------------------------------------------------------------


def test_check_pool_refuses_when_full_and_fails_waiting_jobs_on_close() -> None:
    pool = CheckPool(1, max_waiting=1, max_waiting_heavy=0)
    gate = threading.Event()
    running = pool.submit(gate.wait, 5)
    deadline = time.monotonic() + 5
    while pool.snapshot()["busy"] < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    waiting = pool.submit(lambda: "done")
    with pytest.raises(Saturated):
        pool.submit(lambda: "refused")
    with pytest.raises(Saturated):  # heavy: one slot at most (all but one of one worker = 1), no wait list
        pool.submit(lambda: "heavy", heavy=True)
    pool.close()
    with pytest.raises(Saturated):
        waiting.result(1)
    gate.set()
    assert running.result(5) is True
    with pytest.raises(Saturated):
        pool.submit(lambda: "after close")


def test_heavy_jobs_leave_a_thread_for_light_ones() -> None:
    pool = CheckPool(2, max_waiting=4, max_waiting_heavy=4)
    gate = threading.Event()
    heavy = [pool.submit(gate.wait, 5, heavy=True) for _ in range(3)]
    light = pool.submit(lambda: threading.current_thread().name)
    assert light.result(2).startswith("check-")  # served while every heavy job waits or runs
    assert pool.snapshot()["busy_heavy"] == 1
    gate.set()
    assert all(f.result(5) for f in heavy)
    pool.close()


class BlockingEngine:
    """A rules engine whose ``detect`` waits for a gate and records the thread it ran on."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.gate, self.threads = engine, threading.Event(), []
        self.policy = engine.policy

    def detect(self, listing: Listing, *, budget_s: float | None = None) -> Any:
        self.threads.append(threading.current_thread().name)
        self.gate.wait(10)
        return self.engine.detect(listing)


@pytest.fixture(name="tight")
def tight_fixture(tmp_path: Any, engine: Any) -> Iterator[tuple[TestClient, BlockingEngine, str]]:
    blocking = BlockingEngine(engine)
    settings = Settings(check_workers=1, check_max_waiting=1, password_hashing="cheap", retry_after_s=2)
    app = create_app(f"sqlite:///{tmp_path / 'q.db'}", Checker(blocking, classifier=False), settings=settings)  # type: ignore[arg-type]
    accounts = app.state.accounts
    token = accounts.create_token(accounts.create_user("svc", "service").id, "t")
    with TestClient(app) as client:
        yield client, blocking, token
    app.state.queue.close()


def test_saturated_pool_answers_503_with_retry_after_and_health_stays_up(tight: Any) -> None:
    client, blocking, token = tight
    h = {"Authorization": f"Bearer {token}"}
    results: list[Any] = []

    def post(i: int) -> None:
        results.append(client.post("/v1/check", json={"id": f"a{i}", "title": "最佳保温杯"}, headers=h))

    threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]  # one runs, one waits
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while client.app.state.check_pool.snapshot()["waiting"] < 1 and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    started = time.monotonic()
    r = client.post("/v1/check", json={"id": "c", "title": "最佳保温杯"}, headers=h)
    assert (
        r.status_code == 503 and r.headers["retry-after"] == "2" and r.json()["detail"]["code"] == "saturated"
    )
    assert time.monotonic() - started < 5  # refused at once, not queued behind the gate (10 s)
    assert client.get("/health").status_code == 200  # the loop is free: checks run in the pool
    blocking.gate.set()
    for t in threads:
        t.join(10)
    assert sorted(r.status_code for r in results) == [200, 200]
    assert blocking.threads and all(name.startswith("check-") for name in blocking.threads)


class CostlyEngine:
    """``detect`` with a budget that raises the engine's CheckBudgetExceeded on a marker word."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.policy, self.budgets = engine, engine.policy, []

    def detect(self, listing: Listing, *, budget_s: float | None = None) -> Any:
        self.budgets.append(budget_s)
        if "昂贵" in listing.title:
            raise engine_module.CheckBudgetExceeded("over budget")
        return self.engine.detect(listing)


def test_a_listing_over_its_budget_is_too_costly_and_still_queued(
    db_url: str, engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    costly = CostlyEngine(engine)
    app = create_app(
        db_url,
        Checker(costly, classifier=False),  # type: ignore[arg-type]
        settings=Settings(password_hashing="cheap", check_budget_s=0.5),
    )
    accounts = app.state.accounts
    h = {"Authorization": f"Bearer {accounts.create_token(accounts.create_user('svc', 'service').id, 't')}"}
    lead = {"Authorization": f"Bearer {accounts.create_token(accounts.create_user('lead', 'lead').id, 't')}"}
    with TestClient(app) as client:
        r = client.post("/v1/check", json={"id": "x", "title": "昂贵 " * 50, "enqueue": True}, headers=h)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["error"]["code"] == "too_costly" and body["queue"]["action"] == "created"
        assert body["queue"]["flags"] == ["check_error"]
        assert costly.budgets == [0.5]
        [item] = client.get("/v1/queue/items?flag=check_error", headers=lead).json()["items"]
        assert (
            item["verdict"] == "review"
            and item["max_severity"] == "high"
            and item["flags"] == ["check_error"]
        )
        detail = client.get(f"/v1/queue/items/{item['id']}", headers=lead).json()
        assert detail["check"]["error"]["code"] == "too_costly"
    problems = app.state.queue.verify()
    app.state.queue.close()
    assert problems == []


# -- no 5xx for anything a client can send ------------------------------------------------------


def test_unstorable_characters_and_long_ids_still_reach_the_queue(api: Api) -> None:
    nul = {
        "id": "sku-\x00nul",
        "title": "全网最低价\x00 保温杯",
        "seller_id": "s-\x00",
        "attributes": {"产\x00地": "最\x00佳"},
    }
    body = enqueue(api, nul)
    assert body["verdict"] == "block" and set(body["sanitized"]) == {"id", "title", "seller_id", "attributes"}
    assert body["queue"]["action"] == "created" and body["queue"]["flags"] == ["sanitized"]
    assert "\x00" not in body["id"]
    long_id = "L" * 300
    body = enqueue(api, {"id": long_id, "title": "销量第一 保温杯", "seller_id": "S" * 250})
    queued = body["queue"]
    assert body["id"] == long_id and queued["action"] == "created" and queued["flags"] == ["long_id"]
    assert len(queued["listing_id"]) == 200 and queued["listing_id"].startswith("L" * 175)
    assert (
        enqueue(api, {"id": long_id, "title": "销量第一 保温杯", "seller_id": "S" * 250})["queue"]["action"]
        == "attached"
    )
    detail = api.client.get(f"/v1/queue/items/{queued['item_id']}", headers=api.h("lead")).json()
    assert detail["listing"]["original_id"] == long_id
    r = api.client.delete(f"/v1/listings/{long_id}", headers=api.h("service"))  # the id the seller knows
    assert r.status_code == 200 and r.json()["superseded"] == [queued["item_id"]]
    # An unpaired surrogate is not Unicode text: the JSON parser refuses it (422) on both backends.
    surrogate = b'{"id": "x\\ud800", "title": "\\udfff \xe6\x9c\x80\xe5\xa5\xbd", "enqueue": true}'
    r = api.client.post(
        "/v1/check", content=surrogate, headers=api.h("service", **{"Content-Type": "application/json"})
    )
    assert r.status_code == 422, r.text
    flagged = api.client.get("/v1/queue/items?flag=sanitized", headers=api.h("lead")).json()["items"]
    assert len(flagged) == 1


def test_intake_stores_surrogates_in_a_safe_form(queue: Any) -> None:
    """Other callers of ``Intake.enqueue`` (the bulk audit) may hand over any Python string."""
    from queue_support import SERVICE, result_for

    item = Listing.model_construct(
        id="s\ud800",
        title="最\udfff佳 保温杯",
        description="",
        category="general",
        seller_id=None,
        brand=None,
        attributes={},
        images=[],
    )
    out = queue.intake.enqueue(item, result_for(item), SERVICE)
    assert out["action"] == "created" and out["flags"] == ["sanitized"] and out["listing_id"] == "s\ufffd"


def test_malformed_requests_are_4xx_never_5xx(api: Api) -> None:
    item = enqueue(api, bad_listing())["queue"]["item_id"]
    lead, h = api.h("lead"), api.h("admin")
    page = api.client.get("/v1/queue/items?limit=1&status=open", headers=lead).json()
    assert page["next_cursor"] is None
    enqueue(api, {**bad_listing(), "id": "sku-2"})
    cursor = api.client.get("/v1/queue/items?limit=1&status=open", headers=lead).json()["next_cursor"]
    payload, _, tag = cursor.partition(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + tag
    requests: list[tuple[str, str, Any]] = [
        ("GET", f"/v1/queue/items/{BIG}", None),
        ("GET", f"/v1/queue/items/{HUGE}", None),
        ("GET", "/v1/queue/items/-5", None),
        ("POST", f"/v1/queue/items/{HUGE}/claim", None),
        (
            "POST",
            f"/v1/queue/items/{item}/decision",
            {"outcome": "approved", "claim_token": "t", "version": HUGE, "listing_revision": 1},
        ),
        ("PATCH", f"/v1/queue/items/{item}", {"version": int(BIG), "priority": 1}),
        ("POST", "/v1/queue/bulk-decide", {"item_ids": [int(HUGE)], "outcome": "approved"}),
        ("POST", "/v1/outbox/ack", {"ids": [int(HUGE)]}),
        ("GET", f"/v1/queue/events?after={HUGE}", None),
        ("GET", f"/v1/queue/events?item_id={BIG}", None),
        ("GET", f"/v1/outbox?after={HUGE}", None),
        ("DELETE", f"/v1/users/admin/tokens/{HUGE}", None),
        ("GET", "/v1/queue/items?min_age_hours=inf", None),
        ("GET", "/v1/queue/items?max_age_hours=1e300", None),
        ("GET", "/v1/queue/items?min_age_hours=nan", None),
        ("GET", "/v1/queue/items?min_risk=nan", None),
        ("GET", "/v1/queue/stats?hours=inf", None),
        ("GET", "/v1/queue/stats?hours=nan", None),
        ("GET", f"/v1/queue/items?status=open&limit=1&cursor={tampered}", None),
        ("GET", f"/v1/queue/items?status=open&limit=1&sort=oldest&cursor={cursor}", None),  # another sort's
        ("GET", "/v1/queue/items?cursor=W10", None),
        ("GET", "/v1/queue/items?cursor=..", None),
        ("GET", "/v1/queue/items?seller=a%00b", None),
        ("GET", "/v1/queue/items?family=%00", None),
        ("GET", "/v1/queue/items?status=%00", None),
        ("GET", "/v1/outbox?kind=%00", None),
        ("POST", f"/v1/queue/items/{item}/comments", {"text": "nul \x00 here"}),
        ("POST", f"/v1/queue/items/{item}/comments", {"text": "\ud800"}),
        ("POST", f"/v1/queue/items/{item}/escalate", {"note": "\x00"}),
        ("POST", "/v1/users", {"username": "a\x00b", "role": "reviewer"}),
        ("GET", "/v1/users/a%00b/tokens", None),
        ("DELETE", "/v1/listings/%00", None),
        ("POST", f"/v1/queue/items/{item}/assign", {"username": "x\x00"}),
        ("POST", "/v1/queue/claim-next", {"family": "\x00"}),
    ]
    for method, url, body in requests:
        content = None if body is None else json.dumps(body).encode()  # escapes surrogates as \\udxxx
        r = api.client.request(
            method, url, content=content, headers={**h, "Content-Type": "application/json"}
        )
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
        assert "detail" in r.json()
    assert api.client.get("/v1/queue/items/-5", headers=h).status_code == 422
    assert (
        api.client.get(f"/v1/queue/items?status=open&limit=1&cursor={tampered}", headers=h).json()["detail"][
            "code"
        ]
        == "invalid_cursor"
    )
    r = api.client.delete("/v1/listings/%00", headers=api.h("service"))  # a NUL id maps to its safe form
    assert r.status_code == 404
    # the console's filters drop what no database can compare
    _login(api, "lead", PASSWORD)
    for query in ("age=inf", "age=1e300", "seller=%00", "cursor=%00", "cursor=abc.def", "family=%25"):
        assert api.client.get(f"/review?{query}").status_code == 200, query
    page = api.client.get(f"/review/items/{HUGE}")  # a person gets a Chinese page, not JSON (issue 17)
    assert page.status_code == 404 and "text/html" in page.headers["content-type"] and "条目" in page.text


def test_like_wildcards_in_filters_match_literally(api: Api) -> None:
    enqueue(api, bad_listing())
    lead = api.h("lead")
    assert len(api.client.get("/v1/queue/items?family=absolute_claims", headers=lead).json()["items"]) == 1
    for wildcard in ("%", "_", "absolute%", "absolute_claim_"):
        assert (
            api.client.get(f"/v1/queue/items?family={wildcard.replace('%', '%25')}", headers=lead).json()[
                "items"
            ]
            == []
        ), wildcard
    r = api.client.post("/v1/queue/claim-next", json={"family": "%"}, headers=api.h("reviewer"))
    assert r.status_code == 200 and r.json()["item"] is None


def test_assignment_only_to_active_users_whose_role_may_act(api: Api) -> None:
    item = enqueue(api, bad_listing())["queue"]["item_id"]
    lead = api.h("lead")
    assert (
        api.client.post(f"/v1/queue/items/{item}/escalate", json={"note": "hard"}, headers=lead).status_code
        == 200
    )
    r = api.client.post(f"/v1/queue/items/{item}/assign", json={"username": "reviewer"}, headers=lead)
    assert r.status_code == 403 and r.json()["detail"]["code"] == "escalated"
    assert (
        api.client.patch("/v1/users/lead", json={"active": False}, headers=api.h("admin")).status_code == 200
    )
    r = api.client.post(f"/v1/queue/items/{item}/assign", json={"username": "lead"}, headers=api.h("admin"))
    assert r.status_code == 422 and r.json()["detail"]["code"] == "user_disabled"
    r = api.client.post(f"/v1/queue/items/{item}/assign", json={"username": "admin"}, headers=api.h("admin"))
    assert r.status_code == 200 and r.json()["claimed_by"] == api.ids["admin"]


# -- logins -----------------------------------------------------------------------------------------


def _login(api: Api, username: str, password: str) -> Any:
    page = api.client.get("/review/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return api.client.post(
        "/review/login",
        data={"username": username, "password": password, "csrf_token": csrf},
        follow_redirects=False,
    )


def test_wrong_passwords_lock_the_account_then_back_off(api: Api) -> None:
    limit = api.accounts.settings.login_account_failures
    for _ in range(limit):
        assert _login(api, "reviewer", "wrong password").status_code == 303
    r = _login(api, "reviewer", PASSWORD)  # the right password, but locked: not even checked
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "msession" not in r.cookies
    assert "登录失败次数过多" in r.text
    for _ in range(15):  # 20 attempts in all: every one after the lock refused
        assert _login(api, "reviewer", "wrong password").status_code == 429
    assert _login(api, "lead", PASSWORD).status_code == 303  # other accounts are not locked
    events = api.client.get("/v1/audit/logins", headers=api.h("auditor")).json()["events"]
    types = [e["type"] for e in events]
    assert types.count("login_failed") == limit and types.count("login_locked") == 1 and "login_ok" in types
    locked = next(e for e in events if e["type"] == "login_locked")
    assert locked["username"] == "reviewer" and locked["data"]["key"] == "user"
    assert api.client.get("/v1/audit/logins", headers=api.h("reviewer")).status_code == 403
    # the lock runs out: one more failure doubles it; success clears the account's count
    db = api.accounts.db
    from sqlalchemy import text

    with db.write() as conn:
        conn.execute(
            text("UPDATE login_throttle SET locked_until = :t WHERE key = 'user:reviewer'"),
            {"t": "2000-01-01 00:00:00"},
        )
    assert _login(api, "reviewer", "wrong password").status_code == 303
    events = api.client.get("/v1/audit/logins", headers=api.h("auditor")).json()["events"]
    assert [e["data"]["seconds"] for e in events if e["type"] == "login_locked"] == [30.0, 60.0]


def test_an_address_is_locked_after_failures_across_accounts(api: Api) -> None:
    api.accounts.settings.login_address_failures = 4
    for name in ("a1", "a2", "a3", "a4"):
        assert _login(api, name, "wrong password").status_code == 303
    r = _login(api, "lead", PASSWORD)
    assert r.status_code == 429
    events = api.client.get("/v1/audit/logins", headers=api.h("auditor")).json()["events"]
    assert any(e["type"] == "login_locked" and e["data"]["key"] == "addr" for e in events)


def test_password_checks_are_bounded_and_refused_quickly_when_full(api: Api) -> None:
    accounts = api.accounts
    accounts._hashers = CheckPool(1, max_waiting=0, nice=19, name="password")
    gate = threading.Event()
    accounts._hashers.submit(gate.wait, 10)  # the one password thread is busy, nothing may wait
    try:
        started = time.monotonic()
        r = _login(api, "reviewer", PASSWORD)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert time.monotonic() - started < 5  # at once, not after the busy thread's 10 s
    finally:
        gate.set()
    # The busy job's future resolves a moment before its thread counts itself free; with no room to
    # wait, a login in that moment would be refused again, so wait for the thread to be free.
    deadline = time.monotonic() + 10
    while accounts._hashers.snapshot()["busy"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _login(api, "reviewer", PASSWORD).status_code == 303
    events = api.client.get("/v1/audit/logins", headers=api.h("auditor")).json()["events"]
    assert [e["type"] for e in events][-2:] == ["login_busy", "login_ok"]


def test_strong_password_hashing_is_argon2id_64_mib() -> None:
    from moderation.api.accounts import make_hasher

    strong = make_hasher("strong")
    assert strong.memory_cost == 65536 and strong.time_cost >= 3 and strong.type.name == "ID"
    assert Settings().password_hashing == "strong"


def test_the_suite_hashes_passwords_cheaply() -> None:
    """conftest.py: the environment makes ``from_env`` cheap, and a production-cost hash in a test
    fails instead of silently costing 64 MiB and three passes per user."""
    from moderation.api.accounts import make_hasher

    assert Settings.from_env().password_hashing == "cheap"
    cheap = make_hasher("cheap")
    assert cheap.verify(cheap.hash(PASSWORD), PASSWORD)
    with pytest.raises(AssertionError, match="production cost"):
        make_hasher("strong").hash(PASSWORD)


# -- hardening ----------------------------------------------------------------------------------


def test_security_headers_docs_and_openapi(api: Api) -> None:
    for url in ("/health", "/review/login", "/v1/me"):
        r = api.client.get(url)
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "http" not in csp
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert api.client.get("/openapi.json").status_code == 401
    r = api.client.get("/docs", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    _login(api, "auditor", PASSWORD)
    page = api.client.get("/docs")
    assert page.status_code == 200 and "/v1/queue/items/{item_id}/decision" in page.text
    assert "cdn" not in page.text.lower() and '<script src="http' not in page.text
    assert api.client.get("/openapi.json").status_code == 200  # a console session is a credential too


def test_secure_cookies_setting(api: Api) -> None:
    r = _login(api, "reviewer", PASSWORD)
    assert "secure" not in r.headers["set-cookie"].lower()
    api.client.app.state.settings.secure_cookies = True  # type: ignore[attr-defined]
    page = api.client.get("/review/login")
    assert "secure" in page.headers["set-cookie"].lower()
    r = _login(api, "reviewer", PASSWORD)
    assert all("secure" in c.lower() for c in r.headers.get_list("set-cookie"))


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(check_workers=3, secure_cookies=True, check_budget_s=1.5, heavy_timeout_s=7.5)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings.from_env() == settings


# -- a dropped PostgreSQL connection ------------------------------------------------------------


def test_dropped_postgres_connections_are_retried_not_500(rules_checker: Checker) -> None:
    """Every connection of the server is terminated (as a PostgreSQL restart or an idle killer
    would) between requests: each operation runs once more on a fresh connection and succeeds."""
    import uuid

    from queue_support import PG_URL, ensure_postgres
    from sqlalchemy import create_engine, text

    from moderation.queue.db import temporary_schema

    ensure_postgres()
    tag = f"hostile_{uuid.uuid4().hex[:8]}"
    url, drop = temporary_schema(PG_URL, "t_", "%20-csynchronous_commit%3Doff")
    app = create_app(
        f"{url}&application_name={tag}", rules_checker, settings=Settings(password_hashing="cheap")
    )
    accounts = app.state.accounts
    tokens = {
        role: accounts.create_token(accounts.create_user(role, role).id, "t")
        for role in ("service", "reviewer", "lead")
    }
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")

    def kill() -> int:
        with admin.connect() as conn:
            return len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :tag"
                    ),
                    {"tag": tag},
                ).all()
            )

    def h(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    try:
        with TestClient(app) as client:
            for i in range(4):
                r = client.post(
                    "/v1/check",
                    json={**bad_listing(), "id": f"sku-{i}", "enqueue": True},
                    headers=h("service"),
                )
                assert r.status_code == 200
            assert client.get("/v1/queue/items", headers=h("lead")).status_code == 200
            codes = []
            for _ in range(3):
                assert kill() >= 1
                claim = client.post("/v1/queue/claim-next", json={}, headers=h("reviewer"))
                codes.append(claim.status_code)
                body = claim.json()
                assert kill() >= 1
                decision = {
                    "outcome": "approved",
                    "claim_token": body["claim_token"],
                    "version": body["version"],
                    "listing_revision": body["item"]["listing_revision"],
                }
                r = client.post(
                    f"/v1/queue/items/{body['item']['id']}/decision", json=decision, headers=h("reviewer")
                )
                codes.append(r.status_code)
                kill()
                codes.append(client.get("/v1/queue/items?status=decided", headers=h("lead")).status_code)
                kill()
                codes.append(
                    client.get(f"/v1/queue/items/{body['item']['id']}", headers=h("lead")).status_code
                )
            assert codes == [200] * len(codes)
            decided = client.get("/v1/queue/items?status=decided", headers=h("lead")).json()["items"]
            assert len(decided) == 3
        assert app.state.queue.verify() == []
    finally:
        app.state.queue.close()
        admin.dispose()
        drop()


class DetectingEngine:
    """An engine with ``detect(listing, budget_s=…)`` that caps a listing's findings (``truncated``)."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.policy = engine, engine.policy

    def detect(self, listing: Listing, *, budget_s: float | None = None) -> Any:
        detection = self.engine.detect(listing)
        return Detection(detection.findings[:2], truncated=len(detection.findings) > 2)


def test_truncated_findings_are_said_and_flagged(tmp_path: Any, engine: Any) -> None:
    app = create_app(
        f"sqlite:///{tmp_path / 'q.db'}",
        Checker(DetectingEngine(engine), classifier=False),  # type: ignore[arg-type]
        settings=Settings(password_hashing="cheap"),
    )
    accounts = app.state.accounts
    h = {"Authorization": f"Bearer {accounts.create_token(accounts.create_user('svc', 'service').id, 't')}"}
    with TestClient(app) as client:
        body = client.post(
            "/v1/check", json={"id": "t", "title": "最佳 " * 20, "enqueue": True}, headers=h
        ).json()
        assert body["truncated"] is True and len(body["findings"]) == 2
        assert body["queue"]["flags"] == ["truncated"]
        short = client.post("/v1/check", json={"id": "u", "title": "最佳"}, headers=h).json()
        assert "truncated" not in short
    app.state.queue.close()


@pytest.mark.slow
def test_heavy_listings_run_in_a_separate_process_that_can_be_killed(
    tmp_path: Any, rules_checker: Checker
) -> None:
    settings = Settings(password_hashing="cheap", isolate_heavy=True, heavy_timeout_s=60)
    app = create_app(f"sqlite:///{tmp_path / 'q.db'}", rules_checker, settings=settings)
    accounts = app.state.accounts
    h = {"Authorization": f"Bearer {accounts.create_token(accounts.create_user('svc', 'service').id, 't')}"}
    heavy = {"id": "heavy", "title": "全网最低价 保温杯。" * 500, "description": "国家级工艺 " * 100}
    with TestClient(app) as client:
        processes = app.state.heavy_processes
        r = client.post("/v1/check", json=heavy, headers=h)
        assert r.status_code == 200, r.text
        in_thread = rules_checker.check_scored(Listing.model_validate(heavy), None, settings.check_budget_s)
        assert r.json() == in_thread.to_json_dict()  # the same answer as in this process
        assert [c.proc.is_alive() for c in processes._all] == [True]
        processes.hard_timeout_s = 0.001  # a runaway check: killed, answered too_costly
        r = client.post("/v1/check", json={**heavy, "id": "runaway", "enqueue": True}, headers=h)
        assert r.status_code == 200 and r.json()["error"]["code"] == "too_costly"
        assert r.json()["queue"]["flags"] == ["check_error"] and processes.killed == 1
        assert not processes._all[0].proc.is_alive()
        processes.hard_timeout_s = 60  # the next heavy listing gets a fresh child
        assert client.post("/v1/check", json=heavy, headers=h).json()["verdict"] == "block"
        children = list(processes._all)
    assert all(not c.proc.is_alive() for c in children)  # shutdown kills them
    app.state.queue.close()
