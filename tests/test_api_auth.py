"""Credentials and roles on every endpoint; console sessions with CSRF; the users CLI."""

from __future__ import annotations

import re

from api_support import PASSWORD, Api, api_fixture, bad_listing  # noqa: F401  (fixture "api")
from click.testing import CliRunner
from queue_support import db_url_fixture  # noqa: F401  (fixture "db_url")
from sqlalchemy import select

from moderation.api.accounts import TOKENS, sha256
from moderation.api.cli import db, users


def _queued_item(api: Api) -> int:
    r = api.client.post("/v1/check", json={**bad_listing(), "enqueue": True}, headers=api.h("service"))
    return int(r.json()["queue"]["item_id"])


def test_everything_but_health_needs_a_credential(api: Api) -> None:
    assert api.client.get("/health").status_code == 200
    for method, path in [("POST", "/v1/check"), ("GET", "/v1/queue/items"), ("POST", "/v1/queue/claim-next"),
                         ("GET", "/v1/queue/stats"), ("GET", "/v1/queue/events"), ("GET", "/v1/me"),
                         ("POST", "/v1/queue/items/1/decision"), ("GET", "/v1/users")]:
        r = api.client.request(method, path, json={})
        assert r.status_code == 401, (method, path, r.status_code)
        assert "detail" in r.json()
    assert api.client.get("/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert api.client.get("/v1/me", headers={"Authorization": "Basic abc"}).status_code == 401
    assert api.client.get("/v1/me", headers=api.h("lead")).json()["role"] == "lead"


def test_tokens_are_hashed_at_rest(api: Api) -> None:
    with api.app_queue().db.read() as conn:
        stored = set(conn.execute(select(TOKENS.c.token_hash)).scalars())
    assert all(token not in stored for token in api.tokens.values())
    assert sha256(api.tokens["lead"]) in stored


def test_roles_are_enforced(api: Api) -> None:
    item_id = _queued_item(api)
    claim = api.client.post(f"/v1/queue/items/{item_id}/claim", headers=api.h("reviewer")).json()
    body = {"outcome": "rejected", "reason_codes": ["absolute_claim"], "claim_token": claim["claim_token"],
            "version": claim["version"], "listing_revision": claim["item"]["listing_revision"]}
    assert api.client.post(f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("auditor")).status_code == 403
    assert api.client.post(f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("triage")).status_code == 403
    assert api.client.post(f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("reviewer")).status_code == 200
    revert = {"reason": "误判"}
    assert api.client.post(f"/v1/queue/items/{item_id}/revert", json=revert, headers=api.h("reviewer")).status_code == 403
    assert api.client.post(f"/v1/queue/items/{item_id}/revert", json=revert, headers=api.h("lead")).status_code == 200
    assert api.client.post("/v1/queue/claim-next", headers=api.h("triage")).status_code == 403
    assert api.client.post("/v1/queue/claim-next", headers=api.h("service")).status_code == 403
    assert api.client.post("/v1/queue/bulk-decide", json={"item_ids": [item_id], "outcome": "approved"},
                           headers=api.h("reviewer")).status_code == 403
    assert api.client.get("/v1/queue/events", headers=api.h("auditor")).status_code == 200
    assert api.client.get("/v1/queue/stats", headers=api.h("auditor")).status_code == 200
    assert api.client.get("/v1/users", headers=api.h("lead")).status_code == 403
    assert api.client.post(f"/v1/queue/items/{item_id}/comments", json={"text": "看看"},
                           headers=api.h("auditor")).status_code == 403
    assert api.client.post(f"/v1/queue/items/{item_id}/comments", json={"text": "看看"},
                           headers=api.h("triage")).status_code == 200
    r = api.client.post("/v1/users", json={"username": "new", "role": "reviewer", "password": "longenough"},
                        headers=api.h("admin"))
    assert r.status_code == 201
    token = api.client.post("/v1/users/new/tokens", json={}, headers=api.h("admin")).json()["token"]
    assert api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["username"] == "new"


def _login(api: Api, username: str, password: str) -> None:
    page = api.client.get("/review/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = api.client.post("/review/login", data={"username": username, "password": password, "csrf_token": csrf},
                        follow_redirects=False)
    assert r.status_code == 303


def test_console_login_session_and_csrf(api: Api) -> None:
    r = api.client.get("/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    _login(api, "reviewer", "wrong password")
    assert api.client.get("/review", follow_redirects=False).status_code == 303
    r = api.client.post("/review/login", data={"username": "reviewer", "password": PASSWORD, "csrf_token": "forged"},
                        follow_redirects=False)
    assert "msession" not in r.cookies
    _login(api, "reviewer", PASSWORD)
    page = api.client.get("/review")
    assert page.status_code == 200 and "领取下一条" in page.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert api.client.post("/v1/queue/claim-next", json={}).status_code == 403  # cookie without CSRF header
    r = api.client.post("/v1/queue/claim-next", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["item"] is None
    assert api.client.get("/v1/me").json()["username"] == "reviewer"  # safe methods need no CSRF header
    assert api.client.post("/review/logout", data={"csrf_token": "forged"}, follow_redirects=False).status_code == 403
    r = api.client.post("/review/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    api.client.cookies.clear()
    assert api.client.get("/v1/me").status_code == 401


def test_users_cli(db_url: str) -> None:
    runner = CliRunner()
    r = runner.invoke(db, ["upgrade", "--db", db_url])
    assert r.exit_code == 0 and "revision 0001" in r.output, r.output
    r = runner.invoke(users, ["create", "wang", "--role", "lead", "--password", "s3cret-pass", "--token", "--db", db_url])
    assert r.exit_code == 0, r.output
    assert "created user wang" in r.output and re.search(r"token: mod_\S+", r.output)
    r = runner.invoke(users, ["create", "wang", "--role", "lead", "--db", db_url])
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(users, ["token", "wang", "--db", db_url])
    assert r.exit_code == 0 and r.output.startswith("mod_")
    r = runner.invoke(users, ["list", "--db", db_url])
    assert "wang\tlead" in r.output
    r = runner.invoke(db, ["verify", "--db", db_url])
    assert r.exit_code == 0 and "0 problems" in r.output
