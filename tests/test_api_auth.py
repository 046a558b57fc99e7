"""Credentials and roles on every endpoint; console sessions with CSRF; the users CLI."""

from __future__ import annotations

import re

import pytest
from api_support import PASSWORD, Api, api_fixture, bad_listing  # noqa: F401  (fixture "api")
from click.testing import CliRunner
from queue_support import db_url_fixture  # noqa: F401  (fixture "db_url")
from sqlalchemy import select

from moderation.api.accounts import TOKENS, Accounts, sha256
from moderation.api.cli import db, users


def _queued_item(api: Api) -> int:
    r = api.client.post("/v1/check", json={**bad_listing(), "enqueue": True}, headers=api.h("service"))
    return int(r.json()["queue"]["item_id"])


def test_everything_but_health_needs_a_credential(api: Api) -> None:
    assert api.client.get("/health").status_code == 200
    for method, path in [
        ("POST", "/v1/check"),
        ("GET", "/v1/queue/items"),
        ("POST", "/v1/queue/claim-next"),
        ("GET", "/v1/queue/stats"),
        ("GET", "/v1/queue/events"),
        ("GET", "/v1/me"),
        ("POST", "/v1/queue/items/1/decision"),
        ("GET", "/v1/users"),
        ("GET", "/v1/users/admin/tokens"),
        ("DELETE", "/v1/users/admin/tokens/1"),
        ("PATCH", "/v1/users/admin"),
        ("GET", "/v1/outbox"),
        ("POST", "/v1/outbox/lease"),
        ("POST", "/v1/outbox/ack"),
    ]:
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
    body = {
        "outcome": "rejected",
        "reason_codes": ["absolute_claim"],
        "claim_token": claim["claim_token"],
        "version": claim["version"],
        "listing_revision": claim["item"]["listing_revision"],
    }
    assert (
        api.client.post(
            f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("auditor")
        ).status_code
        == 403
    )
    assert (
        api.client.post(f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("triage")).status_code
        == 403
    )
    assert (
        api.client.post(
            f"/v1/queue/items/{item_id}/decision", json=body, headers=api.h("reviewer")
        ).status_code
        == 200
    )
    revert = {"reason": "误判"}
    assert (
        api.client.post(
            f"/v1/queue/items/{item_id}/revert", json=revert, headers=api.h("reviewer")
        ).status_code
        == 403
    )
    assert (
        api.client.post(f"/v1/queue/items/{item_id}/revert", json=revert, headers=api.h("lead")).status_code
        == 200
    )
    assert api.client.post("/v1/queue/claim-next", headers=api.h("triage")).status_code == 403
    assert api.client.post("/v1/queue/claim-next", headers=api.h("service")).status_code == 403
    assert (
        api.client.post(
            "/v1/queue/bulk-decide",
            json={"item_ids": [item_id], "outcome": "approved"},
            headers=api.h("reviewer"),
        ).status_code
        == 403
    )
    assert api.client.get("/v1/queue/events", headers=api.h("auditor")).status_code == 200
    assert api.client.get("/v1/queue/stats", headers=api.h("auditor")).status_code == 200
    assert api.client.get("/v1/users", headers=api.h("lead")).status_code == 403
    assert (
        api.client.post(
            f"/v1/queue/items/{item_id}/comments", json={"text": "看看"}, headers=api.h("auditor")
        ).status_code
        == 403
    )
    assert (
        api.client.post(
            f"/v1/queue/items/{item_id}/comments", json={"text": "看看"}, headers=api.h("triage")
        ).status_code
        == 200
    )
    r = api.client.post(
        "/v1/users",
        json={"username": "new", "role": "reviewer", "password": "longenough"},
        headers=api.h("admin"),
    )
    assert r.status_code == 201
    token = api.client.post("/v1/users/new/tokens", json={}, headers=api.h("admin")).json()["token"]
    assert api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["username"] == "new"


def _login(api: Api, username: str, password: str) -> None:
    page = api.client.get("/review/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = api.client.post(
        "/review/login",
        data={"username": username, "password": password, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_console_login_session_and_csrf(api: Api) -> None:
    r = api.client.get("/review", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/review/login"
    _login(api, "reviewer", "wrong password")
    assert api.client.get("/review", follow_redirects=False).status_code == 303
    r = api.client.post(
        "/review/login",
        data={"username": "reviewer", "password": PASSWORD, "csrf_token": "forged"},
        follow_redirects=False,
    )
    assert "msession" not in r.cookies
    _login(api, "reviewer", PASSWORD)
    page = api.client.get("/review")
    assert page.status_code == 200 and "领取下一条" in page.text
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert api.client.post("/v1/queue/claim-next", json={}).status_code == 403  # cookie without CSRF header
    r = api.client.post("/v1/queue/claim-next", json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["item"] is None
    assert api.client.get("/v1/me").json()["username"] == "reviewer"  # safe methods need no CSRF header
    assert (
        api.client.post("/review/logout", data={"csrf_token": "forged"}, follow_redirects=False).status_code
        == 403
    )
    r = api.client.post("/review/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    api.client.cookies.clear()
    assert api.client.get("/v1/me").status_code == 401


def test_users_cli(db_url: str) -> None:
    runner = CliRunner()
    r = runner.invoke(db, ["upgrade", "--db", db_url])
    assert r.exit_code == 0 and "revision 0005" in r.output, r.output
    r = runner.invoke(
        users, ["create", "wang", "--role", "lead", "--password", "s3cret-pass", "--token", "--db", db_url]
    )
    assert r.exit_code == 0, r.output
    assert "created user wang" in r.output and re.search(r"token: mod_\S+", r.output)
    r = runner.invoke(users, ["create", "wang", "--role", "lead", "--db", db_url])
    assert r.exit_code == 2 and r.output.startswith("Error: ") and "already exists" in r.output
    r = runner.invoke(users, ["token", "wang", "--db", db_url])
    assert r.exit_code == 0 and r.output.startswith("mod_")
    r = runner.invoke(users, ["list", "--db", db_url])
    assert "wang\tlead" in r.output
    r = runner.invoke(users, ["tokens", "wang", "--db", db_url])
    rows = [line.split("\t") for line in r.output.splitlines()[1:]]
    assert r.exit_code == 0 and [(row[0], row[2], row[-1]) for row in rows] == [
        ("1", "cli", "active"),
        ("2", "cli", "active"),
    ]
    assert all(re.fullmatch(r"mod_.{4}…", row[3]) for row in rows)
    r = runner.invoke(users, ["revoke", "1", "--db", db_url])
    assert r.exit_code == 0 and "revoked token 1 (wang, cli, mod_" in r.output and "within 1 s" in r.output
    r = runner.invoke(users, ["revoke", "1", "--db", db_url])  # idempotent
    assert r.exit_code == 0 and "revoked token 1" in r.output
    r = runner.invoke(users, ["revoke", "99", "--db", db_url])
    assert r.exit_code == 2 and "no token 99" in r.output
    r = runner.invoke(users, ["revoke", "--user", "wang", "--db", db_url])
    assert r.exit_code == 0 and "revoked token 2" in r.output and "token 1" not in r.output
    r = runner.invoke(users, ["tokens", "--active", "--db", db_url])
    assert r.exit_code == 0 and len(r.output.splitlines()) == 1
    assert runner.invoke(users, ["revoke", "--db", db_url]).exit_code == 2
    r = runner.invoke(users, ["disable", "wang", "--db", db_url])
    assert r.exit_code == 0 and "disabled wang" in r.output
    assert "wang\tlead\tdisabled" in runner.invoke(users, ["list", "--db", db_url]).output
    assert runner.invoke(users, ["enable", "wang", "--db", db_url]).exit_code == 0
    assert "wang\tlead\tactive" in runner.invoke(users, ["list", "--db", db_url]).output
    r = runner.invoke(users, ["disable", "nobody", "--db", db_url])
    assert r.exit_code == 2 and "no user nobody" in r.output
    r = runner.invoke(db, ["verify", "--db", db_url])
    assert r.exit_code == 0 and "0 problems" in r.output


def _me(api: Api, token: str) -> int:
    return api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_list_and_revoke_tokens_over_http(api: Api) -> None:
    admin = api.h("admin")
    second = api.client.post("/v1/users/service/tokens", json={"name": "relay"}, headers=admin).json()[
        "token"
    ]
    assert _me(api, api.tokens["service"]) == 200 and _me(api, second) == 200  # both now in the cache
    r = api.client.get("/v1/users/service/tokens", headers=admin)
    assert r.status_code == 200
    tokens = r.json()["tokens"]
    assert [t["name"] for t in tokens] == ["test", "relay"]
    assert set(tokens[0]) == {"id", "username", "name", "prefix", "created_at", "last_used_at", "revoked_at"}
    assert (
        tokens[1]["prefix"] == second[:8] + "…"
        and tokens[1]["last_used_at"]
        and tokens[1]["revoked_at"] is None
    )
    assert second not in r.text and sha256(second) not in r.text

    r = api.client.delete(f"/v1/users/service/tokens/{tokens[1]['id']}", headers=admin)
    assert r.status_code == 200 and r.json()["token"]["revoked_at"]
    assert _me(api, second) == 401  # the cached entry was evicted: no 10 s grace in this process
    assert (
        api.client.post(
            "/v1/check", json=bad_listing(), headers={"Authorization": f"Bearer {second}"}
        ).status_code
        == 401
    )
    assert _me(api, api.tokens["service"]) == 200  # the user's other token still works
    again = api.client.delete(f"/v1/users/service/tokens/{tokens[1]['id']}", headers=admin)
    assert again.status_code == 200 and again.json()["token"]["revoked_at"] == r.json()["token"]["revoked_at"]
    assert api.client.get(
        "/v1/users/service/tokens", params={"include_revoked": False}, headers=admin
    ).json()["tokens"] == [tokens[0]]

    assert api.client.delete("/v1/users/service/tokens/9999", headers=admin).status_code == 404
    lead_token_id = api.client.get("/v1/users/lead/tokens", headers=admin).json()["tokens"][0]["id"]
    assert api.client.delete(f"/v1/users/service/tokens/{lead_token_id}", headers=admin).status_code == 404
    assert api.client.get("/v1/users/nobody/tokens", headers=admin).status_code == 404
    for role in ("lead", "reviewer", "service", "auditor"):
        assert api.client.get("/v1/users/service/tokens", headers=api.h(role)).status_code == 403
        assert (
            api.client.delete(f"/v1/users/lead/tokens/{lead_token_id}", headers=api.h(role)).status_code
            == 403
        )
    assert _me(api, api.tokens["lead"]) == 200


def test_disable_user_over_http(api: Api) -> None:
    admin = api.h("admin")
    _login(api, "reviewer", PASSWORD)
    assert api.client.get("/v1/me").status_code == 200  # console session, now cached
    assert _me(api, api.tokens["reviewer"]) == 200
    r = api.client.patch("/v1/users/reviewer", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["user"]["active"] is False
    assert _me(api, api.tokens["reviewer"]) == 401
    assert api.client.get("/v1/me").status_code == 401  # the session is gone too
    api.client.cookies.clear()
    assert api.client.patch("/v1/users/reviewer", json={"active": True}, headers=admin).status_code == 200
    assert _me(api, api.tokens["reviewer"]) == 200
    r = api.client.patch("/v1/users/admin", json={"active": False}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"]["code"] == "cannot_disable_self"
    assert api.client.patch("/v1/users/nobody", json={"active": False}, headers=admin).status_code == 404
    assert api.client.patch("/v1/users/reviewer", json={"active": "no"}, headers=admin).status_code == 422
    assert (
        api.client.patch("/v1/users/reviewer", json={"active": False}, headers=api.h("lead")).status_code
        == 403
    )


def test_revocation_in_another_process_shows_within_the_epoch_poll(api: Api) -> None:
    """The CLI (or another worker) revokes through its own ``Accounts`` and bumps the credential
    epoch: this process may trust its cached token until it next reads the epoch (at most
    ``credential_poll_s`` = 1 s later), then drops its cache and refuses the token."""
    token = api.tokens["service"]
    assert _me(api, token) == 200
    elsewhere = Accounts(api.accounts.db)
    [record] = elsewhere.list_tokens("service")
    elsewhere.revoke_token(record["id"])
    assert _me(api, token) == 200  # still cached here until the next epoch read
    api.accounts._epoch_read_at -= api.accounts.settings.credential_poll_s  # a second passes (no sleeping)
    assert _me(api, token) == 401
    # disabling a user from elsewhere likewise
    reviewer = api.tokens["reviewer"]
    assert _me(api, reviewer) == 200
    elsewhere.set_active("reviewer", False)
    api.accounts._epoch_read_at -= api.accounts.settings.credential_poll_s
    assert _me(api, reviewer) == 401


def test_revocation_reaches_a_running_server_within_a_second(api: Api) -> None:
    """Real time, no clock games: the epoch is read at most every second."""
    import time

    token = api.tokens["service"]
    assert _me(api, token) == 200
    elsewhere = Accounts(api.accounts.db)
    [record] = elsewhere.list_tokens("service")
    elsewhere.revoke_token(record["id"])
    started = time.monotonic()
    while _me(api, token) == 200:
        assert time.monotonic() - started < 1.5
        time.sleep(0.05)


def test_a_lookup_racing_a_revocation_is_not_cached(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token read from the database just before its revocation committed must not be cached as
    valid after the revocation evicted it."""
    token = api.tokens["service"]
    [record] = api.accounts.list_tokens("service")
    original = Accounts._lookup_token

    def lookup_then_revoke(self: Accounts, secret: str) -> object:
        actor = original(self, secret)  # read: still valid
        self.revoke_token(record["id"])  # the revocation commits and evicts before we cache
        return actor

    monkeypatch.setattr(Accounts, "_lookup_token", lookup_then_revoke)
    assert api.accounts.actor_for_token(token) is not None
    monkeypatch.setattr(Accounts, "_lookup_token", original)
    assert api.accounts.cached("token:", token) == (False, None)
    assert _me(api, token) == 401


def test_last_used_is_written_at_most_every_few_minutes(api: Api) -> None:
    token = api.tokens["auditor"]
    api.accounts.forget_all()
    assert _me(api, token) == 200
    [first] = api.accounts.list_tokens("auditor")
    assert first["last_used_at"] is not None
    api.accounts.forget_all()
    assert _me(api, token) == 200
    assert api.accounts.list_tokens("auditor")[0]["last_used_at"] == first["last_used_at"]
